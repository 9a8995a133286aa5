"""The statistics of the randomisation check: vectorised rank correlations, the interval of the
gap over images and random networks, the rows and their reading."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from medtl_helpers.explain.cam import rank_correlation
from medtl_helpers.explain.randomization_stats import (
    TOLERANCE,
    check_images,
    check_row,
    gap_interval,
    randomization_reading,
    rank_correlations,
)


def test_rank_correlations_agree_with_scipy_and_flat_maps_are_nan():
    rng = np.random.default_rng(0)
    reference = np.round(rng.random((6, 6)), 1)  # ties, as in a ReLU'd map
    maps = np.round(rng.random((5, 6, 6)), 1)
    maps[1] = reference
    maps[2] = 0.0  # flat
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = rank_correlations(reference, maps)
    expected = [rank_correlation(reference, m) for m in maps]
    assert np.allclose(r, expected, equal_nan=True)
    assert r[1] == pytest.approx(1.0) and np.isnan(r[2])
    assert np.isnan(rank_correlations(np.zeros((6, 6)), maps)).all()
    with pytest.raises(ValueError, match="maps differ in size: 36 and 4 values"):
        rank_correlations(reference, np.zeros((2, 2, 2)))


def test_the_gap_interval_resamples_the_random_networks():
    # one of 5 networks kept every map, the other 4 none: 20 % survived against 0 % by chance.
    # Over 30 maps counted as independent the gap looks sure (old margin about 11 points); but
    # a resample of the networks misses that one a third of the time, (4/5)**5 = 33 %.
    gaps = np.zeros((5, 6))
    gaps[0] = 1.0
    low, high = gap_interval(gaps)
    assert low == 0.0 and high >= 0.4
    # every network keeps the maps of the same 2 of 6 images: the images carry the doubt
    gaps = np.zeros((5, 6))
    gaps[:, :2] = 1.0
    low, high = gap_interval(gaps)
    assert low == 0.0 and high > 0.6
    # a gap that every network and image shows is sure
    assert gap_interval(np.full((5, 6), 0.3)) == pytest.approx((0.3, 0.3))
    gaps = np.full((5, 6), 0.5)
    gaps[0, 0] = np.nan  # an undefined (flat) map is left out, not counted as 0
    assert gap_interval(gaps) == pytest.approx((0.5, 0.5))
    assert np.isnan(gap_interval(np.full((2, 3), np.nan))).all()


def test_check_row_reads_survived_against_the_shuffled_chance():
    draws = np.array([[0.9, 0.2, np.nan], [0.8, 0.1, 0.6]])  # networks x images
    chance = np.array([[0.25, 0.0, np.nan], [0.25, 0.0, 0.5]])
    row = check_row("fc", draws, chance)
    assert row["survived"] == pytest.approx(3 / 5) and row["maps"] == 5
    assert row["chance"] == pytest.approx(1 / 5) and row["flat maps"] == 1
    assert row["gap low"] <= 0.4 <= row["gap high"]
    assert row["lowest draw mean"] == pytest.approx(0.5)  # network 1: (0.8 + 0.1 + 0.6) / 3
    assert row["highest draw mean"] == pytest.approx(0.55)  # network 0: its 2 defined maps
    rerun = check_row("nothing (re-run)", [np.ones(3)])
    assert np.isnan(rerun["gap low"]) and np.isnan(rerun["chance"])
    assert randomization_reading(rerun).startswith("no chance baseline")


def test_the_reading_has_a_failure_a_pass_within_the_tolerance_and_no_failure_shown():
    def row(survived, chance, low, high, mean=0.2):
        return {"mean spearman": mean, "survived": survived, "chance": chance,
                "gap low": low, "gap high": high}  # fmt: skip

    assert TOLERANCE == 0.2
    # an interval that reaches 0 but also +40 %: no failure shown, and not a pass either
    assert randomization_reading(row(0.36, 0.17, -0.05, 0.40)) == (
        "maps did not survive clearly more often than chance (36% against 17%, gap -5% to "
        "+40%): no failure shown; a gap up to +40% is not excluded with this many images and "
        "networks"
    )
    # the whole interval below the tolerance: a pass
    assert randomization_reading(row(0.05, 0.03, -0.06, 0.15)) == (
        "maps did not survive clearly more often than chance, and a gap above +20% is excluded "
        "(5% against 3%, gap -6% to +15%): the check passes here"
    )
    assert randomization_reading(row(0.40, 0.10, 0.12, 0.50)) == (
        "more maps survived than chance gives (40% against 10%, gap +12% to +50%): the check "
        "FAILS here, part of the maps is fixed by what was not randomised (the gap says how much)"
    )
    # the whole interval below 0: the maps are partly reversed, not unrelated
    assert randomization_reading(row(0.0, 0.29, -0.36, -0.23)) == (
        "fewer maps survived than chance gives (0% against 29%, gap -36% to -23%): the maps are "
        "partly reversed, still shaped by the stages not randomised; the check does not fail, "
        "but the maps did not become unrelated"
    )
    # a tolerance of the caller's own
    assert randomization_reading(row(0.36, 0.17, -0.05, 0.40), tolerance=0.5).endswith(
        "a gap above +50% is excluded (36% against 17%, gap -5% to +40%): the check passes here"
    )
    # most maps survived, as often as shuffled maps do: no failure shown (no "most" rule)
    assert "no failure shown" in randomization_reading(row(0.6, 0.55, -0.1, 0.25))
    nan = float("nan")
    flat = row(nan, nan, nan, nan, mean=nan)
    assert randomization_reading(flat).startswith("undefined: every map was flat")


def test_check_images_draws_half_per_class_one_per_patient_with_a_seed():
    # patients p0..p9; NORMAL first, as Kermany folders are listed; p1 and p6 have two images
    labels = np.array([0] * 6 + [1] * 7)
    patients = ["p0", "p1", "p1", "p2", "p3", "p4", "p5", "p6", "p6", "p7", "p8", "p9", "p9"]
    picked = check_images(labels, patients, 6, seed=0)
    assert len(picked) == 6 and len(set(picked)) == 6
    assert [int(labels[i]) for i in picked] == [0, 1, 0, 1, 0, 1]  # alternating: prefixes balance
    assert len({patients[i] for i in picked}) == 6  # one image per patient
    assert picked == check_images(labels, patients, 6, seed=0)  # the seed fixes the draw
    draws = {tuple(check_images(labels, patients, 6, seed=s)) for s in range(20)}
    assert len(draws) > 1, "another seed draws other images"
    assert picked != list(range(6)), "not the first images"
    # one class short of its half: the other class fills the rest
    few = check_images(np.array([0, 1, 1, 1, 1]), ["a", "b", "c", "d", "e"], 4, seed=1)
    assert sorted(int(x) for x in np.array([0, 1, 1, 1, 1])[few]) == [0, 1, 1, 1]
    # torch labels work as well
    torch = pytest.importorskip("torch")
    assert check_images(torch.as_tensor(labels), patients, 6, seed=0) == picked
    with pytest.raises(ValueError, match=r"11 images, one per patient, but the set has 10 "):
        check_images(labels, patients, 11, seed=0)
