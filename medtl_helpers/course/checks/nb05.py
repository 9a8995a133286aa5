"""Checkers for the exercises of notebook 05 (progressive fine-tuning).

`check_group_lrs` compares the student's per-group learning rates with
`stages.discriminative_lrs`. `check_stage_plan` builds, for each of the student's stages, the
optimizer `fit` would build (`stages.make_optimizer`, on a ResNet-18 skeleton that holds no
memory) and compares the stages' names, which layer groups train (and each group's trainable
parameter count, so that a half-frozen group shows), for how many epochs and at which learning
rate with the four-stage plan the exercise asks for. Each explains the first difference in
words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from medtl_helpers.course.checks.common import call_answer, plain, plain_number, require_answer
from medtl_helpers.models import GROUPS, build_model, group_of
from medtl_helpers.training.stages import Stage, discriminative_lrs, make_optimizer

__all__ = ["check_group_lrs", "check_stage_plan"]

LR_CASES = ((1e-3, 0.5), (0.01, 0.3))
PLAN_LR, PLAN_EPOCHS = 1e-3, 2
PLAN_TRAINS = (("head",), ("layer4", "head"), ("layer3", "layer4", "head"), GROUPS)


def check_group_lrs(group_lrs: Callable[[float, float], dict]) -> None:
    """`group_lrs(base_lr, decay)` must give head base_lr, layer4 base_lr*decay, ... stem last."""
    require_answer(group_lrs, "your group_lrs")
    for base, decay in LR_CASES:
        want = discriminative_lrs(base, decay)
        call = f"group_lrs({base:g}, {decay:g})"
        got = call_answer(
            group_lrs,
            (base, decay),
            call,
            "It takes two numbers and returns a dict from group name to rate.",
        )
        got = plain(got, f"the value {call} returned")
        if not isinstance(got, dict):
            raise AssertionError(
                f"{call} returned a {type(got).__name__}; expected a dict from layer group "
                f"to learning rate with the keys {list(GROUPS)}."
            )
        missing = [g for g in GROUPS if g not in got]
        if missing:
            raise AssertionError(
                f"{call} has no learning rate for {missing[0]!r}; every group in "
                f"{list(GROUPS)} needs one, or its parameters fall back to another rate."
            )
        unknown = [key for key in got if key not in GROUPS]
        if unknown:
            raise AssertionError(
                f"{call} has a rate for {unknown[0]!r}, which is no layer group: the groups are "
                f"{list(GROUPS)}. A rate under another name is ignored: no parameter group has "
                "that name."
            )
        got = {group: _rate(got[group], group, call) for group in GROUPS}
        if np.isclose(got["stem"], base) and not np.isclose(got["head"], base):
            raise AssertionError(
                f"{call} gives the stem the largest rate ({got['stem']:g}): the order is "
                "reversed. The exercise's plan gives the head base_lr and the stem the smallest "
                "rate: count the depth from the head, head, layer4, ..., stem."
            )
        if np.isclose(got["head"], base * decay):
            raise AssertionError(
                f"{call} gives the head {got['head']:g}; the head gets base_lr itself "
                f"({base:g}), layer4 base_lr * decay, layer3 base_lr * decay**2, and so on."
            )
        for group in reversed(GROUPS):
            if not np.isclose(got[group], want[group], rtol=1e-6):
                depth = list(reversed(GROUPS)).index(group)
                raise AssertionError(
                    f"{call} gives {group} {got[group]:g}; expected {want[group]:g} = base_lr * "
                    f"decay**{depth}: each group one step further from the head multiplies the "
                    "rate by decay once more."
                )
    print(
        "Correct: your rates match stages.discriminative_lrs, from the head (largest) down to "
        "the stem (smallest)."
    )


def _rate(value: object, group: str, call: str) -> float:
    """`value` as a float when it is one plain number; else AssertionError naming `group`."""
    value = plain_number(value, f"the rate {call} gives {group}")
    if type(value) not in (int, float):
        raise AssertionError(
            f"{call} gives {group} {value!r} ({type(value).__name__}); each group needs one "
            "number, e.g. base_lr * decay**2, not a list, a string or an array."
        )
    return float(value)


def reference_stage_plan() -> list[Stage]:
    """Four stages, each unfreezing one more part, with halved discriminative rates each time."""
    plan = [Stage("head", PLAN_EPOCHS, "all", PLAN_LR)]
    for i, (name, frozen) in enumerate(
        (
            ("layer4", ["stem", "layer1", "layer2", "layer3"]),
            ("layer3", ["stem", "layer1", "layer2"]),
            ("all", "none"),
        ),
        start=1,
    ):
        base = PLAN_LR / 2**i
        plan.append(Stage(name, PLAN_EPOCHS, frozen, base, discriminative_lrs(base)))
    return plan


def _optimizer_groups(stage: object) -> tuple[dict[str, float], dict[str, int], list[str]]:
    """The optimizer `fit` would build for `stage`: each group's rate and trainable parameter
    count, and the frozen parts (`freeze`'s list: groups, then modules outside them)."""
    with torch.device("meta"):
        skeleton = build_model("resnet18", pretrained="none", verbose=False)
    optimizer = make_optimizer(skeleton, stage)
    rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
    counts = {g["name"]: sum(p.numel() for p in g["params"]) for g in optimizer.param_groups}
    return rates, counts, list(skeleton.medtl_frozen)


def _part_problem(index: int, stage: Stage, got: tuple, want: tuple) -> str | None:
    """A group the stage should train whole but trains only part of (freeze named a block or a
    module inside it), or None."""
    (_, counts, frozen), (_, want_counts, _) = got, want
    for group, count in want_counts.items():
        if counts[group] != count:
            parts = [part for part in frozen if part not in GROUPS and group_of(part) == group]
            return (
                f"stage {index} ({stage.name!r}) trains {counts[group]:,} of {group}'s "
                f"{count:,} parameters: freeze names {parts}, part of {group}. The plan trains "
                "or freezes whole layer groups: leave the blocks and modules out."
            )
    return None


def _form_problem(index: int, stage: Stage, ref: Stage) -> str | None:
    """What is wrong with the kinds of the stage's fields or its epochs, or None."""
    where = f"stage {index} ({stage.name!r})"
    epochs = plain_number(stage.epochs, f"the epochs of {where}")
    if type(epochs) is not int:
        return (
            f"{where} has epochs={stage.epochs!r} ({type(stage.epochs).__name__}); give a whole "
            f"number, {ref.epochs}: `fit` counts epochs with range()."
        )
    if epochs != ref.epochs:
        return (
            f"{where} runs {epochs} epochs; every stage runs {ref.epochs}, so the whole "
            "plan spends the same 8-epoch budget."
        )
    if type(plain_number(stage.lr, f"the lr of {where}")) not in (int, float):
        return (
            f"{where} has lr={stage.lr!r} ({type(stage.lr).__name__}); lr is one number, the "
            "stage's base rate. The per-group rates go into group_lr, the fifth argument."
        )
    rates = stage.group_lr if isinstance(stage.group_lr, dict) else None
    odd = [k for k, v in (rates or {}).items() if type(plain_number(v, where)) not in (int, float)]
    if rates is None or odd:
        return (
            f"{where} has group_lr={stage.group_lr!r}; group_lr is a dict from group name to "
            f"one number{f' ({odd[0]!r} is not)' if odd else ''}, as discriminative_lrs(base) "
            "gives it."
        )
    unknown = [k for k in rates if k not in GROUPS]
    if unknown:
        return (
            f"{where} gives group_lr a rate for {unknown[0]!r}, which is no layer group: the "
            f"groups are {list(GROUPS)}. A misspelt group silently falls back to the stage's lr."
        )
    return None


def _name_problem(index: int, stage: Stage, ref: Stage) -> str | None:
    """A stage not named as the exercise names it (fit's history and progress show the name)."""
    if stage.name != ref.name:
        return (
            f"stage {index} is named {stage.name!r}; expected {ref.name!r}. The stages are "
            f"{[s.name for s in reference_stage_plan()]}, in that order: `fit` prints the name "
            "with every epoch and keeps it in the history, so it must say what the stage trains."
        )
    return None


def _settings_problem(index: int, stage: Stage, ref: Stage) -> str | None:
    """What is wrong with the stage's lr, weight decay or schedule, or None."""
    where = f"stage {index} ({stage.name!r})"
    lr = plain_number(stage.lr, f"the lr of {where}")
    if not np.isclose(lr, ref.lr, rtol=1e-6):
        return (
            f"{where} has lr={lr:g}; expected {ref.lr:g} = {PLAN_LR:g} / 2**{index - 1}, the "
            "stage's base rate (the head's rate, and the fallback for a group not in group_lr)."
        )
    if stage.weight_decay != ref.weight_decay or stage.schedule != ref.schedule:
        return (
            f"{where} has weight_decay={stage.weight_decay!r} and schedule={stage.schedule!r}; "
            f"the plan keeps Stage's defaults ({ref.weight_decay:g}, {ref.schedule!r}) in every "
            "stage, so that only what is frozen and the rates change: leave them out."
        )
    return None


def _trains_problem(index: int, stage: Stage, trains: list[str], want: Sequence[str]) -> str:
    listed = [stage.freeze] if isinstance(stage.freeze, str) else list(stage.freeze)
    if set(listed) == set(want) and set(listed) != set(GROUPS):
        return (
            f"stage {index} ({stage.name!r}) trains {trains}: `freeze` names the groups to "
            f"FREEZE, and you listed the ones to train. Freeze the others: "
            f"{[g for g in GROUPS if g not in want]}."
        )
    return (
        f"stage {index} ({stage.name!r}) trains {trains}; expected {list(want)}. Freeze "
        f"{[g for g in GROUPS if g not in want] or 'nothing (freeze=none)'} in that stage."
    )


def check_stage_plan(stages: Sequence[Stage]) -> None:
    """`stages` must be the four-stage plan of the exercise (see `reference_stage_plan`)."""
    require_answer(stages, "your my_stages")
    reference = reference_stage_plan()
    plain(stages, "my_stages")
    if not isinstance(stages, (list, tuple)) or not all(isinstance(s, Stage) for s in stages):
        raise AssertionError("my_stages must be a list of Stage objects, one per stage.")
    if len(stages) != len(reference):
        raise AssertionError(
            f"my_stages has {len(stages)} stages; expected {len(reference)}: head, "
            "layer4 + head, layer3 + layer4 + head, then everything."
        )
    for index, (stage, ref) in enumerate(zip(stages, reference), start=1):
        want_trains = PLAN_TRAINS[index - 1]
        problem = _name_problem(index, stage, ref) or _form_problem(index, stage, ref)
        if problem:
            raise AssertionError(problem)
        got = call_answer(
            _optimizer_groups,
            (stage,),
            f"stage {index} ({stage.name!r}): make_optimizer",
            "freeze takes 'all', 'none' or a list of group names; group_lr maps group names to "
            "numbers (discriminative_lrs(base) gives one).",
        )
        if set(got[0]) != set(want_trains):
            raise AssertionError(_trains_problem(index, stage, list(got[0]), want_trains))
        problem = _part_problem(index, stage, got, _optimizer_groups(ref))
        if problem:
            raise AssertionError(problem)
        got, want = got[0], _optimizer_groups(ref)[0]
        for group in reversed(want_trains):
            if np.isclose(got[group], want[group], rtol=1e-6):
                continue
            if index > 1 and len(set(np.round(list(got.values()), 12))) == 1:
                raise AssertionError(
                    f"stage {index} ({stage.name!r}) gives every group the same rate "
                    f"({got[group]:g}); use group_lr=discriminative_lrs({ref.lr:g}) so earlier "
                    "groups move less than the head."
                )
            raise AssertionError(
                f"stage {index} ({stage.name!r}) gives {group} the rate {got[group]:g}; "
                f"expected {want[group]:g}: the stage's base rate is {PLAN_LR:g} / 2**"
                f"{index - 1} = {ref.lr:g} for the head, then halved per group towards the stem."
            )
        problem = _settings_problem(index, stage, ref)
        if problem:
            raise AssertionError(problem)
    print(
        "Correct: each stage builds an optimizer over exactly the groups it should train, with "
        "the planned epochs and discriminative learning rates."
    )
