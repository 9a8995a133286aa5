"""The in-memory form every data source is turned into: uint8 images with labels and patients.

Keeping images as uint8 at the working size (one grey channel) makes the whole Kermany training set
fit in about 250 MB at 224 px, so training reads tensors instead of decoding JPEGs every epoch.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

CLASSES = ("NORMAL", "PNEUMONIA")
# Sources whose files carry no patient ids: each image gets an id of its own, so a bootstrap
# "over patients" of such a set resamples images (PneumoniaMNIST, data/medmnist.py).
SOURCES_WITHOUT_PATIENT_IDS = ("pneumoniamnist",)


@dataclass
class ImageSet:
    """Images (N, 1, H, W) uint8, labels (N,) int64, and one patient id per image."""

    images: torch.Tensor
    labels: torch.Tensor
    patients: list[str]
    source: str
    paths: list[str] | None = None
    classes: tuple[str, ...] = field(default=CLASSES)

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 1:
            raise ValueError(
                f"ImageSet.images must be uint8 of shape (N, 1, H, W), got "
                f"{self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.images.shape[0] != n or len(self.patients) != n:
            raise ValueError(
                f"ImageSet has {self.images.shape[0]} images, {n} labels and "
                f"{len(self.patients)} patient ids: they must be equal"
            )
        if self.paths is not None and len(self.paths) != n:
            raise ValueError(f"ImageSet has {n} images but {len(self.paths)} paths")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, index: Sequence[int] | torch.Tensor) -> ImageSet:
        idx = torch.as_tensor(index, dtype=torch.long)
        picked = idx.tolist()
        return ImageSet(
            images=self.images[idx],
            labels=self.labels[idx],
            patients=[self.patients[i] for i in picked],
            source=self.source,
            paths=None if self.paths is None else [self.paths[i] for i in picked],
            classes=self.classes,
        )

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels.tolist())
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def n_patients(self) -> int:
        return len(set(self.patients))

    @property
    def unit(self) -> str:
        """What one id in `patients` stands for: "patients", or "images" for a source without ids.

        Intervals resampled by `patients` are per patient on Kermany folders and per image on
        PneumoniaMNIST, whose X-rays of one child may sit on both sides of a resample. A site
        simulated from a pool (`data.sites`, source "<pool> / <site>") keeps its pool's unit.
        """
        pool = self.source.split(" / ")[0]
        return "images" if pool in SOURCES_WITHOUT_PATIENT_IDS else "patients"

    def fingerprint(self) -> str:
        """A short hash of which images the set holds (patients, labels, size, source).

        Checkpoints record the fingerprint of their training split, so that resuming or
        evaluating on other data is noticed.
        """
        digest = hashlib.sha1()
        digest.update("\n".join(self.patients).encode())
        digest.update(self.labels.numpy().tobytes())
        digest.update(f"{tuple(self.images.shape)} {self.source}".encode())
        return digest.hexdigest()[:16]
