"""Reading a learning curve: gains paired by seed, and the long-schedule check of section 7."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from medtl_helpers.evaluation.curve_reading import (
    GAIN_COLUMNS,
    catch_up_verdict,
    paired_gains,
    schedule_gaps,
)


def rows(values: dict, epochs: int = 2) -> pd.DataFrame:
    """Results rows from {(init, fraction): [test AUROC of seed 0, 1, ...]}."""
    out = []
    for (init, fraction), aurocs in values.items():
        for seed, value in enumerate(aurocs):
            out.append(
                {"init": init, "fraction": fraction, "seed": seed, "epochs": epochs}
                | {"test_auroc": value}
            )
    return pd.DataFrame(out)


CURVE = rows(
    {
        # the bands overlap (ImageNet 0.80-0.84, random 0.70-0.83), yet every seed gains
        ("imagenet", 0.05): [0.80, 0.84, 0.82],
        ("random", 0.05): [0.70, 0.83, 0.79],
        ("imagenet", 1.0): [0.95, 0.96, 0.94],
        ("random", 1.0): [0.96, 0.93, 0.95],
    }
)


def test_overlapping_bands_can_hide_a_gain_every_seed_shows():
    gains = paired_gains(CURVE)
    assert list(gains.columns) == list(GAIN_COLUMNS) and list(gains.index) == [0.05, 1.0]
    small = gains.loc[0.05]
    assert small.seeds == 3 and small["mean"] == pytest.approx((0.10 + 0.01 + 0.03) / 3)
    assert (small["min"], small["max"]) == (pytest.approx(0.01), pytest.approx(0.10))
    assert small.sd == pytest.approx(pd.Series([0.10, 0.01, 0.03]).std())
    assert small.verdict == "ImageNet ahead in all 3 seeds"
    assert gains.loc[1.0].verdict == "signs differ: no consistent difference"
    behind = CURVE.assign(test_auroc=CURVE.test_auroc.where(CURVE.init == "random", 0.5))
    assert paired_gains(behind).loc[0.05].verdict == "random init ahead in all 3 seeds"


def test_paired_gains_with_one_seed_or_one_init():
    one = paired_gains(CURVE[CURVE.seed == 0])
    assert (one.seeds == 1).all() and one.sd.isna().all()
    assert set(one.verdict) == {"one seed: no spread to judge"}
    empty = paired_gains(CURVE[CURVE.init == "random"])
    assert empty.empty and list(empty.columns) == list(GAIN_COLUMNS)


def long_rows(imagenet: float | None, random: float, epochs: int = 6) -> pd.DataFrame:
    values = {("random", 1.0): [random]}
    if imagenet is not None:
        values[("imagenet", 1.0)] = [imagenet]
    return rows(values, epochs)


def test_both_initialisations_are_compared_at_the_same_schedule():
    table = schedule_gaps(CURVE, long_rows(0.97, 0.90))
    assert list(table.index) == ["short", "long"] and list(table.epochs) == [2, 6]
    assert table.loc["short", "imagenet"] == 0.95 and table.loc["short", "random"] == 0.96
    assert table.loc["long", "gap"] == pytest.approx(0.07)  # both long: only the schedule changed
    assert table.loc["short", "gap"] == pytest.approx(-0.01)
    only_random = schedule_gaps(CURVE[CURVE.init == "random"], long_rows(None, 0.97))
    assert "gap" not in only_random and "imagenet" not in only_random
    with pytest.raises(ValueError, match=r"no short run at 100% for seed\(s\) \[0\]"):
        schedule_gaps(CURVE[CURVE.fraction < 1], long_rows(0.97, 0.90))


def test_the_catch_up_verdict_is_computed_from_the_gaps_and_the_spread():
    curve = rows({("imagenet", 1.0): [0.95], ("random", 1.0): [0.85]})
    caught = catch_up_verdict(schedule_gaps(curve, long_rows(0.96, 0.955)), spread=0.01)
    assert "+0.100 after 2 epoch(s) to +0.005 after 6" in caught
    assert "caught up" in caught and "short schedule, not the start" in caught
    stays = catch_up_verdict(schedule_gaps(curve, long_rows(0.97, 0.90)), spread=0.01)
    assert "ImageNet weights stay ahead" in stays and "has not caught up after 6 epochs" in stays
    overtook = catch_up_verdict(schedule_gaps(curve, long_rows(0.90, 0.97)), spread=0.01)
    assert "random init ends ahead" in overtook
    noisy = catch_up_verdict(schedule_gaps(curve, long_rows(0.96, 0.955)), spread=0.06)
    assert "already within twice the seeds' sd" in noisy and "(0.120)" in noisy
    one_seed = catch_up_verdict(schedule_gaps(curve, long_rows(0.96, 0.955)), spread=math.nan)
    assert "cannot say whether random init caught up" in one_seed
    capped = catch_up_verdict(schedule_gaps(curve, long_rows(0.96, 0.95, epochs=2)), 0.01)
    assert "no more than the curve's 2" in capped and "MEDTL_MAX_EPOCHS" in capped
    alone = curve[curve.init == "random"]
    random_only = catch_up_verdict(schedule_gaps(alone, long_rows(None, 0.9)), spread=math.nan)
    assert "No pretrained run" in random_only and "0.850 after 2 epoch(s) to 0.900" in random_only
