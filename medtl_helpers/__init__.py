"""medtl_helpers: the machinery behind the medtl course notebooks.

The names the notebooks use most are importable from here; everything else from the subpackage
that holds it (data, models, metrics, training, evaluation, explain, course).
"""

from medtl_helpers import config
from medtl_helpers.config import environment_report
from medtl_helpers.config.version import __version__
from medtl_helpers.data import load_course_data, split_report, subsample_by_patient, to_model_input
from medtl_helpers.metrics import auroc, predict_proba
from medtl_helpers.models import build_model, count_parameters, freeze
from medtl_helpers.training import fit, fit_or_load, run_dir

__all__ = [
    "__version__",
    "auroc",
    "build_model",
    "config",
    "count_parameters",
    "environment_report",
    "fit",
    "fit_or_load",
    "freeze",
    "load_course_data",
    "predict_proba",
    "run_dir",
    "split_report",
    "subsample_by_patient",
    "to_model_input",
]
