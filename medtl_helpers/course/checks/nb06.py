"""Checkers for the exercises of notebook 06 (ensembles and class activation maps).

Each checker compares the student's answer with the package's reference (`ensemble.soft_vote`,
`ensemble.hard_vote`, and the stage Grad-CAM should look at), recognises the usual mistakes, and
raises AssertionError with a sentence about the first difference. On success it prints one line.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from medtl_helpers.course.checks.common import call_answer, plain, require_answer
from medtl_helpers.evaluation.ensemble import hard_vote, soft_vote
from medtl_helpers.models import build_model

__all__ = ["check_soft_vote", "check_hard_vote", "check_target_layer"]

SOFT_CASES = (
    np.array([[0.9, 0.2, 0.6, 0.4], [0.7, 0.4, 0.1, 0.3], [0.2, 0.3, 0.8, 0.35]]),
    np.array([[0.1, 0.95, 0.5, 0.3, 0.6], [0.3, 0.65, 0.5, 0.9, 0.2]]),
    # means of thirds (0.61666...), which no rounding to a few decimals keeps
    np.array([[0.9, 0.2, 0.61, 0.47], [0.7, 0.41, 0.1, 0.52], [0.25, 0.3, 0.8, 0.5]]),
)
# Two members, so 1 vote of 2 is a tie; member 2's own threshold (0.4) matters on image 3, and
# image 5 sits exactly on member 1's threshold (p >= t counts as a PNEUMONIA vote).
HARD_CASES = (  # the first: thresholds far apart, so a shared cut or swapped thresholds show
    (
        np.array(
            [[0.3, 0.1, 0.25, 0.15, 0.9], [0.25, 0.6, 0.35, 0.28, 0.2], [0.9, 0.7, 0.5, 0.85, 0.1]]
        ),
        [0.2, 0.3, 0.8],
    ),
    (np.array([[0.9, 0.2, 0.6, 0.35, 0.95, 0.5], [0.7, 0.1, 0.3, 0.45, 0.3, 0.1]]), [0.5, 0.4]),
    (np.array([[0.9, 0.2, 0.6, 0.3], [0.3, 0.1, 0.7, 0.8], [0.8, 0.7, 0.1, 0.6]]), [0.5, 0.6, 0.5]),
)
TARGET = "layer4"


def _as_array(value: object, call: str, shape: tuple[int, ...]) -> np.ndarray:
    plain(value, f"the value {call.partition('(')[0]} returned")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise AssertionError(f"{call} returned {type(value).__name__}, not numbers") from err
    if array.shape != shape:
        raise AssertionError(
            f"{call} returned shape {array.shape}; expected {shape}, one value per image. "
            "The members are the rows (axis 0): combine over axis 0, keep one column per image."
        )
    return array


def check_soft_vote(soft_vote_fn: Callable) -> None:
    """`soft_vote_fn(probs)` maps (members, images) probabilities to the soft vote per image."""
    require_answer(soft_vote_fn, "your soft_vote")
    for probs in SOFT_CASES:
        call = f"soft_vote({probs.tolist()})"
        got = call_answer(
            soft_vote_fn,
            (probs.copy(),),
            call,
            "It takes a numpy array of shape (members, images) and returns one value per image.",
        )
        answer = _as_array(got, call, probs.shape[1:])
        expected = soft_vote(probs)
        if np.allclose(answer, expected):
            continue
        mistakes = {
            "the median over members; soft voting takes the mean": np.median(probs, axis=0),
            "the largest member probability; soft voting averages all members": probs.max(0),
            "the share of members with p >= 0.5: that is a hard vote; soft voting averages "
            "the probabilities themselves": (probs >= 0.5).mean(axis=0),
        }
        mistakes |= {
            f"the mean rounded to {k} decimals: return it unrounded, and round only what you "
            "print": np.round(expected, k)
            for k in range(7)
        }
        reason = next((text for text, wrong in mistakes.items() if np.allclose(answer, wrong)), "")
        raise AssertionError(
            f"{call} gave {np.round(answer, 6).tolist()}; expected "
            f"{np.round(expected, 6).tolist()} (the mean of each column)."
            + (f" Yours is {reason}." if reason else "")
        )
    print("Correct: your soft vote is the mean probability over the members, image by image.")


def _hard_mistakes(probs: np.ndarray, thresholds: list[float]) -> dict[str, np.ndarray]:
    limits = np.asarray(thresholds).reshape(-1, 1)
    return {
        "you used one threshold for every member (0.5, or the thresholds' mean); member m votes "
        "with its own validation threshold, thresholds[m]": hard_vote(
            probs, [0.5] * len(thresholds)
        ),
        "a tie (half of the votes) became NORMAL; here a tie counts as PNEUMONIA": hard_vote(
            probs, thresholds, tie="negative"
        ),
        "you used one threshold (their median) for every member; member m votes with "
        "thresholds[m]": hard_vote(probs, [float(np.median(thresholds))] * len(thresholds)),
        "the thresholds went to the wrong members: row m of probabilities is member m, and it "
        "votes with thresholds[m]": hard_vote(probs, list(thresholds)[::-1]),
        "a member votes PNEUMONIA when p >= its threshold, but you used p > threshold": (
            ((probs > limits).mean(axis=0) >= 0.5).astype(int)
        ),
    }


def _averaged_first(answer: np.ndarray, probs: np.ndarray, thresholds: list[float]) -> bool:
    """Whether `answer` is the mean probability cut at 0.5 or at the thresholds' mean or median
    (those two only when it holds both 0 and 1: all 1, as OR can give, says nothing of a cut)."""
    cuts = (0.5, np.mean(thresholds), np.median(thresholds))[: 3 if np.ptp(answer) else 1]
    return any(np.array_equal(answer, (soft_vote(probs) >= cut).astype(int)) for cut in cuts)


def check_hard_vote(hard_vote_fn: Callable) -> None:
    """`hard_vote_fn(probs, thresholds)`: 0/1 per image by majority, ties counted as PNEUMONIA."""
    require_answer(hard_vote_fn, "your hard_vote")
    for probs, thresholds in HARD_CASES:
        call = f"hard_vote({probs.tolist()}, thresholds={thresholds})"
        got = call_answer(
            hard_vote_fn,
            (probs.copy(), list(thresholds)),
            call,
            "Row m of probabilities is member m and votes with thresholds[m]: compare "
            "probabilities >= np.asarray(thresholds)[:, None], one threshold per row.",
        )
        answer = _as_array(got, call, probs.shape[1:])
        expected = hard_vote(probs, thresholds)
        if np.array_equal(answer, expected):
            continue
        if not np.isin(answer, (0, 1)).all():
            raise AssertionError(
                f"{call} gave {answer.tolist()}: a hard vote is a decision, 0 (NORMAL) or 1 "
                "(PNEUMONIA) per image, not a probability."
            )
        reason = next(
            (text for text, wrong in _hard_mistakes(probs, thresholds).items()
             if np.array_equal(answer, wrong)),
            None,
        )  # fmt: skip
        if reason is None and _averaged_first(answer, probs, thresholds):
            reason = (
                "you averaged the probabilities first (a soft vote); a hard vote thresholds each "
                "member with its own threshold, then counts the votes"
            )
        if reason is not None:
            raise AssertionError(
                f"{call} gave {answer.astype(int).tolist()}; expected {expected.tolist()}: "
                f"{reason}."
            )
        i = int(np.flatnonzero(answer != expected)[0])
        votes = (probs[:, i] >= np.asarray(thresholds)).astype(int).tolist()
        raise AssertionError(
            f"{call} gave {answer.astype(int).tolist()}; expected {expected.tolist()}. On image "
            f"{i} the members have p = {probs[:, i].tolist()}, so their votes are {votes}: "
            f"the majority (a tie counts as PNEUMONIA) is {expected[i]}."
        )
    print("Correct: each member votes with its own threshold, and a tie counts as PNEUMONIA.")


def _output_shapes(arch: str, size: int = 224) -> dict[str, tuple[int, ...]]:
    """Output shape of every named module, from a forward pass on the meta device (no memory)."""
    with torch.device("meta"):
        model = build_model(arch, pretrained="none", verbose=False).eval()
        shapes: dict[str, tuple[int, ...]] = {}

        # returns None on purpose: a forward hook that returns a value replaces the output
        def record(name: str, output: torch.Tensor) -> None:
            shapes.setdefault(name, tuple(output.shape))

        handles = [
            module.register_forward_hook(lambda m, i, o, n=name: record(n, o))
            for name, module in model.named_modules()
            if name
        ]
        model(torch.zeros(1, 3, size, size))
    for handle in handles:
        handle.remove()
    return shapes


def _inside_block(name: str) -> str:
    """Why a module inside a block of layer4 (conv, BatchNorm, ReLU, shortcut) is the wrong
    hook, for the module `name` names."""
    part = name.split(".", 2)[2]
    if part.startswith("downsample"):
        what = (
            "the projection shortcut of layer4's first block: it sees the block's input "
            "through a 1x1 conv only, never the residual branch nor the blocks after it"
        )
    elif part == "relu":
        what = (
            "the ReLU module of one block, which the block calls two or three times (BasicBlock: "
            "after bn1 and after the addition; Bottleneck: also after bn2): a hook on it fires "
            "each time and keeps one of the maps, and which block is last depends on the depth"
        )
    else:
        what = (
            f"the {part} of one block: it comes before the shortcut is added and before the "
            "block's final ReLU, so the map misses what the shortcut carries"
        )
        if part.endswith("3"):
            what += " (conv3 and bn3 exist only in ResNet-50 and deeper: resnet18 and 34 have none)"
    return f"{name!r} is inside a block of layer4, {what}. Hook the whole stage, 'layer4'."


def check_target_layer(target_layer: object) -> None:
    """`target_layer` must name the ResNet module Grad-CAM should hook: the last spatial stage."""
    require_answer(target_layer, "your TARGET_LAYER")
    plain(target_layer, "TARGET_LAYER")
    if not isinstance(target_layer, str):
        raise AssertionError(
            f"TARGET_LAYER is a {type(target_layer).__name__}; give the module's name as a "
            "string, as it appears in model.named_modules(), e.g. 'layer1'."
        )
    if target_layer == TARGET:
        print(
            "Correct: 'layer4' is the last stage whose output is still a spatial map "
            "(7x7 at 224 px), in every ResNet from 18 to 152."
        )
        return
    shapes = {**_output_shapes("resnet50"), **_output_shapes("resnet34")}
    name, notes = target_layer.strip().lower(), []
    if name != target_layer:
        notes.append("lower case, without spaces")
    if name.startswith("model."):
        name = name.removeprefix("model.")
        notes.append("relative to the model")
    if name not in shapes:
        stages = ", ".join(n for n in shapes if "." not in n)
        raise AssertionError(
            f"{target_layer!r} is not a module of a ResNet; its stages are {stages}."
        )
    rule = f"module names are {', and '.join(notes)}"
    if notes and name == TARGET:  # the right stage, only misspelt
        raise AssertionError(f"{rule.capitalize()}: write {name!r}, not {target_layer!r}.")
    if notes:  # a wrong module, misspelt too: the spelling hint alone would lead to it
        raise AssertionError(
            f"{_why_not(name, shapes[name])} Also, {rule}: {target_layer!r} reads {name!r}."
        )
    raise AssertionError(_why_not(name, shapes[name]))


def _why_not(name: str, shape: tuple) -> str:
    """Why the ResNet module `name` (output `shape` at 224 px) is not Grad-CAM's target layer."""
    if len(shape) < 4 or shape[-1] == 1:
        return (
            f"{name!r} outputs shape {shape} at 224 px: no spatial map is left after global "
            "pooling, so there is nothing to localise. Go back to the stage before avgpool."
        )
    if name.startswith(TARGET + "."):
        if name.count(".") > 1:
            return _inside_block(name)
        if name not in _output_shapes("resnet18"):
            return (
                f"{name!r} does not exist in resnet18 (its layer4 has 2 blocks), so there the "
                "name raises an error; in resnet34 to 152 it is the last block. Name the stage, "
                "'layer4', and the code works for every ResNet."
            )
        return (
            f"{name!r} is one block of layer4. Which block comes last depends on the depth "
            "(layer4.1 in resnet18, layer4.2 in resnet34 to 152), and an earlier block misses "
            "the blocks after it: name the stage, 'layer4', and the code works for every ResNet."
        )
    return (
        f"{name!r} gives a {shape[-2]}x{shape[-1]} map at 224 px, finer than layer4's 7x7, but "
        "Grad-CAM looks at the LAST spatial stage: its features are the most class-specific, "
        "and only the pooling and the head come after it. Use 'layer4'."
    )
