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


def rows(values: dict, epochs: int = 2, steps: int | None = None) -> pd.DataFrame:
    """Results rows from {(init, fraction): [test AUROC of seed 0, 1, ...]}."""
    out = []
    for (init, fraction), aurocs in values.items():
        for seed, value in enumerate(aurocs):
            out.append(
                {"init": init, "fraction": fraction, "seed": seed, "epochs": epochs}
                | {"steps": 10 * epochs if steps is None else steps, "test_auroc": value}
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
    assert "random init 0.850 -> 0.955, ImageNet weights 0.950 -> 0.960" in caught
    assert (
        "random init's rise made at least half of the closing: at this data size it caught up"
        in caught
    )
    assert "points to the short schedule rather than the start" in caught
    stays = catch_up_verdict(schedule_gaps(curve, long_rows(0.97, 0.90)), spread=0.01)
    assert "ImageNet weights stay ahead" in stays and "has not caught up after 6 epochs" in stays
    overtook = catch_up_verdict(schedule_gaps(curve, long_rows(0.90, 0.97)), spread=0.01)
    assert "random init ends ahead" in overtook
    noisy = catch_up_verdict(schedule_gaps(curve, long_rows(0.96, 0.955)), spread=0.06)
    assert "within twice the seeds' sd of the paired gain at 100 % (0.120)" in noisy
    assert "on both schedules: no clear gap on either schedule" in noisy
    one_seed = catch_up_verdict(schedule_gaps(curve, long_rows(0.96, 0.955)), spread=math.nan)
    assert "cannot say whether random init caught up" in one_seed
    capped = catch_up_verdict(schedule_gaps(curve, long_rows(0.96, 0.95, epochs=2)), 0.01)
    assert "no more than the curve's 2" in capped and "MEDTL_MAX_EPOCHS" in capped
    alone = curve[curve.init == "random"]
    random_only = catch_up_verdict(schedule_gaps(alone, long_rows(None, 0.9)), spread=math.nan)
    assert "No pretrained run" in random_only and "0.850 after 2 epoch(s) to 0.900" in random_only


def test_a_zero_gain_is_a_tie_not_a_sign():
    ties = rows(
        {
            ("imagenet", 0.05): [0.82, 0.80, 0.85],
            ("random", 0.05): [0.80, 0.80, 0.81],
            ("imagenet", 1.0): [0.90, 0.90, 0.90],
            ("random", 1.0): [0.90, 0.90, 0.90],
        }
    )
    gains = paired_gains(ties)
    one_tie = gains.loc[0.05].verdict
    assert one_tie == (
        "no consistent difference: ImageNet ahead in 2, random init ahead in 0, tied (gain 0) "
        "in 1 of 3 seeds"
    )
    assert "signs differ" not in one_tie
    assert gains.loc[1.0].verdict.endswith("tied (gain 0) in 3 of 3 seeds")


CLOSING = rows({("imagenet", 1.0): [0.95], ("random", 1.0): [0.85]})


def test_a_gap_that_closes_because_imagenet_fell_is_not_a_catch_up():
    fell = catch_up_verdict(schedule_gaps(CLOSING, long_rows(0.86, 0.85)), spread=0.01)
    assert "+0.100 after 2 epoch(s) to +0.010 after 6" in fell
    assert "random init 0.850 -> 0.850, ImageNet weights 0.950 -> 0.860" in fell
    assert "random init did not improve" in fell and "not random init catching up" in fell
    assert "caught up once" not in fell
    overtaken = catch_up_verdict(schedule_gaps(CLOSING, long_rows(0.70, 0.84)), spread=0.01)
    assert "random init ends ahead by more than" in overtaken
    assert "did not improve" in overtaken and "not random init overtaking" in overtaken
    barely = catch_up_verdict(schedule_gaps(CLOSING, long_rows(0.87, 0.86)), spread=0.01)
    assert "random init rose by only 0.010 of the 0.090 the gap closed" in barely
    assert "mostly because the ImageNet run got worse" in barely and "caught up once" not in barely


def test_no_clear_gap_on_the_short_schedule_still_reads_the_long_one():
    level = rows({("imagenet", 1.0): [0.90], ("random", 1.0): [0.89]})
    opened = catch_up_verdict(schedule_gaps(level, long_rows(0.97, 0.88)), spread=0.01)
    assert "within twice the seeds' sd of the paired gain at 100 % (0.020)" in opened
    assert "ImageNet weights end ahead by more than that after 6 epochs" in opened
    assert "no clear gap to close" not in opened
    flipped = catch_up_verdict(schedule_gaps(level, long_rows(0.85, 0.93)), spread=0.01)
    assert "random init ends ahead by more than that after 6 epochs" in flipped
    both = catch_up_verdict(schedule_gaps(level, long_rows(0.95, 0.945)), spread=0.01)
    assert "no clear gap on either schedule" in both and "one seed" in both


def test_the_schedules_are_read_at_any_fraction_of_the_curve():
    curve = rows({("imagenet", 0.05): [0.90], ("random", 0.05): [0.70]}, steps=40)
    long = rows({("imagenet", 0.05): [0.91], ("random", 0.05): [0.89]}, epochs=6, steps=120)
    table = schedule_gaps(curve, long, fraction=0.05)
    assert list(table.steps) == [40, 120] and list(table.fraction) == [0.05, 0.05]
    assert table.loc["short", "gap"] == pytest.approx(0.20)
    verdict = catch_up_verdict(table, spread=0.02)
    assert "twice the seeds' sd of the paired gain at 5 % (0.040)" in verdict
    assert "+0.200 after 2 epoch(s) to +0.020 after 6 (40 -> 120 steps; random init" in verdict
    with pytest.raises(ValueError, match=r"no short run at 5% for seed\(s\) \[0\]"):
        schedule_gaps(CURVE[CURVE.fraction == 1.0], long, fraction=0.05)


def test_a_rise_of_exactly_half_the_closing_counts_and_the_sentence_says_so():
    half = catch_up_verdict(schedule_gaps(CLOSING, long_rows(0.90, 0.90)), spread=0.01)
    assert "random init's rise made at least half of the closing" in half


def test_a_gap_that_stays_clear_still_says_how_much_of_it_closed_and_who_moved():
    # the review's example: +0.200 -> +0.060 at 1 %, random init 0.700 -> 0.850, sd 0.023
    short = rows({("imagenet", 0.01): [0.900], ("random", 0.01): [0.700]}, steps=48)
    long = rows({("imagenet", 0.01): [0.910], ("random", 0.01): [0.850]}, epochs=6, steps=144)
    verdict = catch_up_verdict(schedule_gaps(short, long, fraction=0.01), spread=0.023)
    assert "+0.200 after 2 epoch(s) to +0.060 after 6" in verdict
    assert (
        "stay ahead by more than twice the seeds' sd of the paired gain at 1 % (0.046)" in verdict
    )
    assert (
        "but the gap shrank by 0.140, more than that yardstick, while random init rose by 0.150: "
        "in this one pair of runs all of the closing was the short schedule's (random init "
        "under-trained)" in verdict
    )
    assert "and the +0.060 that stays points to the start, up to this budget" in verdict
    assert "only" not in verdict  # what stays (0.060) is smaller than what closed: no "only"
    fell = rows({("imagenet", 0.01): [0.780], ("random", 0.01): [0.710]}, epochs=6, steps=144)
    worse = catch_up_verdict(schedule_gaps(short, fell, fraction=0.01), spread=0.023)
    assert (
        "the gap shrank by 0.130, more than that yardstick, but random init rose by only" in worse
    )
    assert "in this one pair of runs it shrank mostly because the ImageNet run got worse" in worse
    assert "under-trained" not in worse
    grew = rows({("imagenet", 0.01): [0.950], ("random", 0.01): [0.720]}, epochs=6, steps=144)
    wider = catch_up_verdict(schedule_gaps(short, grew, fraction=0.01), spread=0.023)
    assert "the gap did not shrink (+0.200 -> +0.230)" in wider
    assert "it points to the start, up to this budget" in wider


def test_a_closing_within_the_yardstick_is_given_no_cause():
    # the pass-4 review's example: +0.100 -> +0.095 at 1 % with sd 0.026 (yardstick 0.052)
    short = rows({("imagenet", 0.01): [0.850], ("random", 0.01): [0.750]}, steps=48)
    long = rows({("imagenet", 0.01): [0.852], ("random", 0.01): [0.757]}, epochs=6, steps=144)
    verdict = catch_up_verdict(schedule_gaps(short, long, fraction=0.01), spread=0.026)
    assert (
        "stay ahead by more than twice the seeds' sd of the paired gain at 1 % (0.052)" in verdict
    )
    assert (
        "; the gap shrank by 0.005, within that yardstick: no measurable part of it was the short "
        "schedule's, and it points to the start, up to this budget." in verdict
    )
    assert "under-trained" not in verdict and "%" not in verdict.split("0.052)")[-1]
    assert "only" not in verdict
    # an ImageNet drop of 0.020 against a yardstick of 0.040 is not read as a cause either
    fell = rows({("imagenet", 0.01): [0.830], ("random", 0.01): [0.750]}, epochs=6, steps=144)
    worse = catch_up_verdict(schedule_gaps(short, fell, fraction=0.01), spread=0.020)
    assert "the gap shrank by 0.020, within that yardstick: no measurable part" in worse
    assert "got worse" not in worse
    # just over the yardstick, the closing is split between the arms again
    over = rows({("imagenet", 0.01): [0.850], ("random", 0.01): [0.790]}, epochs=6, steps=144)
    split = catch_up_verdict(schedule_gaps(short, over, fraction=0.01), spread=0.010)
    assert (
        "the gap shrank by 0.040, more than that yardstick, while random init rose by 0.040"
        in split
    )
    assert "and the +0.060 that stays points to the start" in split


def test_a_barely_clear_gap_that_closes_by_a_noise_sized_amount_is_given_no_cause():
    # the pass-5 review's tables: +0.053 -> +0.051 at 100 % with sd 0.026 (yardstick 0.052)
    short = rows({("imagenet", 1.0): [0.953], ("random", 1.0): [0.900]})
    rose = catch_up_verdict(schedule_gaps(short, long_rows(0.953, 0.902)), spread=0.026)
    assert "+0.053 after 2 epoch(s) to +0.051 after 6" in rose
    assert rose.endswith(
        ", now within twice the seeds' sd of the paired gain at 100 % (0.052), but it closed by "
        "only 0.002, itself within that yardstick: the short gap was barely clear, and this pair "
        "cannot say whether random init caught up."
    )
    assert "caught up once" not in rose and "short schedule rather than" not in rose
    fell = catch_up_verdict(schedule_gaps(short, long_rows(0.951, 0.900)), spread=0.026)
    assert fell.endswith("this pair cannot say whether random init caught up.")
    assert "got worse" not in fell and "did not improve" not in fell


def test_the_split_of_a_closing_above_the_yardstick_is_a_reading_of_one_pair():
    # the pass-5 review's example: 0.850/0.700 -> 0.830/0.720 at 1 % with sd 0.019
    short = rows({("imagenet", 0.01): [0.850], ("random", 0.01): [0.700]}, steps=48)
    long = rows({("imagenet", 0.01): [0.830], ("random", 0.01): [0.720]}, epochs=6, steps=144)
    verdict = catch_up_verdict(schedule_gaps(short, long, fraction=0.01), spread=0.019)
    tail = verdict.split("(0.038)")[-1]
    assert "%" not in tail  # no share of the gap or of the closing read to the percent
    assert (
        ", but the gap shrank by 0.040, more than that yardstick, while random init rose by "
        "0.020: in this one pair of runs at least half of the closing was the short schedule's "
        "(random init under-trained)" in tail
    )
