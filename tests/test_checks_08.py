"""The notebook 08 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from medtl_helpers.adaptation import coral_distance, reset_batchnorm_statistics
from medtl_helpers.course.checks import (
    check_batchnorm_reset,
    check_coral_distance,
    check_most_drifted,
)
from medtl_helpers.course.checks.nb08 import drift_cases


def test_reset_checker_accepts_the_reference(capsys):
    check_batchnorm_reset(reset_batchnorm_statistics)
    out = capsys.readouterr().out
    assert "Correct: in the checker's small test model, all 3 BatchNorm layers forgot" in out


def resets_parameters(model):
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_parameters()  # statistics and the learned weight and bias
            module.momentum = None


def top_level_only(model):
    for module in model.children():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            module.momentum = None


def keeps_momentum(model):
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()


def zeroes_by_hand(model):
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.running_mean.zero_()
            module.running_var.fill_(1.0)
            module.momentum = None


def resets_a_copy(model):
    other = copy.deepcopy(model)
    reset_batchnorm_statistics(other)
    return other


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (resets_parameters, "lost its learned weight and bias: reset_parameters"),
        (
            top_level_only,
            r"\['3.1', '4.2'\] still hold the old running mean.*not only the top-level",
        ),
        (keeps_momentum, "keeps momentum=0.1: .*plain average over every target batch"),
        (zeroes_by_hand, "still counts 40 batches seen"),
        (resets_a_copy, "you reset a copy and returned it"),
    ],
)
def test_reset_checker_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_batchnorm_reset(answer)


def first_layer(drift):
    return drift[drift.depth == 0].set_index("site").mean_shift.idxmax()


def last_layer(drift):
    return drift[drift.depth == drift.depth.max()].set_index("site").mean_shift.idxmax()


def reference_most_drifted(drift):
    return drift.groupby("site").mean_shift.mean().idxmax()


def test_drift_checker_accepts_the_reference(capsys):
    check_most_drifted(reference_most_drifted)
    out = capsys.readouterr().out
    assert "the checker's own drift table (made-up numbers, not your run), 'exposure'" in out


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda d: d.groupby("site").mean_shift.max().idxmax(), "returned 'blur'.*largest or last"),
        (last_layer, "returned 'blur'.*largest or last layer"),
        (first_layer, "returned 'noise'.*not the first alone"),
        (lambda d: d.groupby("site").mean_shift.first().idxmax(), "returned 'noise'.*first alone"),
        (lambda d: d.groupby("site").mean_shift.median().idxmax(), "largest median"),
        (lambda d: d.groupby("site").sd_ratio.mean().idxmax(), "'marker'.*largest sd_ratio"),
        (lambda d: d.groupby("site").mean_shift.mean().idxmin(), "the control, the smallest"),
        (lambda d: d.groupby("site").mean_shift.sum().idxmax(), "'contrast'.*as in a sum over"),
        (lambda d: d.groupby("site").mean_shift.mean(), "return the site's name as a string"),
    ],
)
def test_drift_checker_explains_wrong_answers(answer, message):
    # Each wrong reading of "the largest average drift" picks its own site, so none passes.
    with pytest.raises(AssertionError, match=message):
        check_most_drifted(answer)


def test_the_drift_table_gives_one_site_fewer_layer_rows_so_a_sum_is_not_the_mean():
    drift = drift_cases()
    rows = drift.groupby("site").size()
    assert rows["exposure"] == 3 and set(rows.drop("exposure")) == {4}
    assert drift.groupby("site").mean_shift.mean().idxmax() == "exposure"
    assert drift.groupby("site").mean_shift.sum().idxmax() == "contrast"


def zero_filled_pivot(drift):
    return (
        drift.pivot(index="site", columns="depth", values="mean_shift")
        .fillna(0)
        .mean(axis=1)
        .idxmax()
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda d: d.groupby("site").mean_shift.apply(lambda s: (s**2).mean()).idxmax(), "squared"),
        (
            lambda d: d.groupby("site").mean_shift.apply(lambda s: s.iloc[1:].mean()).idxmax(),
            "first row",
        ),
        (zero_filled_pivot, "missing first layer counts as 0.*fillna\\(0\\)"),
    ],
)
def test_drift_checker_rejects_other_statistics_and_a_zero_filled_layer(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_most_drifted(answer)


def test_coral_hint_names_the_centred_product():
    def over_images(source, target):
        return coral_distance(source.T, target.T)

    with pytest.raises(AssertionError) as error:
        check_coral_distance(over_images)
    assert "x.T @ x," not in str(error.value)


def test_coral_checker_accepts_the_reference(capsys):
    check_coral_distance(coral_distance)
    out = capsys.readouterr().out
    assert out.startswith("Correct: on the checker's own test case (30 and 20 random feature rows")


def unbiased_cov(x):
    centred = x - x.mean(0)
    return centred.T @ centred / (len(x) - 1)


def no_scale(s, t):
    return (unbiased_cov(s) - unbiased_cov(t)).pow(2).sum()


def not_squared(s, t):
    d = s.shape[1]
    return torch.linalg.norm(unbiased_cov(s) - unbiased_cov(t)) / (4 * d * d)


def biased(s, t):
    def cov(x):
        return (x - x.mean(0)).T @ (x - x.mean(0)) / len(x)

    return (cov(s) - cov(t)).pow(2).sum() / (4 * s.shape[1] ** 2)


def uncentred(s, t):
    def cov(x):
        return x.T @ x / (len(x) - 1)

    return (cov(s) - cov(t)).pow(2).sum() / (4 * s.shape[1] ** 2)


def over_images(s, t):
    def cov(x):
        return (x - x.mean(0)) @ (x - x.mean(0)).T / (len(x) - 1)

    return (cov(s) - cov(t)).pow(2).sum()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (no_scale, "Divide the squared norm by 4 d²"),
        (not_squared, "Square the Frobenius norm"),
        (biased, "unbiased covariance, dividing by n - 1"),
        (uncentred, "a covariance is centred"),
        (over_images, "covariances must be over the 3 features"),
    ],
)
def test_coral_checker_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_coral_distance(answer)


def numpy_cov_of_images(s, t):
    """np.cov takes variables as rows: without .T it is over the images, (30, 30), (20, 20)."""
    import numpy as np

    d = s.shape[1]
    return float(((np.cov(s.numpy()) - np.cov(t.numpy())) ** 2).sum() / (4 * d * d))


def test_coral_checker_explains_errors_outside_torch_too():
    # a numpy shape error used to escape as a raw ValueError: only RuntimeError was caught
    with pytest.raises(AssertionError) as err:
        check_coral_distance(numpy_cov_of_images)
    message = str(err.value)
    assert message.startswith("coral(source, target) raised ValueError: operands could not be")
    assert message.endswith("(np.cov and torch.cov take the features as rows: pass x.T).")


def test_coral_checker_wants_one_number():
    with pytest.raises(
        AssertionError, match=r"(?s)coral\(source, target\) returned ndarray .*one nu"
    ):
        check_coral_distance(lambda s, t: (unbiased_cov(s) - unbiased_cov(t)).numpy())


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            lambda d: d.groupby("layer").mean_shift.mean().idxmax(),
            "returned 'layer0.bn'; expected 'exposure': 'layer0.bn' is a layer; .*group the rows",
        ),
        (
            lambda d: d.groupby("site").mean().mean_shift.idxmax(),
            r"most_drifted\(drift\) raised TypeError: .*only the numeric column mean_shift",
        ),
    ],
)
def test_drift_checker_explains_more_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_most_drifted(answer)


def test_reset_checker_explains_an_error():
    def running_stats_of_every_module(model):
        for module in model.modules():
            module.reset_running_stats()

    with pytest.raises(AssertionError, match=r"reset_statistics\(model\) raised AttributeError"):
        check_batchnorm_reset(running_stats_of_every_module)


def stops_tracking(model):
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            module.momentum = None
            module.track_running_stats = False


def resets_then_eval(model):
    reset_batchnorm_statistics(model)
    model.eval()


def changes_eps(model):
    reset_batchnorm_statistics(model)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.eps = 1e-3


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (stops_tracking, r"running mean is \[0.0, 0.0, 0.0, 0.0\].*track_running_stats is False"),
        (resets_then_eval, "is in eval mode after your reset.*never updates them"),
        (changes_eps, "eps is now 0.001"),
    ],
)
def test_reset_checker_runs_batches_after_the_reset(answer, message):
    # Each answer passes the look at the buffers; only batches run afterwards show that AdaBN
    # would not average them.
    with pytest.raises(AssertionError, match=message):
        check_batchnorm_reset(answer)


def reset_only_2d(model):
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None


def test_reset_checker_wants_every_kind_of_batchnorm():
    # The test model ends in a BatchNorm1d head: resetting BatchNorm2d alone leaves it stale.
    with pytest.raises(AssertionError, match=r"the BatchNorm1d layer\(s\) \['4.2'\] still hold"):
        check_batchnorm_reset(reset_only_2d)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            lambda d: d[d.depth <= 2].groupby("site").mean_shift.mean().idxmax(),
            "returned 'gamma'.*first three layers",
        ),
        (
            lambda d: d.groupby("site").head(3).groupby("site").mean_shift.mean().idxmax(),
            "returned 'gamma'.*not the first few",
        ),
        (
            lambda d: (d.mean_shift / d.sd_ratio).groupby(d.site).mean().idxmax(),
            "returned 'scatter'.*mean_shift / sd_ratio",
        ),
    ],
)
def test_drift_checker_rejects_a_partial_mean_and_a_ratio(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_most_drifted(answer)


def over_4d(s, t):
    return (unbiased_cov(s) - unbiased_cov(t)).pow(2).sum() / (4 * s.shape[1])


def mixed_divisors(s, t):
    biased = (t - t.mean(0)).T @ (t - t.mean(0)) / len(t)
    return (unbiased_cov(s) - biased).pow(2).sum() / (4 * s.shape[1] ** 2)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (over_4d, r"Divide by 4 d² \(d squared\), not by 4 d"),
        (mixed_divisors, r"coral\(x, x\) returned .* one set's covariance divides by n - 1 and"),
    ],
)
def test_coral_checker_names_the_divisor_slips(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_coral_distance(answer)


def test_reset_checker_leaves_the_state_the_grader_watches_alone(capsys):
    # A forward hook bumps torch.utils.hooks.RemovableHandle.next_id, which the grader reads as
    # the answer rebinding torch: the reference solution was flagged as tampering.
    before = torch.utils.hooks.RemovableHandle.next_id
    check_batchnorm_reset(reset_batchnorm_statistics)
    assert torch.utils.hooks.RemovableHandle.next_id == before
    assert capsys.readouterr().out.startswith("Correct")
