"""Checkers for the exercises of notebook 07 (data efficiency).

Each checker runs the student's answer on cases where the reference answer is known and, at the
first difference, raises AssertionError with a sentence saying what differs and the likely cause.
On success it prints one sentence.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from medtl_helpers.course.checks.common import call_answer, plain, plain_number, require_answer
from medtl_helpers.course.watch import TamperingError
from medtl_helpers.evaluation.data_efficiency import passes_needed
from medtl_helpers.training import steps_per_epoch

__all__ = ["check_passes_needed", "check_seed_summary"]

# (images in the subset, batch size, epochs, minimum steps): a 1 % subset, a subset smaller than
# a batch, a partial batch of 28 that round(60 / 32) = 2 would count (fit drops it: 1 step), one
# where passes must be rounded up (45 / 11 steps = 4.09: 5 passes, not round's or floor's 4), and
# full data where `epochs` alone is enough.
PASS_CASES = (
    (38, 32, 2, 40),
    (20, 32, 2, 10),
    (60, 32, 3, 10),
    (377, 32, 2, 45),
    (3767, 32, 2, 40),
)


def _passes_hint(case: tuple[int, int, int, int], got: int) -> str:
    n, batch, epochs, min_steps = case
    steps = steps_per_epoch(n, batch)
    if got < epochs:
        return f"never fewer than `epochs` = {epochs} passes, however many steps one pass gives"
    # before the partial batch: a student who counted it fails on an earlier case already
    if got in (min_steps // steps, round(min_steps / steps)):
        return (
            f"round up: {got} passes of {steps} steps make {got * steps}, fewer than {min_steps}; "
            "use math.ceil, not round() or //"
        )
    partial = (
        f"`fit` drops the last partial batch ({n % batch} images), so {n} images at batch "
        f"{batch} give {steps} step(s) per pass, not {math.ceil(n / batch)}: use "
        "n_images // batch_size (and 1 when the subset is smaller than a batch)"
    )
    counted_partial = got == max(epochs, math.ceil(min_steps / math.ceil(n / batch)))
    expected = passes_needed(*case)
    if got == math.ceil(expected / epochs):  # on some cases the same number as counted_partial
        also = (
            f"; or, if you counted a partial batch as a step: {partial}" if counted_partial else ""
        )
        return (
            f"that is the repeats, the rule's {expected} passes / `epochs` = {epochs} rounded up "
            "(section 4); the exercise asks for the passes themselves, max(epochs, "
            f"ceil(min_steps / steps per pass)){also}"
        )
    if counted_partial:
        return partial
    if got == max(epochs, math.ceil(min_steps / max(1, n / batch))):
        return (
            f"you divided by n_images / batch_size = {n / batch:g}, a fraction of a step, but "
            f"`fit` takes only full batches: one pass gives {steps} step(s). Count steps with "
            "n_images // batch_size (and 1 when the subset is smaller than a batch)"
        )
    if got == epochs * math.ceil(expected / epochs):
        return (
            f"that is the rule's {expected} passes rounded up to a multiple of `epochs` = "
            f"{epochs}, the passes the curve trains (repeats x epochs, section 4); the rule "
            "itself is max(epochs, ceil(min_steps / steps per pass))"
        )
    return (
        f"one pass gives {steps} step(s), and max(epochs, ceil(min_steps / steps)) passes are due"
    )


def _type_hint(got: object) -> str:
    if type(got) is not float or not math.isfinite(got):
        return ""
    if got != int(got):
        return f": a number of passes is whole, so round {got:g} up with math.ceil"
    return ": `/` gives a float even when it divides evenly; math.ceil returns an int"


def check_passes_needed(passes_needed_fn: Callable[[int, int, int, int], int]) -> None:
    """`passes_needed_fn(n_images, batch_size, epochs, min_steps)` must match the course rule."""
    require_answer(passes_needed_fn, "your passes_needed")
    for case in PASS_CASES:
        n, batch, epochs, min_steps = case
        call = f"passes_needed({n}, {batch}, {epochs}, {min_steps})"
        expected = passes_needed(*case)
        try:
            got = passes_needed_fn(*case)
        except ZeroDivisionError as err:
            raise AssertionError(
                f"{call} raised ZeroDivisionError ({err}): {n} images are fewer than one batch of "
                f"{batch}, and `fit` then takes one step per pass on the whole subset, not 0."
            ) from err
        except (NotImplementedError, TamperingError):
            raise
        except Exception as err:
            raise AssertionError(
                f"{call} raised {type(err).__name__}: {err}. It takes four whole numbers and "
                "returns one."
            ) from err
        got = plain_number(got, f"the value {call} returned")
        if type(got) is not int:
            raise AssertionError(
                f"{call} returned {got!r} ({type(got).__name__}); expected a whole number of "
                f"passes, an int{_type_hint(got)}."
            )
        if got != expected:
            raise AssertionError(
                f"{call} returned {got!r}; expected {expected}: {_passes_hint(case, got)}."
            )
    print(
        f"Correct in all {len(PASS_CASES)} cases the checker tried: e.g. a subset of 38 images "
        f"at batch 32 needs {passes_needed(38, 32, 2, 40)} passes for 40 steps."
    )


def seed_results() -> pd.DataFrame:
    """A small made-up results table: 2 inits x 2 fractions x 3 seeds, with val and test AUROC.

    As in a real curve, each seed draws its own subset, so `images` differs between the seeds of
    one fraction and is the same for both inits of one seed.
    """
    test = [0.80, 0.84, 0.82, 0.95, 0.96, 0.94, 0.60, 0.70, 0.62, 0.90, 0.91, 0.95]
    rows = []
    for i, value in enumerate(test):
        init, fraction, seed = ("imagenet", "random")[i // 6], (0.05, 1.0)[(i // 3) % 2], i % 3
        images = {0.05: 37, 1.0: 752}[fraction] + 2 * seed
        rows.append({"init": init, "fraction": fraction, "seed": seed, "images": images})
        rows[-1].update(val_auroc=round(1.0 - value / 2, 3), test_auroc=value)
    return pd.DataFrame(rows)


def _reference_summary(results: pd.DataFrame) -> pd.DataFrame:
    grouped = results.groupby(["init", "fraction"]).test_auroc
    return grouped.agg(["mean", "std", "min", "max"]).rename(columns={"std": "sd"}).reset_index()


def check_seed_summary(summarise_seeds: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """`summarise_seeds(results)`: one row per (init, fraction) with mean, sd, min, max."""
    require_answer(summarise_seeds, "your summarise_seeds")
    results = seed_results()
    expected = _reference_summary(results)
    got = call_answer(
        summarise_seeds,
        (results.copy(),),
        "summarise_seeds(results)",
        "It takes the results table (columns init, fraction, seed, ..., test_auroc) and returns "
        "a DataFrame with one row per (init, fraction).",
    )
    got = plain(got, "the table summarise_seeds returned")
    if not isinstance(got, pd.DataFrame):
        raise AssertionError(f"summarise_seeds returned a {type(got).__name__}; return a DataFrame")
    if "init" not in got.columns or "fraction" not in got.columns:
        got = got.reset_index()
    if "init" not in got.columns or "fraction" not in got.columns:
        raise AssertionError(
            f"your table has no 'init' or no 'fraction' (columns {list(got.columns)}). Group by "
            "both: grouping by fraction alone mixes pretrained and random seeds in one row."
        )
    missing = [c for c in ("mean", "sd", "min", "max") if c not in got.columns]
    if missing:
        raise AssertionError(
            f"your table has columns {list(got.columns)}; it lacks {missing}. Name the statistics "
            "mean, sd, min and max (e.g. .agg(['mean', 'std', 'min', 'max']) and rename std)."
        )
    if len(got) != len(expected):
        raise AssertionError(
            f"your table has {len(got)} rows; expected {len(expected)}, one per (init, fraction)"
            + _rows_hint(got)
        )
    got = got.sort_values(["init", "fraction"]).reset_index(drop=True)
    for column in ("mean", "sd", "min", "max"):
        for (_, want), (_, have) in zip(expected.iterrows(), got.iterrows()):
            if not math.isclose(float(have[column]), float(want[column]), abs_tol=1e-6):
                where = f"{want['init']} at {want['fraction']:.0%}"
                seeds = results[
                    (results.init == want["init"]) & (results.fraction == want["fraction"])
                ]
                raise AssertionError(
                    f"{column} for {where} is {float(have[column]):.4f}; expected "
                    f"{want[column]:.4f} from the test AUROCs {seeds.test_auroc.tolist()}. "
                    + _summary_hint(column, float(have[column]), seeds)
                )
    print(
        "Correct: one row per (init, fraction) with the mean and the spread of the seeds' test "
        "AUROC (sd with n - 1, as pandas computes it)."
    )


def _rows_hint(got: pd.DataFrame) -> str:
    extra = [c for c in ("seed", "images") if c in got.columns]
    if extra:
        return (
            f": you also grouped by {extra}. Each seed draws its own subset, so the number of "
            "images differs between the seeds of one fraction, and grouping by it (or by seed) "
            "gives one row per seed. Group by init and fraction only."
        )
    return ". Group by both columns: grouping by fraction alone mixes pretrained and random seeds."


def _summary_hint(column: str, value: float, seeds: pd.DataFrame) -> str:
    if math.isclose(value, float(seeds.test_auroc.std(ddof=0)), abs_tol=1e-6):
        return "That is the population sd (numpy's default, ddof=0); use the sample sd (ddof=1)."
    variances = [
        ddof
        for ddof in (0, 1)
        if math.isclose(value, float(seeds.test_auroc.var(ddof=ddof)), abs_tol=1e-6)
    ]
    if column == "sd" and variances:
        return (
            f"That is the variance (ddof={variances[0]}), the sd squared; the sd is std(ddof=1), "
            "the square root of var(ddof=1)."
        )
    if column == "sd" and math.isclose(value, float(seeds.test_auroc.sem()), abs_tol=1e-6):
        return (
            "That is the standard error of the mean (sd / sqrt(n), pandas' sem), which shrinks "
            "with more seeds; the sd is the spread of the seeds themselves (std, ddof=1)."
        )
    if math.isclose(value, float(getattr(seeds.val_auroc, column.replace("sd", "std"))())):
        return "That is computed from val_auroc: the curve reports the TEST AUROC."
    return "Compute it over the seeds of that (init, fraction) from the test_auroc column."
