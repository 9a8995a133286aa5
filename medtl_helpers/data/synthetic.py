"""Procedural chest X-rays: the course's offline stand-in for the Kermany pneumonia data.

Each image is drawn from an attenuation map in normalised coordinates (x right, y down, both in
[-1, 1]): soft-tissue body, two air-filled lung fields, ribs, clavicles, spine, mediastinum and a
heart that bulges to the image's right (the patient's left). Pneumonia adds a cluster of soft
opacities inside one or both lungs. Anatomy, exposure and opacity contrast vary per patient so that
brightness alone does not give the label away, yet a small CNN learns it in one epoch.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from medtl_helpers.data.records import CLASSES, ImageSet

_MAX_BLOBS = 8
_PIXELS_PER_CHUNK = 2**22  # about 16 MB per float32 map, so 224 px batches stay cache-friendly
_TEST_SEED_OFFSET = 7919  # keeps a folder's test images unrelated to any nearby training seed


def _uniform(gen: torch.Generator, shape: int | tuple[int, int], lo: float, hi: float):
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def _soft_ellipse(x, y, cx, cy, rx, ry, sharpness: float) -> torch.Tensor:
    dist = torch.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return torch.sigmoid((1.0 - dist) * sharpness)


def _patient_params(gen: torch.Generator, n: int) -> dict[str, torch.Tensor]:
    """Anatomy, exposure and (unused for NORMAL) opacity layout, one row per patient."""
    p = {
        "body_w": _uniform(gen, n, 0.86, 0.98),
        "lung_x": _uniform(gen, n, 0.38, 0.46),
        "lung_y": _uniform(gen, n, -0.08, 0.05),
        "lung_rx": _uniform(gen, n, 0.27, 0.33),
        "lung_ry": _uniform(gen, n, 0.55, 0.66),
        "air": _uniform(gen, n, 0.32, 0.44),
        "heart_x": _uniform(gen, n, 0.08, 0.16),
        "heart_rx": _uniform(gen, n, 0.28, 0.36),
        "rib_gap": _uniform(gen, n, 0.12, 0.16),
        "rib_phase": _uniform(gen, n, 0.0, 1.0),
        "rib_level": _uniform(gen, n, 0.08, 0.14),
        "exposure": _uniform(gen, n, -0.07, 0.07),
        "contrast": _uniform(gen, n, 0.85, 1.15),
        "gamma": _uniform(gen, n, 0.85, 1.2),
        "severity": _uniform(gen, n, 0.8, 1.05),
    }
    # One cluster per lung, the second one only for 45% of patients. The first two blobs always
    # sit in the primary cluster, so every PNEUMONIA patient shows some opacity.
    side = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    both = (torch.rand(n, generator=gen) < 0.45).float()
    primary = torch.rand(n, _MAX_BLOBS, generator=gen) < 0.5
    primary[:, :2] = True
    p["blob_side"] = torch.where(primary, side[:, None], -side[:, None])
    p["blob_on"] = torch.where(primary, 1.0, both[:, None])
    p["blob_on"] *= (torch.rand(n, _MAX_BLOBS, generator=gen) < 0.6).float()
    p["blob_on"][:, :2] = 1.0
    # Lung-relative cluster centres: lateral of the heart, lower zones a little more often.
    centre_u = _uniform(gen, (n, 2), -0.3, 0.5).gather(1, primary.long())
    centre_v = _uniform(gen, (n, 2), -0.4, 0.6).gather(1, primary.long())
    p["blob_u"] = centre_u + 0.3 * torch.randn(n, _MAX_BLOBS, generator=gen)
    p["blob_v"] = centre_v + 0.22 * torch.randn(n, _MAX_BLOBS, generator=gen)
    p["blob_r"] = _uniform(gen, (n, _MAX_BLOBS), 0.07, 0.17)
    p["blob_amp"] = _uniform(gen, (n, _MAX_BLOBS), 0.6, 1.0)
    return p


def _render(p: dict[str, torch.Tensor], labels: torch.Tensor, size: int, gen: torch.Generator):
    """Draw one chunk of images from per-image parameters; returns floats in [0, 1]."""
    b = labels.shape[0]
    col = {k: v.view(b, 1, 1) for k, v in p.items() if v.ndim == 1}
    axis = torch.linspace(-1.0, 1.0, size)
    v0, u0 = torch.meshgrid(axis, axis, indexing="ij")
    cos, sin = torch.cos(col["angle"]), torch.sin(col["angle"])
    x = (cos * u0 + sin * v0 - col["shift_x"]) / col["scale"]
    y = (-sin * u0 + cos * v0 - col["shift_y"]) / col["scale"]

    # A rounded-rectangle trunk (superellipse) plus a neck reads more like a chest than an oval.
    trunk = (x / col["body_w"]).abs() ** 3 + ((y - 0.3) / 1.2).abs() ** 3
    neck = torch.sigmoid((0.22 - x.abs()) * 30.0) * torch.sigmoid((-0.5 - y) * 10.0)
    body = torch.maximum(torch.sigmoid((1.0 - trunk) * 12.0), neck)
    density = body * (0.42 + 0.18 * (1.0 - x * x))
    lung_masks = []
    for side in (-1.0, 1.0):
        # Lungs taper towards the apex, so scale the width with height.
        t = ((y - col["lung_y"]) / col["lung_ry"]).clamp(-1.0, 1.0)
        rx = col["lung_rx"] * (0.7 + 0.3 * t)
        lung_masks.append(
            _soft_ellipse(x, y, side * col["lung_x"], col["lung_y"], rx, col["lung_ry"], 9.0)
        )
    heart = _soft_ellipse(x, y, col["heart_x"], 0.36, col["heart_rx"], 0.27, 8.0)
    mediastinum = torch.sigmoid((0.11 - x.abs()) * 40.0) * torch.sigmoid((0.95 - y) * 20.0)
    lungs = (lung_masks[0] + lung_masks[1]) * (1.0 - heart) * (1.0 - mediastinum)
    markings = F.interpolate(torch.randn(b, 1, 7, 7, generator=gen), size=size, mode="bicubic")
    density = density - lungs * (col["air"] + 0.035 * markings[:, 0])

    cage = torch.sigmoid((0.8 - x.abs()) * 25.0) * torch.sigmoid((0.6 - y) * 15.0)
    # Posterior ribs rise a little from the spine, then sweep down towards the sides.
    rib_line = y + 0.3 * x.abs() - 0.9 * x * x
    rib_wave = torch.cos(2 * math.pi * (rib_line / col["rib_gap"] + col["rib_phase"]))
    rib_fade = cage * body * (1.0 - 0.7 * heart)
    density = density + col["rib_level"] * rib_fade * rib_wave.clamp(min=0.0) ** 4
    clavicle = torch.exp(-(((y + 0.7 + 0.15 * x.abs()) / 0.03) ** 2))
    density = density + 0.12 * clavicle * ((x.abs() - 0.08) * (0.62 - x.abs()) > 0).float()
    spine = torch.exp(-((x / 0.06) ** 2))
    density = density + 0.14 * heart + 0.15 * mediastinum + 0.04 * spine

    shadow = _blob_shadow(p, axis)
    opacity = col["severity"] * col["air"] * (1.0 - torch.exp(-3.0 * shadow)) * lungs
    density = density + labels.view(b, 1, 1).float() * opacity

    img = (0.04 + col["contrast"] * density + col["exposure"]).clamp(0.0, 1.0) ** col["gamma"]
    img = _blur(img.unsqueeze(1), p["blur"] * size / 64.0)
    img = img + p["noise"].view(b, 1, 1, 1) * torch.randn(img.shape, generator=gen)
    return img.clamp(0.0, 1.0)


def _blob_shadow(p: dict[str, torch.Tensor], axis: torch.Tensor) -> torch.Tensor:
    """Sum of the opacity blobs on the pixel grid, shape (B, size, size).

    An isotropic Gaussian stays isotropic under the pose (rotation, shift, scale), so each blob is
    the outer product of two 1-D Gaussians around its centre mapped back to pixel coordinates.
    """
    cx = p["blob_side"] * (p["lung_x"][:, None] + p["blob_u"] * p["lung_rx"][:, None])
    cy = p["lung_y"][:, None] + p["blob_v"] * p["lung_ry"][:, None]
    scaled_x = p["scale"][:, None] * cx + p["shift_x"][:, None]
    scaled_y = p["scale"][:, None] * cy + p["shift_y"][:, None]
    cos, sin = torch.cos(p["angle"])[:, None], torch.sin(p["angle"])[:, None]
    centre_u = cos * scaled_x - sin * scaled_y
    centre_v = sin * scaled_x + cos * scaled_y
    two_var = (2 * (p["blob_r"] * p["scale"][:, None]) ** 2)[..., None]
    along_u = torch.exp(-((axis - centre_u[..., None]) ** 2) / two_var)
    along_v = torch.exp(-((axis - centre_v[..., None]) ** 2) / two_var)
    return torch.einsum("bk,bkh,bkw->bhw", p["blob_on"] * p["blob_amp"], along_v, along_u)


def _blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a different sigma (in pixels) per image."""
    radius = max(1, int(math.ceil(3 * float(sigma.max()))))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    b = img.shape[0]
    flat = F.pad(img.transpose(0, 1), (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel.view(b, 1, 1, -1), groups=b)
    flat = F.conv2d(flat, kernel.view(b, 1, -1, 1), groups=b)
    return flat.transpose(0, 1)


def make_synthetic(
    n: int,
    size: int = 64,
    seed: int = 0,
    pneumonia_fraction: float = 0.74,
    max_images_per_patient: int = 3,
    *,
    first_patient: int = 1,
) -> ImageSet:
    """`n` synthetic chest X-rays, uint8 (n, 1, size, size), grouped by patient.

    Every patient has 1..max_images_per_patient images with the same label and anatomy (small
    per-image changes in pose, exposure and noise). Patient ids follow Kermany: `person{pid}` for
    PNEUMONIA and `IM-{pid:04d}` for NORMAL, numbered from `first_patient`; `synthetic_stems`
    turns them into file names. The same arguments always give identical tensors.
    """
    if n < 0 or size < 8 or max_images_per_patient < 1 or not 0.0 <= pneumonia_fraction <= 1.0:
        raise ValueError(
            "make_synthetic needs n >= 0, size >= 8, max_images_per_patient >= 1 and "
            f"0 <= pneumonia_fraction <= 1; got n={n}, size={size}, max_images_per_patient="
            f"{max_images_per_patient}, pneumonia_fraction={pneumonia_fraction}"
        )
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, max_images_per_patient + 1, (max(n, 1),), generator=gen)
    n_patients = int((counts.cumsum(0) < n).sum()) + 1 if n else 0
    counts = counts[:n_patients]
    if n_patients:
        counts[-1] -= int(counts.sum()) - n
    # Labels go to whole patients; a fixed count (not a coin per patient) keeps the fraction close.
    sick = torch.randperm(n_patients, generator=gen)[: round(pneumonia_fraction * n_patients)]
    patient_labels = torch.zeros(n_patients, dtype=torch.long).index_fill_(0, sick, 1)

    owner = torch.repeat_interleave(torch.arange(n_patients), counts)
    labels = patient_labels[owner]
    params = {k: v[owner] for k, v in _patient_params(gen, n_patients).items()}
    params["angle"] = torch.deg2rad(_uniform(gen, n, -4.0, 4.0))
    params["shift_x"] = _uniform(gen, n, -0.06, 0.06)
    params["shift_y"] = _uniform(gen, n, -0.06, 0.06)
    params["scale"] = _uniform(gen, n, 0.92, 1.05)
    params["exposure"] = params["exposure"] + _uniform(gen, n, -0.03, 0.03)
    params["severity"] = (params["severity"] * _uniform(gen, n, 0.9, 1.1)).clamp(max=1.0)
    params["blur"] = _uniform(gen, n, 0.35, 0.8)
    params["noise"] = _uniform(gen, n, 0.01, 0.035)

    chunk = max(1, _PIXELS_PER_CHUNK // (size * size))
    images = torch.empty(n, 1, size, size, dtype=torch.uint8)
    for start in range(0, n, chunk):
        part = {k: v[start : start + chunk] for k, v in params.items()}
        img = _render(part, labels[start : start + chunk], size, gen)
        images[start : start + chunk] = (img * 255.0).round().to(torch.uint8)
    pids = (owner + first_patient).tolist()
    patients = [f"person{i}" if y else f"IM-{i:04d}" for i, y in zip(pids, labels.tolist())]
    return ImageSet(images=images, labels=labels, patients=patients, source="synthetic")


def synthetic_stems(patients: list[str]) -> list[str]:
    """Kermany-style file stems for a synthetic set's patient ids, in order.

    NORMAL: IM-0007 -> IM-0007-0001, IM-0007-0002 ...; PNEUMONIA: person12 ->
    person12_bacteria_<n> (every third patient id is viral) where <n> numbers the images.
    """
    seen: dict[str, int] = {}
    stems = []
    for index, pid in enumerate(patients, start=1):
        seen[pid] = seen.get(pid, 0) + 1
        if pid.startswith("person"):
            kind = "virus" if int(pid[len("person") :]) % 3 == 0 else "bacteria"
            stems.append(f"{pid}_{kind}_{index}")
        else:
            stems.append(f"{pid}-{seen[pid]:04d}")
    return stems


def write_synthetic_folder(
    root: Path, n_train: int, n_test: int, size: int = 224, seed: int = 0
) -> Path:
    """Write PNGs in the Kermany layout root/{train,test}/{NORMAL,PNEUMONIA}/<stem>.png.

    Train and test come from different seeds and disjoint patient ids, as in a real split.
    """
    root = Path(root)
    train = make_synthetic(n_train, size=size, seed=seed)
    # A set of n images has at most n patients, so numbering test patients after n_train keeps
    # the two splits disjoint.
    test_seed = seed + _TEST_SEED_OFFSET
    test = make_synthetic(n_test, size=size, seed=test_seed, first_patient=n_train + 1)
    for split, images in (("train", train), ("test", test)):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        stems = synthetic_stems(images.patients)
        for img, label, stem in zip(images.images, images.labels.tolist(), stems):
            path = root / split / CLASSES[label] / f"{stem}.png"
            Image.fromarray(img[0].numpy()).save(path)
    return root
