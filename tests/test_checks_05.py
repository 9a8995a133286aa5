"""The notebook 05 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

import dataclasses

import pytest

from medtl_helpers.course.checks import check_group_lrs, check_stage_plan
from medtl_helpers.course.checks.nb05 import reference_stage_plan
from medtl_helpers.models import GROUPS
from medtl_helpers.training.stages import Stage, discriminative_lrs


def group_lrs(base_lr, decay):
    from_head = list(reversed(GROUPS))
    return {group: base_lr * decay ** from_head.index(group) for group in GROUPS}


def test_group_lrs_accepts_the_reference(capsys):
    check_group_lrs(group_lrs)
    assert "Correct: your rates match" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda b, d: {g: b * d**i for i, g in enumerate(GROUPS)}, "order is reversed"),
        (
            lambda b, d: {g: b * d ** (i + 1) for i, g in enumerate(reversed(GROUPS))},
            "the head gets base_lr itself",
        ),
        (lambda b, d: {g: b for g in GROUPS if g != "stem"}, "no learning rate for 'stem'"),
        (
            lambda b, d: {g: b * (1 - d * i / 5) for i, g in enumerate(reversed(GROUPS))},
            r"decay\*\*1",
        ),
        (lambda b, d: [b] * 6, "expected a dict"),
    ],
)
def test_group_lrs_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_group_lrs(answer)


def test_stage_plan_accepts_the_reference(capsys):
    check_stage_plan(reference_stage_plan())
    assert "Correct: each stage builds an optimizer" in capsys.readouterr().out


def replaced(index, **changes):
    plan = reference_stage_plan()
    plan[index] = dataclasses.replace(plan[index], **changes)
    return plan


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (replaced(1, freeze=["layer4", "head"]), "you listed the ones to train"),
        (replaced(2, freeze=["stem", "layer1", "layer2", "layer3"]), r"stage 3 \('layer3'\)"),
        (replaced(3, epochs=3), "runs 3 epochs"),
        (replaced(2, group_lr={}), "every group the same rate"),
        (replaced(1, lr=1e-3, group_lr=discriminative_lrs(1e-3)), "rate 0.001; expected 0.0005"),
        (reference_stage_plan()[:3], "has 3 stages; expected 4"),
        ([Stage("head", 2, list(GROUPS), 1e-3)] + reference_stage_plan()[1:], "no trainable"),
    ],
)
def test_stage_plan_explains_wrong_answers(plan, message):
    with pytest.raises(AssertionError, match=message):
        check_stage_plan(plan)
