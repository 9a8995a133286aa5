"""The notebook 07 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

import math

import pytest

from medtl_helpers.course.checks import check_passes_needed, check_seed_summary
from medtl_helpers.evaluation.data_efficiency import passes_needed


def partial_batches(n_images, batch_size, epochs, min_steps):
    """Counts the last partial batch as a step, which `fit` drops."""
    return max(epochs, math.ceil(min_steps / math.ceil(n_images / batch_size)))


def rounds_down(n_images, batch_size, epochs, min_steps):
    steps = n_images // batch_size if n_images > batch_size else 1
    return max(epochs, min_steps // steps)


def forgets_epochs(n_images, batch_size, epochs, min_steps):
    steps = n_images // batch_size if n_images > batch_size else 1
    return math.ceil(min_steps / steps)


def no_small_subsets(n_images, batch_size, epochs, min_steps):
    return max(epochs, math.ceil(min_steps / (n_images // batch_size)))


def test_passes_checker_accepts_the_reference(capsys):
    check_passes_needed(passes_needed)
    assert "Correct in all 5 cases the checker tried" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (partial_batches, "drops the last partial batch, so 38 images at batch 32 give 1 step"),
        (rounds_down, r"returned 3; expected 4: round up"),
        (forgets_epochs, "never fewer than `epochs` = 2 passes"),
        (no_small_subsets, "fewer than one batch of 32"),
    ],
)
def test_passes_checker_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_passes_needed(answer)


def reference_summary(results):
    grouped = results.groupby(["init", "fraction"]).test_auroc
    return grouped.agg(["mean", "std", "min", "max"]).rename(columns={"std": "sd"})


def test_summary_checker_accepts_the_reference_with_or_without_an_index(capsys):
    check_seed_summary(reference_summary)
    check_seed_summary(lambda r: reference_summary(r).reset_index())
    assert capsys.readouterr().out.count("Correct") == 2


def by_fraction_only(results):
    grouped = results.groupby("fraction").test_auroc
    return grouped.agg(["mean", "std", "min", "max"]).rename(columns={"std": "sd"})


def one_seed_only(results):
    return reference_summary(results[results.seed == 0]).head(2)


def population_sd(results):
    table = reference_summary(results)
    table["sd"] = results.groupby(["init", "fraction"]).test_auroc.std(ddof=0)
    return table


def validation_scores(results):
    grouped = results.groupby(["init", "fraction"]).val_auroc
    return grouped.agg(["mean", "std", "min", "max"]).rename(columns={"std": "sd"})


def unnamed_std(results):
    return results.groupby(["init", "fraction"]).test_auroc.agg(["mean", "std", "min", "max"])


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (by_fraction_only, "no 'init'.*mixes pretrained and random"),
        (one_seed_only, "has 2 rows; expected 4, one per"),
        (population_sd, "sd for imagenet at 5% .*population sd"),
        (validation_scores, "mean for imagenet at 5% .*computed from val_auroc"),
        (unnamed_std, r"lacks \['sd'\]"),
    ],
)
def test_summary_checker_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_seed_summary(answer)
