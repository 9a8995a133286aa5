"""The notebook 05 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

import dataclasses

import numpy as np
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


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda b, d: {g: [r] for g, r in group_lrs(b, d).items()}, r"gives stem \[.*\] \(list\)"),
        (lambda b, d: {g: str(r) for g, r in group_lrs(b, d).items()}, r"gives stem '.*' \(str\)"),
        (lambda b, d: {g: b * d ** GROUPS.index(g) for g in GROUPS[:-1]}, "no learning rate for"),
        (lambda b, d: dict(zip(GROUPS, b)), r"group_lrs\(0\.001, 0\.5\) raised TypeError"),
    ],
)
def test_group_lrs_wants_one_number_per_group(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_group_lrs(answer)


def test_group_lrs_checks_the_rate_of_every_group():
    # a one-element list compared with np.isclose passed as a number before
    with pytest.raises(AssertionError) as err:
        check_group_lrs(lambda b, d: {g: [r] for g, r in group_lrs(b, d).items()})
    assert str(err.value) == (
        "group_lrs(0.001, 0.5) gives stem [3.125e-05] (list); each group needs one number, "
        "e.g. base_lr * decay**2, not a list, a string or an array."
    )


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (replaced(1, epochs=2.0), r"stage 2 \('layer4'\) has epochs=2\.0 \(float\); give a whole"),
        (replaced(2, lr=1e-3), r"stage 3 \('layer3'\) has lr=0\.001; expected 0\.00025"),
        (replaced(1, schedule="constant"), r"schedule='constant'; the plan keeps Stage's defaults"),
        (replaced(3, weight_decay=0.0), r"stage 4 \('all'\) has weight_decay=0\.0 and schedule"),
        (
            replaced(1, lr=discriminative_lrs(5e-4), group_lr={}),
            r"has lr=\{.*\} \(dict\); lr is one number.*group_lr, the fifth argument",
        ),
        (
            replaced(2, group_lr={**discriminative_lrs(2.5e-4), "stem": "1e-5"}),
            r"group_lr is a dict from group name to one number \('stem' is not\)",
        ),
        (
            replaced(2, freeze=["stem", "layer5"]),
            r"stage 3 \('layer3'\): make_optimizer raised ValueError",
        ),
    ],
)
def test_stage_plan_checks_every_setting_of_a_stage(plan, message):
    with pytest.raises(AssertionError, match=message):
        check_stage_plan(plan)


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (
            replaced(1, name="top"),
            r"^stage 2 is named 'top'; expected 'layer4'\. The stages are \['head', 'layer4', "
            r"'layer3', 'all'\], in that order",
        ),
        (list(reversed(reference_stage_plan())), r"^stage 1 is named 'all'; expected 'head'"),
        (
            replaced(0, group_lr={"haed": 1e-3}),
            r"^stage 1 \('head'\) gives group_lr a rate for 'haed', which is no layer group",
        ),
        (
            replaced(3, group_lr={**discriminative_lrs(1.25e-4), "layer5": 1e-5}),
            r"^stage 4 \('all'\) gives group_lr a rate for 'layer5'.*silently falls back",
        ),
    ],
)
def test_stage_plan_checks_the_names_of_stages_and_groups(plan, message):
    # Each of these passed the checker before: the names were never compared.
    with pytest.raises(AssertionError, match=message):
        check_stage_plan(plan)


WHOLE_GROUPS = "The plan trains or freezes whole layer groups: leave the blocks and modules out."


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (
            replaced(2, freeze=["stem", "layer1", "layer2", "layer3.0"]),
            "stage 3 ('layer3') trains 1,180,672 of layer3's 2,099,712 parameters: freeze names "
            f"['layer3.0'], part of layer3. {WHOLE_GROUPS}",
        ),
        (
            replaced(1, freeze=["stem", "layer1", "layer2", "layer3", "layer4.0.conv1"]),
            "stage 2 ('layer4') trains 7,214,080 of layer4's 8,393,728 parameters: freeze names "
            f"['layer4.0.conv1'], part of layer4. {WHOLE_GROUPS}",
        ),
    ],
)
def test_stage_plan_finds_a_half_frozen_group(plan, message):
    # Both passed before: one trainable parameter put the group's name in the optimizer.
    with pytest.raises(AssertionError) as err:
        check_stage_plan(plan)
    assert str(err.value) == message


def test_stage_plan_accepts_numpy_epochs(capsys):
    # range() takes np.int64; the checker said "give a whole number" before.
    plan = [
        dataclasses.replace(stage, epochs=np.int64(stage.epochs))
        for stage in reference_stage_plan()
    ]
    check_stage_plan(plan)
    assert "Correct: each stage builds an optimizer" in capsys.readouterr().out


def test_stage_plan_still_refuses_a_bool_epoch_count():
    with pytest.raises(AssertionError, match=r"has epochs=True \(bool\); give a whole number"):
        check_stage_plan(replaced(1, epochs=True))


def test_group_lrs_refuses_a_key_that_is_no_group():
    # passed before, where check_stage_plan refuses the same key in group_lr
    with pytest.raises(AssertionError) as err:
        check_group_lrs(lambda b, d: {**discriminative_lrs(b, d), "fc": 1.0})
    assert str(err.value).startswith(
        "group_lrs(0.001, 0.5) has a rate for 'fc', which is no layer group: the groups are "
        "['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'head']."
    )
