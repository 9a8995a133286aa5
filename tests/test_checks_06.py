"""The notebook 06 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtl_helpers.course.checks import (
    check_hard_vote,
    check_soft_vote,
    check_target_layer,
)


def reference_soft_vote(probabilities):
    return probabilities.mean(axis=0)


def reference_hard_vote(probabilities, thresholds):
    votes = probabilities >= np.asarray(thresholds)[:, None]
    return (votes.mean(axis=0) >= 0.5).astype(int)


def test_soft_vote_accepts_the_reference_in_any_array_type(capsys):
    check_soft_vote(reference_soft_vote)
    check_soft_vote(lambda p: torch.tensor(p).mean(dim=0))
    check_soft_vote(lambda p: list(np.mean(p, axis=0)))
    assert "Correct: your soft vote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda p: p.mean(axis=1), r"shape \(3,\); expected \(4,\).*axis 0"),
        (lambda p: np.median(p, axis=0), "the median over members"),
        (lambda p: p.max(axis=0), "the largest member probability"),
        (lambda p: (p >= 0.5).mean(axis=0), "that is a hard vote"),
        (lambda p: p.mean(axis=0) + 0.01, r"expected \[0\.6, 0\.3, 0\.5, 0\.35\]"),
        # every earlier case has means of two decimals, so a rounded vote passed them all
        (lambda p: p.mean(axis=0).round(2), r"the mean rounded to 2 decimals.*unrounded"),
        (lambda p: p.mean(axis=0).round(4), r"the mean rounded to 4 decimals"),
    ],
)
def test_soft_vote_explains_wrong_answers(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_soft_vote(wrong)


def test_hard_vote_accepts_the_reference(capsys):
    check_hard_vote(reference_hard_vote)
    assert "Correct: each member votes with its own threshold" in capsys.readouterr().out


def one_threshold(p, t):
    return reference_hard_vote(p, [0.5] * len(t))


def ties_negative(p, t):
    return ((p >= np.asarray(t)[:, None]).mean(axis=0) > 0.5).astype(int)


def strict(p, t):
    return ((p > np.asarray(t)[:, None]).mean(axis=0) >= 0.5).astype(int)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (one_threshold, r"one threshold for every member \(0.5"),
        (ties_negative, "a tie .* became NORMAL"),
        (lambda p, t: (p.mean(axis=0) >= 0.5).astype(int), "averaged the probabilities first"),
        # no 0.5 in sight: the message must not say there was one
        (
            lambda p, t: (p.mean(axis=0) >= np.mean(t)).astype(int),
            r"you averaged the probabilities first \(a soft vote\); a hard vote thresholds each",
        ),
        (strict, "p > threshold"),
        (
            lambda p, t: reference_hard_vote(p, [np.mean(t)] * len(t)),
            r"one threshold for every member \(0.5, or the thresholds' mean\)",
        ),
        (lambda p, t: reference_hard_vote(p, [np.median(t)] * len(t)), r"\(their median\)"),
        (
            lambda p, t: reference_hard_vote(p, list(t)[::-1]),
            "thresholds went to the wrong members",
        ),
        (lambda p, t: (p >= np.asarray(t)[:, None]).mean(axis=0), "not a probability"),
        (lambda p, t: np.ones(p.shape[1], dtype=int), r"On image 1 .* votes are \[0, 1, 0\]"),
    ],
)
def test_hard_vote_explains_wrong_answers(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_hard_vote(wrong)


def test_target_layer_accepts_layer4(capsys):
    check_target_layer("layer4")
    assert "Correct: 'layer4'" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        ("fc", r"outputs shape \(1, 2\).*no spatial map"),
        ("avgpool", r"\(1, 512, 1, 1\).*global pooling"),
        ("layer3", "14x14 map.*LAST spatial stage"),
        ("conv1", "112x112"),
        ("layer4.1", r"one block of layer4.*layer4\.2 in resnet34 to 152.*every ResNet"),
        ("layer4.2", r"'layer4.2' does not exist in resnet18 \(its layer4 has 2 blocks\)"),
        ("Layer4", r"Module names are lower case, without spaces: write 'layer4', not 'Layer4'"),
        (" layer4", r"write 'layer4', not ' layer4'"),
        ("layer4.1.conv2", "before the shortcut is added"),
        ("layer4.2.conv3", r"conv3 and bn3 exist only in ResNet-50 and deeper"),
        ("layer4.0.downsample", r"the projection shortcut of layer4's first block: it sees"),
        ("layer4.0.downsample.1", r"the projection shortcut of layer4's first block"),
        ("layer4.2.relu", r"the ReLU module of one block, which the block calls two or three"),
        ("model.layer4", "relative to the model: write 'layer4'"),
        ("layer5", "not a module of a ResNet.*layer4"),
        (torch.nn.Identity(), "give the module's name as a string"),
    ],
)
def test_target_layer_explains_wrong_answers(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_target_layer(wrong)


def test_target_layer_messages_name_the_module_for_what_it_is():
    # layer4.2.conv3 was "not a module of a ResNet" (it is one of ResNet-50's), and the shortcut
    # and the block's ReLU were said to come "before the shortcut is added"
    for name in ("layer4.0.downsample", "layer4.2.relu", "layer4.2.conv3"):
        with pytest.raises(AssertionError) as err:
            check_target_layer(name)
        message = str(err.value)
        assert message.startswith(f"{name!r} is inside a block of layer4, the ")
        assert message.endswith("Hook the whole stage, 'layer4'.")
        assert "not a module of a ResNet" not in message
        assert ("before the shortcut is added" in message) == (name == "layer4.2.conv3")


def raises_on_thresholds(probabilities, thresholds):
    """Thresholds compared along the images, not the members: numpy cannot broadcast them."""
    return ((probabilities >= np.asarray(thresholds)).mean(axis=0) >= 0.5).astype(int)


def test_votes_explain_an_error_instead_of_a_traceback():
    with pytest.raises(AssertionError, match=r"raised ValueError: .*thresholds\)\[:, None\]"):
        check_hard_vote(raises_on_thresholds)
    with pytest.raises(AssertionError, match=r"soft_vote\(.*\) raised AttributeError: .*one value"):
        check_soft_vote(lambda p: p.tolist().mean(axis=0))


def test_the_relu_message_counts_the_calls_of_both_kinds_of_block():
    """A BasicBlock calls its ReLU module twice, a Bottleneck three times."""
    with pytest.raises(AssertionError) as err:
        check_target_layer("layer4.1.relu")
    assert "BasicBlock: after bn1 and after the addition; Bottleneck: also after bn2" in str(
        err.value
    )
    assert "calls twice" not in str(err.value)


@pytest.mark.parametrize("misspelt", ["Layer4.1", "model.layer4.1", " LAYER3"])
def test_a_misspelt_wrong_layer_gets_its_reason_not_only_the_spelling(misspelt):
    """'Layer4.1' was told to write 'layer4.1', which the next run then refused."""
    name = misspelt.strip().lower().removeprefix("model.")
    with pytest.raises(AssertionError) as err:
        check_target_layer(misspelt)
    message = str(err.value)
    assert f"write {name!r}" not in message
    assert message.startswith(f"{name!r} ")
    assert message.endswith(f"{misspelt!r} reads {name!r}.")
    with pytest.raises(AssertionError) as plain_err:
        check_target_layer(name)
    assert message.startswith(str(plain_err.value))
