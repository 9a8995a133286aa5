"""Data: Kermany folders, PneumoniaMNIST, synthetic X-rays, patient-level splits, the uint8 tensor
cache, batch augmentation, verification and downloads."""

from medtl_helpers.data.augment import IMAGENET_MEAN, IMAGENET_STD, BatchAugment, to_model_input
from medtl_helpers.data.records import CLASSES, ImageSet
from medtl_helpers.data.sources import CourseData, load_course_data
from medtl_helpers.data.split import (
    check_no_patient_overlap,
    split_by_patient,
    split_report,
    subsample_by_patient,
)

__all__ = [
    "CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BatchAugment",
    "CourseData",
    "ImageSet",
    "check_no_patient_overlap",
    "load_course_data",
    "split_by_patient",
    "split_report",
    "subsample_by_patient",
    "to_model_input",
]
