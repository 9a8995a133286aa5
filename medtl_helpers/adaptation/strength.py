"""How strong is a simulated acquisition change, and what does a mild one already cost?

A site's change should be one a radiologist could still read: a film that hides the lungs in
grain tells nothing about another hospital. The course measures "still readable" with the
structural similarity (SSIM, Wang et al. 2004) of each changed image to its original: 1 for the
same image, lower as local brightness, contrast and structure drift apart. The strong level of
each change in `LEVELS` is the course's site (`data.sites.COURSE_SITES`) and keeps the mean SSIM
at 64 px at or above 0.90 on real Kermany X-rays; the mild level is a smaller step of the same
change. SSIM depends on the image size: its window is 11 px at every size, so a blur that is a
fixed share of the side covers more of the window at 224 px and scores lower there.

`strength_ladder` scores one model on the same test patients unchanged and then at each level,
at the model's fixed threshold, so each comparison changes only the acquisition. Its differences
to the unchanged images are paired: both arms are scored on the same bootstrap draw of patients
(`metrics.paired_difference`), which is what "a small shift already costs specificity" claims.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from medtl_helpers.adaptation.results import result_row, with_interval
from medtl_helpers.data.records import ImageSet
from medtl_helpers.data.sites import COURSE_SITES, SiteSpec, acquire
from medtl_helpers.metrics import paired_difference, predict_proba

# Mild and strong level of each acquisition change. The strong level is the course's site itself
# (COURSE_SITES); the mild level keeps the site's name, so its noise is the same draw as the
# site's, only scaled: mild and strong differ in strength alone.
_SITES = {spec.name: spec for spec in COURSE_SITES}
LEVELS: dict[str, dict[str, SiteSpec]] = {
    "exposure": {"mild": SiteSpec("exposure", gamma=0.85), "strong": _SITES["exposure"]},
    "blur": {"mild": SiteSpec("blur", blur=0.01), "strong": _SITES["blur"]},
    "noise": {"mild": SiteSpec("noise", noise=2.0), "strong": _SITES["noise"]},
    "low resolution": {
        "mild": SiteSpec("low resolution", resolution=0.9),
        "strong": _SITES["low resolution"],
    },
}

# Wang et al. (2004): an 11 x 11 Gaussian window of sd 1.5 px, and the two constants that keep
# the ratios stable where a window is nearly black or flat, for grey levels 0-255.
WINDOW, SIGMA = 11, 1.5
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
CHUNK = 256  # images compared at a time, to keep the float64 copies small
DIFFERENCES = ("auroc", "sensitivity", "specificity")


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """float64 (1, 1, size, size): a Gaussian that sums to 1, the weights of a local mean."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    line = torch.exp(-(x**2) / (2 * sigma**2))
    line = line / line.sum()
    return (line[:, None] * line[None, :])[None, None]


def structural_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of two uint8 batches (N, 1, H, W) or (N, H, W), image i against image i.

    At each position where the window fits inside the image, SSIM compares the weighted local
    means (luminance), standard deviations (contrast) and covariance (structure):
    (2 mu_a mu_b + C1)(2 cov_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)).
    The result is the mean over positions and images: 1.0 for identical batches, near 0 or
    below for unrelated or inverted ones.
    """
    if a.shape != b.shape:
        raise ValueError(f"compare batches of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != torch.uint8 or b.dtype != torch.uint8:
        raise ValueError(f"SSIM here is for uint8 grey levels 0-255, got {a.dtype} and {b.dtype}")
    if a.ndim == 3:
        a, b = a[:, None], b[:, None]
    if a.ndim != 4 or a.shape[1] != 1 or min(a.shape[-2:]) < WINDOW:
        raise ValueError(f"expected (N, 1, H, W) with H, W >= {WINDOW}, got {tuple(a.shape)}")
    window = gaussian_window()
    total = 0.0
    for start in range(0, len(a), CHUNK):
        x = a[start : start + CHUNK].double()
        y = b[start : start + CHUNK].double()
        mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
        var_x = F.conv2d(x * x, window) - mu_x**2
        var_y = F.conv2d(y * y, window) - mu_y**2
        cov = F.conv2d(x * y, window) - mu_x * mu_y
        ssim = ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / (
            (mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2)
        )
        total += float(ssim.mean(dim=(1, 2, 3)).sum())
    return total / len(a) if len(a) else float("nan")


def _acquired(images: torch.Tensor, levels: dict[str, dict[str, SiteSpec]], seed: int):
    """(change, level, spec, images as that level acquires them), one per level, no marker."""
    unmarked = torch.zeros(len(images), dtype=torch.bool)
    for change, by_level in levels.items():
        for level, spec in by_level.items():
            yield change, level, spec, acquire(images, spec, unmarked, seed)


def similarity_table(
    images: torch.Tensor, levels: dict[str, dict[str, SiteSpec]] = LEVELS, seed: int = 0
) -> list[dict[str, object]]:
    """One row per change and level: what it does, and the mean SSIM of the images it changed.

    The images are uint8 (N, 1, H, W), as `make_sites` changes them. SSIM depends on the size:
    its window is 11 px wide at every size, so measure at the size the models see.
    """
    return [
        {
            "change": change,
            "level": level,
            "description": spec.describe(),
            "ssim": structural_similarity(changed, images),
        }
        for change, level, spec, changed in _acquired(images, levels, seed)
    ]


def score_order(p_unchanged, p, eps: float = 1e-6) -> dict[str, float]:
    """Did the change keep the children's order, and which way did their log-odds move?

    `rank_correlation`: Spearman's correlation of each child's score after the change with the
    same child's score before (1: the same order). `logit_shift`: the mean change of the
    log-odds, log(p / (1 − p)), child by child (probabilities clipped to [eps, 1 − eps]). A
    rank correlation near 1 with a shifted mean is scores moving together, in order, some of
    them across the threshold.
    """
    before, after = (
        np.clip(np.asarray(x, dtype=np.float64), eps, 1 - eps) for x in (p_unchanged, p)
    )
    odds = np.log(after / (1 - after)) - np.log(before / (1 - before))
    same = np.array_equal(before, after)
    rho = 1.0 if same else float(spearmanr(before, after).statistic)
    return {"rank_correlation": rho, "logit_shift": float(odds.mean())}


def _paired_columns(y, p_unchanged, p, threshold, part, n_boot, seed) -> dict[str, float]:
    """Changed minus unchanged for `DIFFERENCES`, with a paired patient bootstrap interval."""
    result = paired_difference(
        y, p_unchanged, p, threshold, n_boot=n_boot, seed=seed, groups=part.patients
    )
    columns: dict[str, float] = {}
    for name in DIFFERENCES:
        difference, low, high = result[name]
        columns |= {
            f"{name}_difference": difference,
            f"{name}_difference_low": low,
            f"{name}_difference_high": high,
        }
    return columns


def strength_ladder(
    model: torch.nn.Module,
    part: ImageSet,
    threshold: float,
    image_size: int,
    levels: dict[str, dict[str, SiteSpec]] = LEVELS,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[dict[str, object]]:
    """The model on `part` unchanged, then at each change's levels: one row each.

    The same children, labels and threshold in every row; only the acquisition changes. A row
    holds the SSIM to the unchanged images, AUROC, sensitivity, specificity and balanced accuracy
    with 95% intervals that resample whole patients (`result_row`), and the paired difference to
    the unchanged row (`<metric>_difference`, `_low`, `_high`): an interval that excludes 0 says
    the change moved that metric on these patients. `rank_correlation` and `logit_shift`
    (`score_order`) say whether the scores kept their order and how far their log-odds moved.
    """
    y = part.labels
    p_unchanged = predict_proba(model, part.images, image_size=image_size)
    arms = [("unchanged", "none", SiteSpec("unchanged"), part.images)]
    arms += list(_acquired(part.images, levels, seed))
    rows = []
    for change, level, spec, images in arms:
        same = images is part.images
        p = p_unchanged if same else predict_proba(model, images, image_size=image_size)
        row: dict[str, object] = {"change": change, "level": level}
        row["description"] = spec.describe()
        row["ssim"] = structural_similarity(images, part.images)
        scored = result_row("source model", change, y, p, threshold, part.patients, n_boot, seed)
        row |= {k: v for k, v in scored.items() if k not in ("method", "site")}
        row |= _paired_columns(y, p_unchanged, p, threshold, part, n_boot, seed)
        row |= score_order(p_unchanged, p)
        rows.append(row)
    return rows


def ladder_summary(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Change and level as rows; SSIM, then AUROC and specificity with their 95% intervals, the
    paired change (Δ) of AUROC and specificity against the unchanged images, and, where the rows
    hold them, the rank correlation of the scores with the unchanged ones and the mean change of
    their log-odds (`score_order`).
    """
    frame = pd.DataFrame(rows)
    summary = pd.DataFrame(
        {
            "SSIM": frame["ssim"].round(3),
            "AUROC": frame.apply(with_interval, axis=1, metric="auroc"),
            "specificity": frame.apply(with_interval, axis=1, metric="specificity"),
            "Δ AUROC": frame.apply(with_interval, axis=1, metric="auroc_difference"),
            "Δ specificity": frame.apply(with_interval, axis=1, metric="specificity_difference"),
        }
    )
    if "rank_correlation" in frame:
        summary["rank corr."] = frame["rank_correlation"].round(3)
        summary["Δ log-odds"] = frame["logit_shift"].round(3)
    summary.index = pd.MultiIndex.from_frame(frame[["change", "level"]])
    return summary
