"""Few-shot methods over repeated support draws: paired differences and their intervals."""

from __future__ import annotations

import numpy as np
import pytest

from medtl_helpers.adaptation.repeats import paired_over_draws, repeat_draws
from medtl_helpers.metrics import auroc, balanced_accuracy

Y = np.repeat([0, 1], 20)


def scores(separation: float, seed: int) -> np.ndarray:
    """Probabilities whose log-odds are separation * (2y - 1) plus unit normal noise."""
    noise = np.random.default_rng(seed).normal(size=Y.size)
    return 1 / (1 + np.exp(-(separation * (2 * Y - 1) + noise)))


def draws(separations: dict[str, float], n: int = 5) -> list[dict[str, np.ndarray]]:
    return [
        {m: scores(s, 100 * r + i) for i, (m, s) in enumerate(separations.items())}
        for r in range(n)
    ]


def test_repeat_draws_passes_the_draw_seed_and_keeps_only_the_probabilities():
    seen = []

    def run(seed):
        seen.append(seed)
        return {"head only": {"p": [0.1, 0.9], "curve": []}, "L2-SP": np.array([0.2, 0.8])}

    out = repeat_draws(run, draws=5)
    assert seen == [0, 1, 2, 3, 4]
    assert np.array_equal(out[3]["head only"], [0.1, 0.9])
    assert np.array_equal(out[3]["L2-SP"], [0.2, 0.8])
    with pytest.raises(ValueError, match="at least 2 draws"):
        repeat_draws(run, draws=1)


def test_a_method_better_in_every_draw_is_better_with_an_interval_above_zero():
    results = draws({"head only": 0.3, "L2-SP": 2.0})
    table = paired_over_draws(results, Y, "head only", unit="images", n_boot=500)
    for metric, score in (("auroc", auroc), ("balanced_accuracy", balanced_accuracy)):
        row = table.loc[("L2-SP", metric)]
        per_draw = [score(Y, r["L2-SP"]) - score(Y, r["head only"]) for r in results]
        assert row["difference"] == pytest.approx(np.mean(per_draw))
        assert row["min"] == pytest.approx(min(per_draw)) and row["max"] == pytest.approx(
            max(per_draw)
        )
        assert row["min"] > 0 and row["better_in"] == 5 and row["draws"] == 5
        assert 0 < row["low"] < row["difference"] < row["high"]
        assert row["verdict"] == "L2-SP is better"
    # The other way round, the baseline is better.
    reverse = paired_over_draws(results, Y, "L2-SP", n_boot=200)
    assert reverse.loc[("head only", "auroc"), "verdict"] == "L2-SP is better"
    assert reverse.loc[("head only", "auroc"), "better_in"] == 0


def test_identical_methods_differ_by_zero_and_are_not_settled():
    results = [{"a": r["a"], "same": r["a"].copy()} for r in draws({"a": 1.0})]
    table = paired_over_draws(results, Y, "a", unit="images", n_boot=200)
    for metric in ("auroc", "balanced_accuracy"):
        row = table.loc[("same", metric)]
        assert (row["difference"], row["low"], row["high"]) == (0.0, 0.0, 0.0)
        assert row["better_in"] == 0
        assert row["verdict"] == "not settled by these images and draws (the interval includes 0)"


def test_the_bootstrap_resamples_patients_not_images():
    # 20 patients; patient "a" holds 30 images, every other patient one. The method beats the
    # baseline on patient a's images only (0.6 against 0.4 at threshold 0.5), nowhere else.
    y = np.r_[np.ones(30), np.repeat([0, 1], [10, 9])].astype(int)
    patients = ["a"] * 30 + [f"p{i}" for i in range(19)]
    base = np.r_[np.full(30, 0.4), np.linspace(0.05, 0.45, 10), np.linspace(0.55, 0.95, 9)]
    better = base.copy()
    better[:30] = 0.6
    results = [{"baseline": base, "method": better}] * 5
    by_image = paired_over_draws(results, y, "baseline", unit="images", n_boot=400)
    by_patient = paired_over_draws(results, y, "baseline", groups=patients, n_boot=400)
    row = by_image.loc[("method", "balanced_accuracy")]
    assert row["low"] > 0 and row["verdict"] == "method is better"
    # Patient a is left out of (19/20)^20 = 36% of patient resamples: the difference is 0 there.
    row = by_patient.loc[("method", "balanced_accuracy")]
    assert row["low"] == 0 and row["high"] > 0
    assert row["verdict"] == "not settled by these patients and draws (the interval includes 0)"
    assert row["difference"] == by_image.loc[("method", "balanced_accuracy"), "difference"]


def test_resampling_the_draws_widens_the_interval_by_their_spread():
    # Better by a lot in 3 draws, worse by a lot in 2: resampling test images alone cannot
    # see how much the mean over 5 draws depends on which draws they were.
    results = [
        {"baseline": scores(1.0, 10 + r), "method": scores(3.0 if r < 3 else 0.1, 20 + r)}
        for r in range(5)
    ]
    fixed = paired_over_draws(results, Y, "baseline", resample_draws=False, n_boot=400)
    both = paired_over_draws(results, Y, "baseline", n_boot=400)
    for metric in ("auroc", "balanced_accuracy"):
        width = both.loc[("method", metric), "high"] - both.loc[("method", metric), "low"]
        narrow = fixed.loc[("method", metric), "high"] - fixed.loc[("method", metric), "low"]
        assert width > narrow
        # On these draws alone the baseline wins on average (the 2 bad draws outweigh the 3
        # good ones); over draws like these it is not settled.
        assert fixed.loc[("method", metric), "verdict"] == "baseline is better"
        verdict = both.loc[("method", metric), "verdict"]
        assert verdict.startswith("not settled by these patients and draws")
    assert both.loc[("method", "auroc"), "better_in"] == 3


def test_paired_over_draws_refuses_draws_that_do_not_match():
    results = draws({"a": 1.0, "b": 2.0}, n=2)
    with pytest.raises(ValueError, match="baseline 'c' is not among the methods"):
        paired_over_draws(results, Y, "c")
    with pytest.raises(ValueError, match="draw 1 holds \\['a'\\], draw 0 holds"):
        paired_over_draws([results[0], {"a": results[1]["a"]}], Y, "a")
    with pytest.raises(ValueError, match="draw 0, b: 39 probabilities for 40 test labels"):
        paired_over_draws([{"a": results[0]["a"], "b": results[0]["b"][:-1]}] * 2, Y, "a")
    with pytest.raises(ValueError, match="at least 2 draws"):
        paired_over_draws(results[:1], Y, "a")
