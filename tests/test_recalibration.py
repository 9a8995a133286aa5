"""A new site's threshold from a few of its labelled patients (evaluation/recalibration.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medtl_helpers.errors import DataError, command_line
from medtl_helpers.evaluation import recalibration
from medtl_helpers.evaluation.recalibration import (
    check_sensitivity,
    draw_calibration_patients,
    draws_summary,
    recalibrated_threshold,
    recalibration_draws,
    refit_bias,
    shift_logits,
)
from medtl_helpers.metrics import auroc, sensitivity


def patients_of(normal: int, pneumonia: int, images: int = 2):
    """Labels and patient ids: `images` images for each of the patients of each class."""
    ids = [f"IM-{i:04d}" for i in range(normal)] + [f"person{i}" for i in range(pneumonia)]
    labels = [0] * normal + [1] * pneumonia
    return np.repeat(labels, images), np.repeat(ids, images)


def drawn_patients(patients, index) -> set[str]:
    return {str(patients[i]) for i in index}


def test_the_draw_is_stratified_whole_patients_and_fixed_by_the_seed():
    labels, patients = patients_of(30, 10)
    calibration, rest = draw_calibration_patients(labels, patients, 8, seed=3)
    chosen = drawn_patients(patients, calibration)
    assert len(chosen) == 8 and calibration.size == 16  # 2 images each
    assert sum(p.startswith("person") for p in chosen) == 2  # 8 x 10/40, rounded
    assert chosen.isdisjoint(drawn_patients(patients, rest))  # no patient is cut in two
    assert sorted(np.concatenate([calibration, rest]).tolist()) == list(range(labels.size))
    again, _ = draw_calibration_patients(labels, patients, 8, seed=3)
    other, _ = draw_calibration_patients(labels, patients, 8, seed=4)
    assert np.array_equal(again, calibration) and not np.array_equal(other, calibration)


def test_a_small_class_keeps_one_patient_to_score_on():
    labels, patients = patients_of(20, 2)
    calibration, rest = draw_calibration_patients(labels, patients, 15, seed=0)
    chosen = drawn_patients(patients, calibration)
    assert len(chosen) == 15 and sum(p.startswith("person") for p in chosen) == 1
    assert sum(p.startswith("person") for p in drawn_patients(patients, rest)) == 1
    labels, patients = patients_of(2, 20)
    calibration, _ = draw_calibration_patients(labels, patients, 3, seed=0)
    assert set(labels[calibration].tolist()) == {0, 1}


@pytest.mark.parametrize(
    ("normal", "pneumonia", "n", "message"),
    [
        (0, 5, 2, r"the split has no NORMAL patient \(5 patients \(0 NORMAL, 5 PNEUMONIA\)\)"),
        (4, 0, 2, "the split has no PNEUMONIA patient"),
        (1, 6, 3, "the split has one NORMAL patient only .* at least 2 patients of each class"),
        (5, 1, 3, "the split has one PNEUMONIA patient only"),
        (5, 5, 1, r"asked for 1 patient\(s\): .* ask for 2 or more"),
        (5, 5, 9, r"asked for 9 calibration patients, but the split has 10 .* at most 8"),
    ],
)
def test_a_draw_that_cannot_hold_both_classes_is_refused(normal, pneumonia, n, message):
    with pytest.raises(DataError, match=message):
        draw_calibration_patients(*patients_of(normal, pneumonia), n)


def test_on_the_command_line_the_fix_names_the_flag():
    with command_line(), pytest.raises(DataError, match="give --patients at most 8"):
        draw_calibration_patients(*patients_of(5, 5), 9)
    with command_line(), pytest.raises(DataError, match="give --sensitivity a value in"):
        check_sensitivity(1.5)


@pytest.mark.parametrize("target", [0.0, -0.2, 1.01, float("nan")])
def test_a_sensitivity_outside_zero_to_one_is_no_target(target):
    with pytest.raises(DataError, match=f"a sensitivity of {target} is no target"):
        check_sensitivity(target)
    with pytest.raises(DataError, match="give sensitivity a value in \\(0, 1\\], e.g. 0.95"):
        recalibrated_threshold([0, 1], [0.2, 0.8], target)


def test_the_threshold_is_the_highest_that_reaches_the_target():
    y = [0, 0, 0, 1, 1, 1, 1]
    p = [0.1, 0.4, 0.6, 0.3, 0.5, 0.7, 0.9]
    assert recalibrated_threshold(y, p, 0.75) == 0.5  # 3 of 4 flagged; at 0.6 only 2 of 4
    assert recalibrated_threshold(y, p, 1.0) == 0.3
    assert recalibrated_threshold(y, p, 0.25) == 0.9
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.3 * y + rng.normal(0.35, 0.2, 200), 0, 1)
    for target in (0.8, 0.9, 0.95):
        threshold = recalibrated_threshold(y, p, target)
        assert sensitivity(y, p, threshold) >= target
        above = np.unique(p)[np.unique(p) > threshold]
        assert sensitivity(y, p, above[0]) < target  # the next candidate up falls short
    with pytest.raises(DataError, match="one class only"):
        recalibrated_threshold([1, 1], [0.2, 0.8], 0.9)


def test_shift_logits_moves_the_log_odds():
    assert shift_logits([0.5], np.log(3))[0] == pytest.approx(0.75)
    assert shift_logits([0.2, 0.9], 0.0) == pytest.approx([0.2, 0.9])
    assert shift_logits([0.75], -np.log(3))[0] == pytest.approx(0.5)


def test_refit_bias_matches_the_label_share_and_keeps_the_ranking():
    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(np.where(y == 1, 1.0, -1.0), 1.0) + 1.5)))  # too high
    shift = refit_bias(y, p)
    corrected = shift_logits(p, shift)
    assert shift < 0 and corrected.mean() == pytest.approx(y.mean(), abs=1e-8)
    assert auroc(y, corrected) == pytest.approx(auroc(y, p), abs=1e-12)
    with pytest.raises(DataError, match="both classes"):
        refit_bias([0, 0], [0.1, 0.2])


def test_refit_bias_with_a_prior_keeps_the_calibration_of_that_prior():
    # Scores calibrated for a prior of 1/2 (class-balanced), at a site with 62.5% PNEUMONIA and
    # no other change: the unweighted fit moves the bias by about logit(0.625), the fit
    # weighted for the prior of 1/2 leaves it near 0.
    rng = np.random.default_rng(3)
    y = (rng.random(4000) < 0.625).astype(int)
    z = rng.normal(np.where(y == 1, 1.0, -1.0), 1.0) * 2.0  # exact log-odds for prior 1/2
    p = 1 / (1 + np.exp(-z))
    assert refit_bias(y, p) == pytest.approx(np.log(0.625 / 0.375), abs=0.1)
    assert abs(refit_bias(y, p, prior=0.5)) < 0.1
    shifted = 1 / (1 + np.exp(-(z - 0.8)))  # an offset between the sites: refitted, and only it
    assert refit_bias(y, shifted, prior=0.5) == pytest.approx(0.8, abs=0.1)
    with pytest.raises(ValueError, match="prior must be in"):
        refit_bias(y, p, prior=1.0)


@pytest.fixture
def site_scores():
    """Labels, scores (one per image, all different) and patients of a small site."""
    labels, patients = patients_of(24, 16, images=2)
    rng = np.random.default_rng(5)
    p = np.clip(0.3 * labels + rng.normal(0.35, 0.15, labels.size), 0.001, 0.999)
    return labels, p + np.arange(labels.size) * 1e-9, patients


def test_each_draw_pairs_old_and_new_on_the_same_held_out_patients(site_scores, monkeypatch):
    y, p, patients = site_scores
    scored = []
    real = recalibration._rates

    def record(y_part, p_part, threshold):
        scored.append(np.flatnonzero(np.isin(p, p_part)))
        return real(y_part, p_part, threshold)

    monkeypatch.setattr(recalibration, "_rates", record)
    frame = recalibration_draws(y, p, patients, 0.5, ks=(4, 10), sensitivity=0.9, draws=3, seed=7)
    assert len(frame) == 6 and frame["K"].tolist() == [4, 4, 4, 10, 10, 10]
    for row, (old, new) in zip(frame.itertuples(), zip(scored[::2], scored[1::2])):
        calibration, rest = draw_calibration_patients(y, patients, row.K, 7 + row.draw)
        assert np.array_equal(old, new) and np.array_equal(new, rest)  # the same patients
        assert drawn_patients(patients, new).isdisjoint(drawn_patients(patients, calibration))
        assert row.held_out == rest.size
        assert row.threshold == recalibrated_threshold(y[calibration], p[calibration], 0.9)
    for rate in recalibration.RATES:
        d = frame[rate] - frame[f"old_{rate}"]
        assert np.allclose(frame[f"d_{rate}"], d, equal_nan=True)
    assert frame["reached"].tolist() == (frame["sensitivity"] >= 0.9).tolist()


def test_the_summary_gives_means_the_spread_over_draws_and_the_share_reached():
    frame = pd.DataFrame(
        {
            "K": [5] * 5 + [10] * 2,
            "threshold": [0.1, 0.2, 0.3, 0.4, 0.5, 0.3, 0.5],
            "reached": [True, True, False, True, False, True, True],
            **{rate: [0.5] * 7 for rate in recalibration.RATES},
            "d_sensitivity": [0.0, 0.1, 0.2, 0.3, 0.4, 0.2, 0.4],
            "d_specificity": [-0.4, -0.3, -0.2, -0.1, 0.0, 0.0, 0.0],
            "d_ppv": [np.nan, 0.1, 0.1, 0.1, 0.1, np.nan, np.nan],
        }
    )
    table = draws_summary(frame, level=0.5)
    assert table.index.tolist() == [5, 10] and table.index.name == "K"
    five = table.loc[5]
    assert five["draws"] == 5 and five["threshold"] == pytest.approx(0.3)
    assert five["reached"] == pytest.approx(0.6)
    assert five["d_sensitivity"] == pytest.approx(0.2)
    assert (five["d_sensitivity_low"], five["d_sensitivity_high"]) == pytest.approx((0.1, 0.3))
    assert (five["d_specificity_low"], five["d_specificity_high"]) == pytest.approx((-0.3, -0.1))
    assert five["d_ppv"] == pytest.approx(0.1)  # the draw without a flagged image is skipped
    assert np.isnan(table.loc[10, "d_ppv"]) and np.isnan(table.loc[10, "d_ppv_low"])
    assert table.loc[10, "reached"] == 1.0
