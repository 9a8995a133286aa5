"""Simulated hospitals ("sites"): patient-disjoint parts of one pool, each acquired its own way.

A real second hospital differs in its scanners, its exposure settings, its post-processing, the
markers its staff burn into the film, and in how many of its children have pneumonia. Here each
of those is one fixed, deterministic change of the cached uint8 images, so a site shows one kind
of shift at a time and its effect can be measured. What a simulated shift cannot show is how big
a real hospital's shift is, or any change in what "pneumonia" means (a concept shift): the labels
stay Kermany's.

`make_sites(pool, specs, seed)` splits the pool's patients between the specs by their weights
(class by class), subsamples a site's patients to its pneumonia share when it has one, and applies
its acquisition change. A spec with `patients_of` takes the patients of another site instead, so
two sites can show the same children acquired two ways (the shortcut pair below).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from medtl_helpers.data.augment import resize
from medtl_helpers.data.records import ImageSet
from medtl_helpers.data.split import patient_groups
from medtl_helpers.errors import DataError

CHUNK = 512  # images changed at a time, to keep the float copies small


@dataclass(frozen=True)
class SiteSpec:
    """One site: its share of the pool and its acquisition change (the defaults change nothing).

    gamma: exposure curve 255 * (x / 255) ** gamma; below 1 brighter, above 1 darker.
    blur: Gaussian blur sigma as a fraction of the image side (0.02 is 1.3 px at 64 px).
    noise: standard deviation of added Gaussian noise, in grey levels (0-255).
    resolution: acquired at this fraction of the side, then resized back up.
    marker_normal, marker_pneumonia: the share of NORMAL and of PNEUMONIA images that carry a
        burned-in marker (a white square with a black "L" in the top-left corner).
    pneumonia_share: keep whole patients so that this share of the images is PNEUMONIA.
    patients_of: take the patients of that site instead of a new part of the pool.
    """

    name: str
    weight: float = 1.0
    gamma: float = 1.0
    blur: float = 0.0
    noise: float = 0.0
    resolution: float = 1.0
    marker_normal: float = 0.0
    marker_pneumonia: float = 0.0
    pneumonia_share: float | None = None
    patients_of: str | None = None

    def describe(self) -> str:
        changes = []
        if self.gamma != 1.0:
            changes.append(f"exposure: gamma {self.gamma:g}")
        if self.blur:
            changes.append(f"blur: sigma {self.blur:g} of the side")
        if self.noise:
            changes.append(f"noise: sd {self.noise:g} grey levels")
        if self.resolution != 1.0:
            changes.append(f"resolution: {self.resolution:.0%} of the side, resized back up")
        if self.marker_normal or self.marker_pneumonia:
            changes.append(
                f"marker on {self.marker_normal:.0%} of NORMAL, "
                f"{self.marker_pneumonia:.0%} of PNEUMONIA images"
            )
        if self.pneumonia_share is not None:
            changes.append(f"prevalence: {self.pneumonia_share:.0%} PNEUMONIA")
        if self.patients_of:
            changes.append(f"same patients as {self.patients_of}")
        return "; ".join(changes) or "no change"


@dataclass
class Site:
    """A site's images after its acquisition change, its spec, and which images were marked.

    `data.paths` names each image "<site>/<position>"; `subset` carries the names, so a part made
    from the site (`split_by_patient`, `split_target`) is traced back image by image: `index_of`,
    `marked_in`. A patient's first image is no stand-in: a child's films need not all be marked.
    """

    name: str
    data: ImageSet
    spec: SiteSpec
    marked: torch.Tensor  # bool (N,)

    @property
    def description(self) -> str:
        return self.spec.describe()

    def index_of(self, part: ImageSet) -> np.ndarray:
        """The position in this site of each image of `part`, a subset of the site's data."""
        where = {name: i for i, name in enumerate(self.data.paths or [])}
        missing = [name for name in part.paths or [None] if name not in where]
        if missing:
            raise ValueError(
                f"{len(missing)} images of the part are not images of site {self.name!r} "
                f"(first: {missing[0]!r}); make the part from this site's data with subset"
            )
        return np.array([where[name] for name in part.paths], dtype=np.int64)

    def marked_in(self, part: ImageSet) -> torch.Tensor:
        """bool (len(part),): which images of `part` carry this site's marker."""
        return self.marked[torch.from_numpy(self.index_of(part))]


# The course's sites: one kind of shift each, an acquisition change no stronger than a film a
# radiologist can still read (mean SSIM >= 0.90 to the original at 64 px; adaptation.strength).
# The source is the largest part; the shortcut pair shows the source's children with a marker
# that goes with PNEUMONIA, and a target where the marker is on half the images whatever the label.
COURSE_SITES = (
    SiteSpec("source", weight=5.0),
    SiteSpec("exposure", gamma=0.7),
    SiteSpec("blur", blur=0.015),
    SiteSpec("noise", noise=5.0),
    SiteSpec("low resolution", resolution=0.6),
    SiteSpec("marker", marker_normal=1.0, marker_pneumonia=1.0),
    SiteSpec("prevalence", weight=2.0, pneumonia_share=0.25),
    SiteSpec("shortcut source", marker_normal=0.1, marker_pneumonia=0.9, patients_of="source"),
    SiteSpec("shortcut target", marker_normal=0.5, marker_pneumonia=0.5),
)


def site_seed(seed: int, name: str) -> int:
    """A seed for one site: the same in every session (Python's own hash() is salted)."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**31


def join(*parts: ImageSet) -> ImageSet:
    """One ImageSet holding the images of all parts, in order (same size and classes)."""
    return ImageSet(
        images=torch.cat([p.images for p in parts]),
        labels=torch.cat([p.labels for p in parts]),
        patients=[patient for p in parts for patient in p.patients],
        source=parts[0].source,
        classes=parts[0].classes,
    )


def partition_patients(data: ImageSet, weights: list[float], seed: int = 0) -> list[np.ndarray]:
    """Image indices of len(weights) patient-disjoint parts, each class shared out by weight.

    Patients of each class are shuffled and laid end to end; a patient goes to the part whose
    share of the class's images holds the middle of that patient's images.
    """
    if not weights or min(weights) <= 0:
        raise ValueError(f"weights must be positive, got {weights}")
    rng = np.random.default_rng(seed)
    bounds = np.cumsum(weights) / np.sum(weights)
    parts: list[list[int]] = [[] for _ in weights]
    for _, patients in sorted(patient_groups(data).items()):
        sizes = np.array([len(patient) for patient in patients])
        order = rng.permutation(len(patients))
        middles = (np.cumsum(sizes[order]) - sizes[order] / 2) / sizes.sum()
        for j, middle in zip(order, middles):
            parts[int(np.searchsorted(bounds, middle))].extend(patients[j])
    return [np.array(sorted(part), dtype=np.int64) for part in parts]


def prevalence_index(data: ImageSet, share: float, seed: int = 0) -> np.ndarray:
    """Indices of whole patients with about `share` PNEUMONIA images: the other class is kept.

    Patients of the class in excess are drawn in random order while that brings its count closer
    to the number the share asks for.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"pneumonia_share must be in (0, 1), got {share}")
    groups = patient_groups(data)
    counts = {label: sum(len(p) for p in groups.get(label, [])) for label in (0, 1)}
    if min(counts.values()) == 0:
        raise DataError("prevalence_index needs images of both classes; this part has one only")
    excess = 1 if counts[1] / (counts[0] + counts[1]) > share else 0
    want = counts[0] * share / (1 - share) if excess else counts[1] * (1 - share) / share
    rng = np.random.default_rng(seed)
    chosen = [i for patient in groups[1 - excess] for i in patient]
    taken = 0
    for j in rng.permutation(len(groups[excess])):
        size = len(groups[excess][j])
        if abs(taken + size - want) < abs(taken - want):
            chosen.extend(groups[excess][j])
            taken += size
    return np.array(sorted(chosen), dtype=np.int64)


def burn_marker(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, S, S) with a white square holding a black "L" in the top-left corner."""
    out = images.clone()
    size = images.shape[-1]
    side, start = max(5, size // 8), max(1, size // 16)
    stroke = max(1, side // 5)
    box = out[..., start : start + side, start : start + side]
    box.fill_(255)
    box[..., stroke : side - stroke, stroke : 2 * stroke] = 0  # the upright
    box[..., side - 2 * stroke : side - stroke, stroke : side - stroke] = 0  # the foot
    return out


def acquire(
    images: torch.Tensor, spec: SiteSpec, marked: torch.Tensor, seed: int = 0
) -> torch.Tensor:
    """uint8 images as `spec`'s site acquires them: resolution, blur, exposure, noise, marker.

    Deterministic: the noise comes from a generator seeded by `seed` and the site's name. It has
    mean zero, but the rounding and clipping to [0, 255] after it move the mean of an image with
    many pixels near 0 or 255.
    """
    generator = torch.Generator().manual_seed(site_seed(seed, spec.name))
    size = images.shape[-1]
    chunks = []
    for start in range(0, len(images), CHUNK):
        x = images[start : start + CHUNK].float()
        if spec.resolution != 1.0:
            x = resize(resize(x, max(4, round(size * spec.resolution))), size)
        if spec.blur:
            sigma = spec.blur * size
            x = gaussian_blur(x, [2 * int(np.ceil(3 * sigma)) + 1] * 2, [sigma, sigma])
        if spec.gamma != 1.0:
            x = 255.0 * (x / 255.0).clamp(0.0, 1.0) ** spec.gamma
        if spec.noise:
            x = x + spec.noise * torch.randn(x.shape, generator=generator)
        chunks.append(x.round().clamp(0, 255).to(torch.uint8))
    out = torch.cat(chunks) if chunks else images.clone()
    if marked.any():
        out[marked] = burn_marker(out[marked])
    return out


def marker_mask(labels: torch.Tensor, spec: SiteSpec, seed: int = 0) -> torch.Tensor:
    """Which images carry the marker: a fixed share of each class, drawn by the site's seed."""
    rng = np.random.default_rng(site_seed(seed, spec.name) + 1)
    mask = np.zeros(len(labels), dtype=bool)
    for label, share in ((0, spec.marker_normal), (1, spec.marker_pneumonia)):
        index = np.flatnonzero(labels.numpy() == label)
        mask[rng.permutation(index)[: round(share * len(index))]] = True
    return torch.from_numpy(mask)


def make_sites(pool: ImageSet, specs=COURSE_SITES, seed: int = 0) -> dict[str, Site]:
    """One Site per spec, from patient-disjoint parts of `pool`; the same for the same seed."""
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"site names must be unique, got {names}")
    own = [spec for spec in specs if spec.patients_of is None]
    parts = dict(
        zip((s.name for s in own), partition_patients(pool, [s.weight for s in own], seed))
    )
    sites: dict[str, Site] = {}
    for spec in sorted(specs, key=lambda s: s.patients_of is not None):
        if spec.patients_of is not None and spec.patients_of not in parts:
            raise ValueError(f"site {spec.name!r}: patients_of={spec.patients_of!r} is no site")
        index = parts[spec.patients_of or spec.name]
        if spec.pneumonia_share is not None:
            index = index[prevalence_index(pool.subset(index), spec.pneumonia_share, seed)]
        parts[spec.name] = index
        raw = pool.subset(index)
        marked = marker_mask(raw.labels, spec, seed)
        images = acquire(raw.images, spec, marked, seed)
        ids = [f"{spec.name}/{i}" for i in range(len(index))]
        data = ImageSet(images, raw.labels, raw.patients, f"{pool.source} / {spec.name}", ids)
        sites[spec.name] = Site(spec.name, data, spec, marked)
    return {name: sites[name] for name in names}


def take_patients(data: ImageSet, per_class: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """(taken, rest): `per_class` whole patients of each class drawn at random, and the others."""
    rng = np.random.default_rng(seed)
    taken: list[int] = []
    for _, patients in sorted(patient_groups(data).items()):
        if len(patients) <= per_class:
            raise DataError(
                f"take_patients: asked for {per_class} patients of a class that has "
                f"{len(patients)}; use fewer, or give the site more of the pool"
            )
        for j in rng.permutation(len(patients))[:per_class]:
            taken.extend(patients[j])
    mask = np.zeros(len(data), dtype=bool)
    mask[taken] = True
    return data.subset(np.flatnonzero(mask)), data.subset(np.flatnonzero(~mask))


def site_table(sites: dict[str, Site]) -> list[dict[str, object]]:
    """One row per site: images, patients, PNEUMONIA share, marked share, and the change."""
    return [
        {
            "site": name,
            "images": len(site.data),
            "patients": site.data.n_patients(),
            "pneumonia_share": round(float(site.data.labels.float().mean()), 3),
            "marked": round(float(site.marked.float().mean()), 3),
            "change": site.description,
        }
        for name, site in sites.items()
    ]
