"""Notebook 08 section 9: the new site, its rates with intervals, and the table of repairs."""

from __future__ import annotations

import numpy as np
import pytest

from medtl_helpers.adaptation.new_site import (
    SIMULATED,
    TEST_FOLDER_SHARE,
    Repair,
    new_site,
    paired_ece,
    repairs_table,
    site_rates,
)
from medtl_helpers.adaptation.shift import domain_auroc_interval
from medtl_helpers.data.sources import CourseData
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.metrics import binary_metrics


def course_data(source: str = "synthetic", test_given: bool = False) -> CourseData:
    train = make_synthetic(60, size=16, seed=1)
    val = make_synthetic(20, size=16, seed=2, first_patient=500)
    test = make_synthetic(200, size=16, seed=3, first_patient=1000)
    return CourseData(train, val, test, source, "here", test_given=test_given)


@pytest.mark.parametrize("source, given", [("kermany-folder", True), ("pneumoniamnist", False)])
def test_a_given_test_split_is_the_new_site_as_it_is(source, given):
    data = course_data(source, given)
    site = new_site(data)
    assert site.real and site.data is data.test
    assert "real images" in site.banner() and "SIMULATED" not in site.banner()


@pytest.mark.parametrize("source", ["synthetic", "kermany-folder"])
def test_without_a_test_split_the_holdout_is_simulated_and_says_so(source):
    data = course_data(source)
    site = new_site(data, seed=0)
    assert not site.real
    assert site.banner().startswith("*** SIMULATED NEW SITE")
    assert "gamma 0.7" in site.banner() and "MEDTL_DATA" in site.banner()
    share = float(site.data.labels.float().mean())
    assert share == pytest.approx(TEST_FOLDER_SHARE, abs=0.05)
    assert set(site.data.patients) <= set(data.test.patients)  # whole patients of the holdout
    original = data.test.subset([data.test.patients.index(p) for p in site.data.patients[:1]])
    assert site.data.images[:1].float().mean() > original.images.float().mean()  # gamma < 1
    assert SIMULATED.gamma == 0.7


def test_domain_auroc_interval_tells_apart_shifted_features_and_not_the_same_ones():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(120, 5)), rng.normal(size=(120, 5))
    pa = [f"a{i // 2}" for i in range(120)]
    pb = [f"b{i // 2}" for i in range(120)]
    far, low, high = domain_auroc_interval(a, b + 2.0, pa, pb, n_boot=200)
    assert far > 0.95 and low > 0.9 and low <= far <= high
    same, low, high = domain_auroc_interval(a, b, pa, pb, n_boot=200)
    assert low < 0.5 < high and same < 0.7


def scores(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 != 0).astype(int)  # two thirds PNEUMONIA
    p = np.clip(0.35 + 0.3 * y + rng.normal(0, 0.15, n), 0, 1)
    return y, p, [f"p{i // 2}" for i in range(n)]


def test_site_rates_are_the_metrics_at_the_threshold_with_intervals_and_ppv():
    y, p, patients = scores()
    rates = site_rates(y, p, 0.5, patients, n_boot=300)
    plain = binary_metrics(y, p, 0.5)
    for name in ("auroc", "sensitivity", "specificity"):
        assert rates[name] == pytest.approx(plain[name])
        assert rates[f"{name}_low"] <= rates[name] <= rates[f"{name}_high"]
    assert rates["ppv"] == pytest.approx(y[p >= 0.5].mean())
    assert rates["ppv_low"] <= rates["ppv"] <= rates["ppv_high"]
    assert rates["prevalence"] == pytest.approx(2 / 3, abs=0.01) and rates["n"] == 200
    assert 0 <= rates["ece_low"] <= rates["ece"] <= rates["ece_high"] <= 1


def test_repairs_table_reads_paired_differences_against_the_baseline():
    y, p, patients = scores()
    repairs = {
        "source model": Repair(p, 0.5, "nothing"),
        "same again": Repair(p.copy(), 0.5, "nothing"),
        "low threshold": Repair(p, 0.3, "labels"),
    }
    table = repairs_table(repairs, y, patients, n_boot=300)
    assert list(table.index) == list(repairs)
    assert table.loc["source model", "verdict"] == "(the baseline)"
    assert table.loc["same again", "verdict"] == "no change beyond the noise"
    low = table.loc["low threshold", "verdict"]
    assert "sensitivity up +" in low and "specificity down -" in low and "auroc" not in low
    assert table.loc["low threshold", "needs"] == "labels"
    assert table.loc["low threshold", "threshold"] == 0.3
    assert table.loc["low threshold", "ece"] == table.loc["source model", "ece"]  # same p
    value = float(table.loc["source model", "specificity"].split(" [")[0])
    assert value == pytest.approx(binary_metrics(y, p, 0.5)["specificity"], abs=5e-4)


def test_paired_ece_reads_the_calibration_difference_on_the_same_patients():
    y, p, patients = scores()
    same, low, high = paired_ece(y, p, p.copy(), patients, n_boot=200)
    assert same == 0 and low == 0 and high == 0
    worse = 0.5 * p  # every probability halved: far from the share of PNEUMONIA in its bin
    diff, low, high = paired_ece(y, p, worse, patients, n_boot=200)
    assert diff > 0.1 and 0 < low <= diff <= high
    table = repairs_table(
        {"source model": Repair(p, 0.5, ""), "halved": Repair(worse, 0.25, "")}, y, patients
    )
    assert "ece up +" in table.loc["halved", "verdict"]
