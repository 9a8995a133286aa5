"""Checkers for the exercises of notebook 08 (domain shift and adaptation).

Each checker runs the student's answer on cases where the reference answer is known and, at the
first difference, raises AssertionError with a sentence saying what differs and the likely cause.
On success it prints one sentence.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
import torch
from torch import nn

from medtl_helpers.adaptation import batchnorm_layers, coral_distance, reset_batchnorm_statistics
from medtl_helpers.course.checks.common import call_answer, plain, plain_number, require_answer
from medtl_helpers.course.checks.nb08_cases import (
    DRIFT_HINTS,
    MIXED_DIVISORS,
    coral_slips,
    drift_cases,
    mixed_divisor_value,
)

__all__ = ["check_batchnorm_reset", "check_coral_distance", "check_most_drifted"]


def _bn_model() -> nn.Module:
    """Conv-BN-ReLU, a nested block and a BatchNorm1d head, every BatchNorm holding
    non-default statistics."""
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(4))
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), block, head)
    with torch.no_grad():
        for layer in batchnorm_layers(model).values():
            layer.running_mean.fill_(0.7)
            layer.running_var.fill_(2.5)
            layer.num_batches_tracked.fill_(40)
            layer.weight.fill_(1.5)
            layer.bias.fill_(-0.3)
    return model


def _stale_statistics(model: nn.Module) -> list[str]:
    return [
        name
        for name, layer in batchnorm_layers(model).items()
        if not (
            torch.equal(layer.running_mean, torch.zeros(4))
            and torch.equal(layer.running_var, torch.ones(4))
        )
    ]


def check_batchnorm_reset(reset: Callable[[nn.Module], object]) -> None:
    """`reset(model)` must forget every BatchNorm's statistics in place and keep its weights."""
    require_answer(reset, "your reset_statistics")
    model = _bn_model()
    returned = call_answer(
        reset,
        (model,),
        "reset_statistics(model)",
        "It takes a model and changes its BatchNorm layers in place.",
    )
    for name, layer in batchnorm_layers(model).items():
        statistics = [layer.running_mean, layer.running_var, layer.num_batches_tracked]
        plain([layer, layer.weight, layer.momentum, *statistics], f"BatchNorm layer {name}")
    stale = _stale_statistics(model)
    if stale and isinstance(returned, nn.Module) and not _stale_statistics(returned):
        raise AssertionError(
            "the model you were given still has its old statistics; you reset a copy and "
            "returned it. Change the model in place (AdaBN then runs that same model)."
        )
    if stale:
        raise AssertionError(_stale_message(model, stale))
    for name, layer in batchnorm_layers(model).items():
        if not torch.equal(layer.weight, torch.full((4,), 1.5)):
            raise AssertionError(
                f"layer {name} lost its learned weight and bias: reset_parameters() resets them "
                "too. AdaBN keeps every weight and replaces only the statistics: find the method "
                "that resets the running statistics alone."
            )
        if int(layer.num_batches_tracked) != 0:
            raise AssertionError(
                f"layer {name} still counts {int(layer.num_batches_tracked)} batches seen: the "
                "count is a statistic too, and must go back to 0 with the mean and variance."
            )
        if layer.momentum is not None:
            raise AssertionError(
                f"layer {name} keeps momentum={layer.momentum}: the new estimate would then be an "
                "exponential average that weights the last batches most; the exercise asks for a "
                "plain average over every target batch (see what momentum=None means in "
                "BatchNorm's documentation)."
            )
    _check_next_batches(model)
    reference = _bn_model()
    count = reset_batchnorm_statistics(reference)
    print(
        f"Correct: in the checker's small test model, all {count} BatchNorm layers forgot their "
        "statistics (mean 0, variance 1, no batch seen) and kept their weights; the next batches "
        "give a plain average."
    )


def _stale_message(model: nn.Module, stale: list[str]) -> str:
    """Why the BatchNorm layers named in `stale` kept their statistics."""
    layers = batchnorm_layers(model)
    kinds = {type(layers[name]).__name__ for name in stale}
    if "BatchNorm2d" not in kinds:
        return (
            f"the {' and '.join(sorted(kinds))} layer(s) {stale} still hold the old running mean "
            "or variance: you reset only some kinds of BatchNorm. Every BatchNorm layer counts "
            "(BatchNorm1d after a flatten, BatchNorm2d, BatchNorm3d): test for their common base "
            "class, torch.nn.modules.batchnorm._BatchNorm, not for BatchNorm2d alone."
        )
    return (
        f"BatchNorm layer(s) {stale} still hold the old running mean or variance. Visit every "
        "module, not only the top-level children (BatchNorm layers sit inside blocks too), and "
        "reset only the running statistics of each (a BatchNorm method does it)."
    )


def _check_next_batches(model: nn.Module) -> None:
    """After the reset, two train-mode batches (means 7 and -3) must give their plain average.

    The average each layer should hold is read from a copy reset the right way and fed the same
    batches (no hooks: registering one would change torch's state, which the grader watches)."""
    reference = _bn_model()
    reset_batchnorm_statistics(reference)
    for net in (model, reference):
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for mean, sd in ((7.0, 5.0), (-3.0, 1.0)):
                net(torch.randn(6, 1, 5, 5, generator=generator) * sd + mean)
    layers, wanted = batchnorm_layers(model), batchnorm_layers(reference)
    for name, layer in layers.items():
        want = (wanted[name].running_mean, wanted[name].running_var)
        got = (layer.running_mean, layer.running_var)
        if layer.eps == 1e-5 and all(
            g is not None and torch.allclose(g, w, 1e-4, 1e-5) for g, w in zip(got, want)
        ):
            continue
        cause = "with momentum=None they must be the plain average of the batches"
        if layer.eps != 1e-5:
            cause = f"eps is now {layer.eps}: the reset must not change how the layer normalises"
        elif not layer.track_running_stats or got[0] is None:
            cause = (
                "track_running_stats is False, so train-mode batches no longer update them and "
                "AdaBN would normalise with mean 0 and variance 1. Leave track_running_stats alone"
            )
        elif not layer.training:
            cause = (
                "the layer is in eval mode after your reset, and in eval mode BatchNorm never "
                "updates them. Leave the mode alone (AdaBN switches to train mode itself)"
            )
        shown = None if got[0] is None else [round(v, 2) for v in got[0].tolist()]
        raise AssertionError(
            f"after your reset the checker ran two batches through the model; layer {name}'s "
            f"running mean is {shown} where the batches' average is "
            f"{[round(v, 2) for v in want[0].tolist()]}: {cause}."
        )


def check_most_drifted(most_drifted: Callable[[pd.DataFrame], str]) -> None:
    """`most_drifted(drift)`: the site whose mean_shift, averaged over its layers, is largest."""
    require_answer(most_drifted, "your most_drifted")
    drift = drift_cases()
    got = call_answer(
        most_drifted,
        (drift.copy(),),
        "most_drifted(drift)",
        "It takes the drift table and returns one site's name; only the numeric column "
        "mean_shift is needed (the table also holds text columns).",
    )
    got = plain(got, "the value most_drifted returned")
    if not isinstance(got, str):
        raise AssertionError(
            f"most_drifted returned {got!r} ({type(got).__name__}); return the site's name as a "
            "string, the label of the largest value rather than the value"
        )
    hints = dict(DRIFT_HINTS)
    if got in set(drift.layer):
        hints[got] = f"{got!r} is a layer; the answer is a site, so group the rows by site"
    if got != "exposure":
        hint = hints.get(got, "average mean_shift over each site's layers and take the largest")
        raise AssertionError(f"most_drifted returned {got!r}; expected 'exposure': {hint}.")
    print(
        "Correct: in the checker's own drift table (made-up numbers, not your run), 'exposure' "
        "drifts most on average (0.60 source sds per layer), although other sites lead in one "
        "layer, in the median, in sd_ratio, in the mean of squares, over the first three layers, "
        "in mean_shift / sd_ratio or in the sum over layers (exposure has one row fewer). "
        "Compare the prediction printed above for this notebook's own table with the AdaBN "
        "gains measured below."
    )


def check_coral_distance(coral: Callable[[torch.Tensor, torch.Tensor], object]) -> None:
    """`coral(source, target)`: ‖C_S − C_T‖²_F / (4 d²) with unbiased covariances."""
    require_answer(coral, "your coral")
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(30, 3, generator=generator, dtype=torch.float64) * 2 + 1
    target = torch.randn(20, 3, generator=generator, dtype=torch.float64)
    expected = float(coral_distance(source, target))
    hint = (
        "The source has 30 images and the target 20, so the covariances must be over the 3 "
        "features, (d, d) = (x - x.mean(0)).T @ (x - x.mean(0)) / (n - 1), not over the images "
        "(np.cov and torch.cov take the features as rows: pass x.T)."
    )
    got = _coral_value(coral, (source, target), "coral(source, target)", hint)
    same = _coral_value(coral, (source, source), "coral(x, x)", hint)
    if same != 0.0:
        cause = "identical feature sets have equal covariances"
        if math.isclose(same, mixed_divisor_value(source), rel_tol=1e-6):
            cause = MIXED_DIVISORS
        raise AssertionError(f"coral(x, x) returned {same:.6f} where it must be 0: {cause}.")
    if math.isclose(got, expected, rel_tol=1e-6):
        print(
            f"Correct: on the checker's own test case (30 and 20 random feature rows, not your "
            f"data), {got:.4f}, as coral_distance gives; 0 for identical feature sets."
        )
        return
    raise AssertionError(
        f"coral(source, target) returned {got:.6f}; expected {expected:.6f}. "
        + _coral_hint(got, source, target)
    )


def _coral_value(coral: Callable, args: tuple, call: str, hint: str) -> float:
    """coral(*args) as a float, or AssertionError naming the call."""
    value = plain_number(call_answer(coral, args, call, hint), f"the value {call} returned")
    if type(value) not in (int, float):
        raise AssertionError(
            f"{call} returned {type(value).__name__} {value!r}; expected one number (a float or "
            "a one-element tensor)."
        )
    return float(value)


def _coral_hint(got: float, source: torch.Tensor, target: torch.Tensor) -> str:
    for hint, value in coral_slips(source, target):
        if math.isclose(got, value, rel_tol=1e-6):
            return hint
    return "Check each step against the formula: centring, the n - 1 divisor, the square, 4 d²."
