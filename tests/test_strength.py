"""Acquisition changes of plausible strength: SSIM as Wang et al. define it, mild below strong,
the course's sites readable, and a ladder that changes only the acquisition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SHARED_TRAIN, needs_shared_data
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch import nn

from medtl_helpers.adaptation import (
    LEVELS,
    ladder_summary,
    similarity_table,
    strength_ladder,
    structural_similarity,
    with_interval,
)
from medtl_helpers.adaptation.strength import C1, C2, gaussian_window, score_order
from medtl_helpers.data.augment import resize_uint8
from medtl_helpers.data.sites import COURSE_SITES, SiteSpec
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.metrics import predict_proba

FIELDS = {"exposure": "gamma", "blur": "blur", "noise": "noise", "low resolution": "resolution"}
# The sites before the plausible strengths: each hid what a reader needs on real X-rays.
OLD = {
    "exposure": {"old": SiteSpec("exposure", gamma=0.5)},
    "blur": {"old": SiteSpec("blur", blur=0.025)},
    "noise": {"old": SiteSpec("noise", noise=40.0)},
    "low resolution": {"old": SiteSpec("low resolution", resolution=0.25)},
}


def by_change(rows: list[dict]) -> dict[tuple[str, str], float]:
    return {(row["change"], row["level"]): row["ssim"] for row in rows}


@pytest.fixture(scope="module")
def chests() -> torch.Tensor:
    """Synthetic X-rays drawn at 256 px and shrunk to 64, as the cache shrinks real films."""
    return resize_uint8(make_synthetic(8, size=256, seed=1).images, 64)


def test_levels_are_a_mild_and_a_strong_step_of_each_change_and_strong_is_the_course_site():
    course = {spec.name: spec for spec in COURSE_SITES}
    assert list(LEVELS) == list(FIELDS)
    for change, field in FIELDS.items():
        mild, strong = LEVELS[change]["mild"], LEVELS[change]["strong"]
        assert strong == course[change], change
        identity = getattr(SiteSpec("x"), field)
        assert 0 < abs(getattr(mild, field) - identity) < abs(getattr(strong, field) - identity)
        changed = [f for f in FIELDS.values() if getattr(mild, f) != getattr(SiteSpec("x"), f)]
        assert changed == [field]  # one acquisition change per level


def test_the_gaussian_window_is_wang_et_als():
    window = gaussian_window()
    assert window.shape == (1, 1, 11, 11)
    assert float(window.sum()) == pytest.approx(1.0)
    assert int(window.argmax()) == 5 * 11 + 5  # the centre
    assert torch.equal(window, window.transpose(-1, -2))
    # one step from the centre weighs exp(-1 / (2 * 1.5**2)) of the centre
    assert float(window[0, 0, 5, 6] / window[0, 0, 5, 5]) == pytest.approx(np.exp(-1 / 4.5))


def test_ssim_of_identical_images_is_one_and_of_the_negative_below_zero(chests):
    assert structural_similarity(chests, chests) == pytest.approx(1.0, abs=1e-12)
    assert structural_similarity(chests, 255 - chests) < 0.0


def test_ssim_of_flat_images_is_the_luminance_term_alone():
    a = torch.full((2, 1, 16, 16), 100, dtype=torch.uint8)
    b = torch.full((2, 1, 16, 16), 50, dtype=torch.uint8)
    expected = (2 * 100 * 50 + C1) / (100**2 + 50**2 + C1)  # no contrast: that term is C2 / C2
    assert structural_similarity(a, b) == pytest.approx(expected, rel=1e-12)
    assert C1 == pytest.approx(6.5025) and C2 == pytest.approx(58.5225)


def test_ssim_matches_a_hand_computation_on_one_window():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (11, 11)).astype(np.float64)
    y = np.clip(x + rng.normal(0, 30, (11, 11)), 0, 255).round()
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
    cov = (w * (x - mx) * (y - my)).sum()
    expected = (2 * mx * my + C1) * (2 * cov + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    a = torch.from_numpy(x).to(torch.uint8)[None]
    b = torch.from_numpy(y).to(torch.uint8)[None]
    assert structural_similarity(a, b) == pytest.approx(expected, rel=1e-9)  # (N, H, W) too
    assert 0.3 < expected < 0.95


def test_ssim_refuses_what_it_cannot_compare(chests):
    with pytest.raises(ValueError, match="one shape"):
        structural_similarity(chests, chests[:2])
    with pytest.raises(ValueError, match="uint8 grey levels"):
        structural_similarity(chests.float(), chests.float())
    small = torch.zeros(1, 1, 10, 10, dtype=torch.uint8)
    with pytest.raises(ValueError, match="H, W >= 11"):
        structural_similarity(small, small)


def test_similarity_falls_from_mild_to_strong_and_strong_stays_readable(chests):
    rows = similarity_table(chests)
    assert [(r["change"], r["level"]) for r in rows] == [
        (change, level) for change in FIELDS for level in ("mild", "strong")
    ]
    assert rows[1]["description"] == LEVELS["exposure"]["strong"].describe()
    ssim = by_change(rows)
    for change in FIELDS:
        assert 1.0 > ssim[change, "mild"] > ssim[change, "strong"] >= 0.90, change
    old = by_change(similarity_table(chests, OLD))
    for change in ("exposure", "noise", "low resolution"):  # this smooth drawing hides blur
        assert old[change, "old"] < 0.90, change


@needs_shared_data
def test_on_real_x_rays_at_64_px_the_strong_levels_stay_readable_and_the_old_did_not():
    files = [
        path
        for cls in ("NORMAL", "PNEUMONIA")
        for path in sorted((SHARED_TRAIN / "train" / cls).glob("*.jpeg"))[:12]
    ]
    films = [np.array(Image.open(path).convert("L").resize((224, 224))) for path in files]
    images = resize_uint8(torch.from_numpy(np.stack(films))[:, None], 64)
    strong = by_change(similarity_table(images))
    old = by_change(similarity_table(images, OLD))
    for change in FIELDS:
        assert strong[change, "strong"] >= 0.90 > old[change, "old"], change


class Brightness(nn.Module):
    """A model that scores how bright an image is: brighter, more likely PNEUMONIA."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = self.scale * x.mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(logit), logit], dim=1)


@pytest.fixture(scope="module")
def ladder():
    part = make_synthetic(160, size=32, seed=5)
    model = Brightness()
    p = predict_proba(model, part.images, image_size=32)
    threshold = float(np.quantile(p[part.labels.numpy() == 0], 0.8))
    rows = strength_ladder(model, part, threshold, 32, n_boot=200, seed=0)
    return part, p, rows


def test_the_ladder_scores_the_same_patients_unchanged_then_at_each_level(ladder):
    part, p, rows = ladder
    assert [(r["change"], r["level"]) for r in rows] == [("unchanged", "none")] + [
        (change, level) for change in FIELDS for level in ("mild", "strong")
    ]
    assert {r["n"] for r in rows} == {len(part)}
    unchanged = rows[0]
    assert unchanged["ssim"] == pytest.approx(1.0) and unchanged["description"] == "no change"
    assert unchanged["auroc"] == pytest.approx(roc_auc_score(part.labels.numpy(), p))
    assert unchanged["specificity"] == pytest.approx(0.8, abs=0.03)
    for metric in ("auroc", "sensitivity", "specificity"):
        for end in ("", "_low", "_high"):
            assert unchanged[f"{metric}_difference{end}"] == 0.0
    assert by_change(rows[1:]) == pytest.approx(by_change(similarity_table(part.images)))


def test_a_brighter_exposure_costs_a_brightness_model_specificity_and_blur_does_not(ladder):
    _, _, rows = ladder
    row = {(r["change"], r["level"]): r for r in rows}
    mild, strong = row["exposure", "mild"], row["exposure", "strong"]
    assert strong["specificity_difference"] < mild["specificity_difference"] < 0
    assert mild["specificity_difference_high"] < 0  # the paired interval excludes 0
    assert strong["sensitivity_difference"] >= mild["sensitivity_difference"] >= 0
    assert strong["specificity"] == pytest.approx(
        row["unchanged", "none"]["specificity"] + strong["specificity_difference"]
    )
    for level in ("mild", "strong"):  # blur keeps each image's mean, so this model barely moves
        assert abs(row["blur", level]["specificity_difference"]) <= 0.05


def test_the_summary_is_change_by_level_with_intervals(ladder):
    _, _, rows = ladder
    summary = ladder_summary(rows)
    assert list(summary.columns) == [
        "SSIM", "AUROC", "specificity", "Δ AUROC", "Δ specificity", "rank corr.", "Δ log-odds"
    ]  # fmt: skip
    assert summary.index.names == ["change", "level"]
    assert summary.loc[("unchanged", "none"), "Δ specificity"] == "0.00 [0.00, 0.00]"
    strong = summary.loc[("exposure", "strong")]
    assert strong["Δ specificity"] == with_interval(rows[2], "specificity_difference")
    assert strong["AUROC"] == with_interval(rows[2], "auroc")
    assert strong["SSIM"] == round(rows[2]["ssim"], 3)
    assert ladder_summary(pd.DataFrame(rows)).equals(summary)


def test_score_order_tells_a_common_shift_from_a_reshuffle():
    p = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    odds = np.log(p / (1 - p)) + 1.0  # every child's log-odds up by 1: the order is kept
    shifted = score_order(p, 1 / (1 + np.exp(-odds)))
    assert shifted["rank_correlation"] == pytest.approx(1.0)
    assert shifted["logit_shift"] == pytest.approx(1.0)
    reversed_ = score_order(p, p[::-1])
    assert reversed_["rank_correlation"] == pytest.approx(-1.0)
    assert reversed_["logit_shift"] == pytest.approx(0.0, abs=1e-9)
    assert score_order(p, p) == {"rank_correlation": 1.0, "logit_shift": 0.0}


def test_the_ladder_says_whether_the_brighter_films_kept_their_order(ladder):
    _, _, rows = ladder
    row = {(r["change"], r["level"]): r for r in rows}
    assert row["unchanged", "none"]["rank_correlation"] == 1.0
    strong = row["exposure", "strong"]
    assert strong["logit_shift"] > 0  # brighter films, a brightness model: scores move up
    assert strong["rank_correlation"] > 0.9
