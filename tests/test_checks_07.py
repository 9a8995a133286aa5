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


def rounds_steps(n_images, batch_size, epochs, min_steps):
    """round(n / b) steps: counts a partial batch of more than half a batch, which `fit` drops."""
    return max(epochs, math.ceil(min_steps / max(1, round(n_images / batch_size))))


def rounds_passes(n_images, batch_size, epochs, min_steps):
    steps = n_images // batch_size if n_images > batch_size else 1
    return max(epochs, round(min_steps / steps))


def unrounded(n_images, batch_size, epochs, min_steps):
    steps = n_images // batch_size if n_images > batch_size else 1
    return max(epochs, min_steps / steps)


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
        (partial_batches, r"partial batch \(6 images\), so 38 images at batch 32 give 1 step"),
        (
            rounds_down,
            r"passes_needed\(377, 32, 2, 45\) returned 4; expected 5: round up: 4 "
            r"passes of 11 steps make 44, fewer than 45",
        ),
        (
            rounds_steps,
            r"passes_needed\(60, 32, 3, 10\) returned 5; expected 10: `fit` drops the "
            r"last partial batch \(28 images\), so 60 images at batch 32 give 1 step\(s\) per "
            r"pass, not 2",
        ),
        (rounds_passes, r"\(377, 32, 2, 45\) returned 4; expected 5: round up.*not round\(\)"),
        (
            unrounded,
            r"returned 40\.0 \(float\); expected a whole number of passes, an int: `/` gives a "
            r"float even when it divides evenly",
        ),
        (
            lambda n, b, e, m: 45 / 11 if n == 377 else passes_needed(n, b, e, m),
            r"returned 4\.0909\d* \(float\); expected a whole number of passes, an int: a "
            r"number of passes is whole, so round 4\.09091 up with math\.ceil",
        ),
        (lambda n, b, e, m: max(e, -(-m // n)), r"passes_needed\(38, 32, 2, 40\) returned 2"),
        (lambda n, b, e, m: str(passes_needed(n, b, e, m)), r"returned '40' \(str\)"),
        (lambda n, b, e: e, r"raised TypeError: .*four whole numbers"),
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


def also_by_images(results):
    """Groups by the subset's size too: one row per seed, since each seed draws its own subset."""
    grouped = results.groupby(["init", "fraction", "images"]).test_auroc
    return grouped.agg(["mean", "std", "min", "max"]).rename(columns={"std": "sd"})


def also_by_seed(results):
    grouped = results.groupby(["init", "fraction", "seed"]).test_auroc
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
        (
            also_by_images,
            r"has 12 rows; expected 4, one per \(init, fraction\): you also grouped by "
            r"\['images'\]\. Each seed draws its own subset, so the number of images differs "
            r"between the seeds of one fraction",
        ),
        (also_by_seed, r"has 12 rows; expected 4.*you also grouped by \['seed'\]"),
        (population_sd, "sd for imagenet at 5% .*population sd"),
        (validation_scores, "mean for imagenet at 5% .*computed from val_auroc"),
        (unnamed_std, r"lacks \['sd'\]"),
    ],
)
def test_summary_checker_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_seed_summary(answer)


def test_the_made_up_results_vary_the_images_between_seeds_not_between_inits():
    from medtl_helpers.course.checks.nb07 import seed_results

    results = seed_results()
    per_fraction = results.groupby(["init", "fraction"]).images.nunique()
    assert (per_fraction == 3).all()  # each seed drew a subset of its own size
    per_seed = results.groupby(["fraction", "seed"]).images.nunique()
    assert (per_seed == 1).all()  # both inits of a seed train on the same subset


def test_summary_checker_explains_an_error():
    def grouped_by_a_wrong_name(results):
        return results.groupby(["initialisation", "fraction"]).test_auroc.agg(["mean", "std"])

    with pytest.raises(AssertionError) as err:
        check_seed_summary(grouped_by_a_wrong_name)
    message = str(err.value)
    assert message.startswith("summarise_seeds(results) raised KeyError: 'initialisation'.")
    assert message.endswith("returns a DataFrame with one row per (init, fraction).")


def true_division(n_images, batch_size, epochs, min_steps):
    """Divides by n / b, a fraction of a step, instead of counting full batches."""
    return max(epochs, math.ceil(min_steps / max(1, n_images / batch_size)))


def multiple_of_epochs(n_images, batch_size, epochs, min_steps):
    """The passes trained (repeats x epochs), not the rule's passes."""
    return epochs * math.ceil(passes_needed(n_images, batch_size, epochs, min_steps) / epochs)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            lambda n, b, e, m: float(passes_needed(n, b, e, m)),
            r"passes_needed\(38, 32, 2, 40\) returned 40\.0 \(float\); expected a whole number "
            r"of passes, an int",
        ),
        (
            true_division,
            r"returned 34; expected 40: you divided by n_images / batch_size = 1\.1875, a "
            r"fraction of a step.*1 step\(s\).*n_images // batch_size",
        ),
        (
            multiple_of_epochs,
            r"\(60, 32, 3, 10\) returned 12; expected 10: that is the rule's 10 passes rounded up "
            r"to a multiple of `epochs` = 3",
        ),
    ],
)
def test_passes_checker_names_floats_fractional_steps_and_the_passes_trained(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_passes_needed(answer)


def standard_error(results):
    table = reference_summary(results)
    table["sd"] = results.groupby(["init", "fraction"]).test_auroc.sem()
    return table


def test_summary_checker_names_the_standard_error():
    with pytest.raises(AssertionError, match=r"sd for imagenet at 5% .*standard error"):
        check_seed_summary(standard_error)


def the_repeats(n_images, batch_size, epochs, min_steps):
    """How often the subset is repeated (passes / epochs, rounded up), not the passes."""
    return math.ceil(passes_needed(n_images, batch_size, epochs, min_steps) / epochs)


def test_passes_checker_names_the_repeats_and_still_the_partial_batch():
    # on (38, 32, 2, 40) the repeats, 20, are also what counting the partial batch gives
    with pytest.raises(AssertionError) as err:
        check_passes_needed(the_repeats)
    message = str(err.value)
    assert message.startswith("passes_needed(38, 32, 2, 40) returned 20; expected 40: that is ")
    assert "the repeats, the rule's 40 passes / `epochs` = 2 rounded up (section 4)" in message
    assert "the exercise asks for the passes themselves" in message
    assert "; or, if you counted a partial batch as a step: `fit` drops the last partial" in message
    with pytest.raises(AssertionError) as err:
        check_passes_needed(partial_batches)
    assert "that is the repeats" in str(err.value)  # the same 20: both readings are named
    assert "`fit` drops the last partial batch (6 images)" in str(err.value)


def variance(results):
    table = reference_summary(results)
    table["sd"] = results.groupby(["init", "fraction"]).test_auroc.var()
    return table


def test_summary_checker_names_the_variance():
    with pytest.raises(AssertionError, match=r"sd for imagenet at 5% .*That is the variance"):
        check_seed_summary(variance)


@pytest.mark.parametrize("ddof", [0, 1])
def test_the_variance_hint_names_the_ddof_found_and_the_right_sd(ddof):
    def population_variance(results):
        table = reference_summary(results)
        table["sd"] = results.groupby(["init", "fraction"]).test_auroc.var(ddof=ddof)
        return table

    with pytest.raises(AssertionError) as err:
        check_seed_summary(population_variance)
    assert (
        f"That is the variance (ddof={ddof}), the sd squared; the sd is std(ddof=1), the square "
        "root of var(ddof=1)." in str(err.value)
    )
    assert "take its square root" not in str(err.value)  # from var(ddof=0) that gives ddof=0
