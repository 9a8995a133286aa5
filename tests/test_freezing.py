"""Freezing by layer-group prefix, frozen BatchNorm statistics, the trainable-parameter table."""

from __future__ import annotations

import pytest
import torch

from medtl_helpers.models import (
    STRATEGIES,
    build_model,
    count_parameters,
    freeze,
    train_mode,
    trainable_summary,
)


@pytest.fixture
def resnet18():
    return build_model("resnet18", num_classes=2, pretrained="none", verbose=False)


def size(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_trainable_counts_per_strategy(resnet18):
    m = resnet18
    stem = m.conv1.weight.numel() + size(m.bn1)
    layers = [size(m.layer1), size(m.layer2), size(m.layer3), size(m.layer4)]
    head = size(m.fc)
    total = stem + sum(layers) + head
    expected = {
        "none": total,
        "partial": layers[2] + layers[3] + head,
        "all": head,
    }
    for strategy, trainable in expected.items():
        assert freeze(m, strategy) == list(STRATEGIES[strategy])
        assert count_parameters(m, trainable_only=True) == trainable
        assert count_parameters(m) == total
    # The same numbers written out, so a change in the counting itself is caught too.
    assert (total, expected["partial"], expected["all"]) == (11_177_538, 10_494_466, 1026)


def test_freeze_all_leaves_only_the_head(resnet18):
    freeze(resnet18, "all")
    trainable = {n for n, p in resnet18.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}


def test_freeze_unfreezes_the_other_groups(resnet18):
    freeze(resnet18, "all")
    assert freeze(resnet18, ["layer4", "head"]) == ["layer4", "head"]
    assert resnet18.medtl_frozen == ["layer4", "head"]
    assert resnet18.conv1.weight.requires_grad
    assert not resnet18.layer4[0].conv1.weight.requires_grad
    assert not resnet18.fc.weight.requires_grad
    freeze(resnet18, "none")
    assert all(p.requires_grad for p in resnet18.parameters())


def test_unknown_groups_are_refused(resnet18):
    with pytest.raises(ValueError, match="stem, layer1, layer2, layer3, layer4, head"):
        freeze(resnet18, ["layer5"])
    with pytest.raises(ValueError, match="none, partial, all"):
        freeze(resnet18, "most")


def test_substring_rule_freezes_too_much_prefix_rule_does_not(resnet18):
    naive = {n for n, _ in resnet18.named_parameters() if "conv1" in n}
    assert "layer3.0.conv1.weight" in naive
    assert len(naive) == 1 + 8  # the stem conv plus conv1 of each of the 8 basic blocks

    freeze(resnet18, "stem")
    frozen = {n for n, p in resnet18.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1.weight", "bn1.weight", "bn1.bias"}
    assert resnet18.layer3[0].conv1.weight.requires_grad


def test_train_mode_keeps_frozen_batchnorm_statistics(resnet18):
    freeze(resnet18, "partial")
    frozen_bn, trained_bn = resnet18.layer2[1].bn2, resnet18.layer4[1].bn2
    before_frozen = frozen_bn.running_mean.clone()
    before_trained = trained_bn.running_mean.clone()

    assert train_mode(resnet18) is resnet18
    assert resnet18.training and resnet18.layer4.training
    assert not frozen_bn.training and not resnet18.bn1.training and trained_bn.training
    resnet18(torch.randn(2, 3, 32, 32))
    assert torch.equal(frozen_bn.running_mean, before_frozen)
    assert not torch.equal(trained_bn.running_mean, before_trained)


def test_plain_train_mode_lets_frozen_statistics_drift(resnet18):
    freeze(resnet18, "partial")
    before = resnet18.bn1.running_mean.clone()
    resnet18.train()
    resnet18(torch.randn(2, 3, 32, 32))
    assert not resnet18.bn1.weight.requires_grad
    assert not torch.equal(resnet18.bn1.running_mean, before)


def test_trainable_summary_table(resnet18):
    freeze(resnet18, "partial")
    table = trainable_summary(resnet18)
    assert list(table.index) == ["stem", "layer1", "layer2", "layer3", "layer4", "head", "total"]
    assert list(table.columns) == ["params", "trainable", "trainable %", "frozen"]
    assert table["frozen"].tolist() == [True, True, True, False, False, False, False]
    assert table.loc["stem"].tolist() == [9536, 0, 0.0, True]
    assert table.loc["layer3"].tolist() == [2_099_712, 2_099_712, 100.0, False]
    assert table.loc["head"].tolist() == [1026, 1026, 100.0, False]
    assert table.loc["total"].tolist() == [11_177_538, 10_494_466, 93.89, False]
    assert table.loc["total", "params"] == count_parameters(resnet18)
    assert table["params"].iloc[:-1].sum() == table.loc["total", "params"]
    assert table.loc["total", "trainable"] == count_parameters(resnet18, trainable_only=True)
    freeze(resnet18, "all")
    assert trainable_summary(resnet18).loc["total", "trainable %"] == 0.01  # the head alone
