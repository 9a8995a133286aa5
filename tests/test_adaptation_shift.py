"""The domain classifier and the methods x sites table."""

from __future__ import annotations

import numpy as np
import pytest

from medtl_helpers.adaptation import (
    against_baseline,
    domain_auroc,
    domain_predictions,
    domain_separation,
    methods_table,
    proxy_a_distance,
    result_row,
    with_interval,
)
from medtl_helpers.metrics import auroc, sensitivity, specificity


def features(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 6)) + shift


def patients(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i // 2}" for i in range(n)]  # two images per patient


def test_domain_classifier_is_at_chance_for_one_site_and_near_one_for_two():
    same = domain_auroc(features(80, 0), features(80, 1), patients("a", 80), patients("b", 80))
    apart = domain_auroc(
        features(80, 0), features(80, 1, shift=3.0), patients("a", 80), patients("b", 80)
    )
    assert 0.3 < same < 0.7
    assert apart > 0.99
    with pytest.raises(ValueError, match="160 feature rows but 150 patient ids"):
        domain_auroc(features(80, 0), features(80, 1), patients("a", 70), patients("b", 80))


def test_domain_auroc_is_the_auroc_of_the_cross_validated_predictions():
    args = (features(30, 0), features(50, 1, shift=0.5), patients("a", 30), patients("b", 50))
    y, p = domain_predictions(*args)
    assert y.tolist() == [0] * 30 + [1] * 50 and p.shape == (80,)
    assert ((p > 0) & (p < 1)).all()
    assert domain_auroc(*args) == pytest.approx(auroc(y, p))


def test_proxy_a_distance_by_hand():
    assert proxy_a_distance(0.0) == 2.0  # every image gives its site away
    assert proxy_a_distance(0.5) == 0.0  # chance
    assert proxy_a_distance(0.25) == 1.0
    assert proxy_a_distance(0.6) == pytest.approx(-0.4)  # worse than chance: noise around 0
    with pytest.raises(ValueError, match=r"lies in \[0, 1\], got 1.5"):
        proxy_a_distance(1.5)


def test_domain_separation_uses_a_balanced_error():
    apart = domain_separation(
        features(40, 0), features(40, 1, shift=3.0), patients("a", 40), patients("b", 40)
    )
    assert apart["domain_auroc"] > 0.99 and apart["domain_error"] < 0.05
    assert apart["proxy_a_distance"] == pytest.approx(proxy_a_distance(apart["domain_error"]))
    # One site, 100 and 400 images: calling every image "target" would be right 80% of the time
    # (a plain error of 0.2); the balanced error does not reward it.
    same = domain_separation(
        features(100, 0), features(400, 1), patients("a", 100), patients("b", 400)
    )
    assert 0.4 < same["domain_error"] < 0.6 and abs(same["proxy_a_distance"]) < 0.4


def test_a_result_row_holds_the_metrics_and_their_patient_intervals():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30), np.ones(30)].astype(int)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 60), 0, 1)
    row = result_row("source model", "blur", y, p, 0.5, patients("p", 60), n_boot=200)
    assert row["method"] == "source model" and row["site"] == "blur" and row["n"] == 60
    assert row["auroc"] == pytest.approx(auroc(y, p))
    assert row["sensitivity"] == pytest.approx(sensitivity(y, p, 0.5))
    assert row["specificity"] == pytest.approx(specificity(y, p, 0.5))
    for name in ("auroc", "sensitivity", "specificity", "balanced_accuracy"):
        assert row[f"{name}_low"] <= row[name] <= row[f"{name}_high"]
    assert row["one_class_resamples"] == 0


def test_one_class_resamples_are_counted_not_warned(recwarn):
    y = np.array([0, 1, 1, 1])
    row = result_row("m", "s", y, [0.1, 0.9, 0.8, 0.7], 0.5, ["a", "b", "b", "b"], n_boot=200)
    assert 0 < row["one_class_resamples"] < 200  # half the draws take patient a or b twice
    assert not [w for w in recwarn if "single class" in str(w.message)]
    assert with_interval({"auroc": 0.8312, "auroc_low": 0.78, "auroc_high": 0.885}) == (
        "0.83 [0.78, 0.89]"
    )


def test_methods_table_keeps_the_order_rows_were_given_in():
    cell = {"auroc_low": 0.1, "auroc_high": 0.9}
    rows = [
        {"method": "source model", "site": "noise", "auroc": 0.6, **cell},
        {"method": "source model", "site": "blur", "auroc": 0.7, **cell},
        {"method": "AdaBN", "site": "noise", "auroc": 0.8, **cell},
    ]
    table = methods_table(rows)
    assert list(table.index) == ["source model", "AdaBN"]
    assert list(table.columns) == ["noise", "blur"]
    assert table.loc["AdaBN", "noise"] == "0.80 [0.10, 0.90]"
    assert table.loc["AdaBN", "blur"] == ""


def test_against_baseline_reads_separate_intervals_only():
    def row(method, site, value, low, high):
        return {"method": method, "site": site, "balanced_accuracy": value,
                "balanced_accuracy_low": low, "balanced_accuracy_high": high}  # fmt: skip

    rows = [
        row("source model", "blur", 0.7, 0.65, 0.75),
        row("source model", "noise", 0.7, 0.65, 0.75),
        row("AdaBN", "blur", 0.9, 0.80, 0.95),  # wholly above
        row("AdaBN", "noise", 0.5, 0.40, 0.60),  # wholly below
        row("L2-SP", "blur", 0.8, 0.74, 0.85),  # overlaps
        row("L2-SP", "source", 0.9, 0.85, 0.95),  # no baseline at that site
    ]
    table = against_baseline(rows)
    assert table.loc["AdaBN"].to_dict() == {"blur": "better", "noise": "worse"}
    assert table.loc["L2-SP"].to_dict() == {"blur": "unclear", "noise": ""}
    assert list(table.columns) == ["blur", "noise"]
