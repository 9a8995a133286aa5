"""Freezing by layer-group or module prefix, frozen BatchNorm statistics, the trainable-parameter
table, and freezing lists of equal size for the two ends of a ranking."""

from __future__ import annotations

from itertools import permutations

import pytest
import torch

from medtl_helpers import config
from medtl_helpers.data.split import split_by_patient
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.models import (
    STRATEGIES,
    build_model,
    count_parameters,
    freeze,
    train_mode,
    trainable_summary,
)
from medtl_helpers.models.freezing import equal_count_freezing, module_order
from medtl_helpers.models.groups import belongs_to
from medtl_helpers.training import fit

QUICK = config.get_profile("quick")


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


def frozen_names(model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def test_freeze_accepts_blocks_and_modules_at_a_dot_boundary(resnet18):
    assert freeze(resnet18, ["layer4.1", "conv1"]) == ["conv1", "layer4.1"]
    assert resnet18.medtl_frozen == ["conv1", "layer4.1"]
    block = {f"layer4.1.{name}" for name, _ in resnet18.layer4[1].named_parameters()}
    assert frozen_names(resnet18) == block | {"conv1.weight"}  # bn1 (also the stem) trains
    # A module inside a frozen group is not listed twice.
    assert freeze(resnet18, ["layer3", "layer3.0.conv1"]) == ["layer3"]
    assert belongs_to("module.layer4.1.bn1", ["layer4.1"])
    assert not belongs_to("layer4.10.conv1.weight", ["layer4.1"])
    assert belongs_to("layer3.0.conv1.weight", ["layer3"])


def test_unknown_modules_are_refused_with_an_example(resnet18):
    with pytest.raises(ValueError, match=r"\['layer4\.2'\].*such as 'layer4\.1'"):
        freeze(resnet18, ["layer4", "layer4.2"])


def test_train_mode_keeps_a_frozen_blocks_batchnorm_in_eval(resnet18):
    freeze(resnet18, ["layer4.1"])
    frozen_bn, trained_bn = resnet18.layer4[1].bn1, resnet18.layer4[0].bn1
    before_frozen = frozen_bn.running_mean.clone()
    before_trained = trained_bn.running_mean.clone()
    train_mode(resnet18)
    assert not frozen_bn.training and trained_bn.training and resnet18.bn1.training
    resnet18(torch.randn(2, 3, 32, 32))
    assert torch.equal(frozen_bn.running_mean, before_frozen)
    assert not torch.equal(trained_bn.running_mean, before_trained)


@pytest.mark.filterwarnings("ignore:The validation split holds only")
def test_fit_trains_around_a_frozen_block():
    data = split_by_patient(make_synthetic(96, size=32, seed=3), 0.25, seed=0)
    torch.manual_seed(0)
    model = build_model("resnet18", pretrained="none", verbose=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, *data, freeze=["layer4.1"], epochs=1, batch_size=32, profile=QUICK, progress=False)
    after = model.state_dict()
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert not any(key.startswith("layer4.1.") for key in changed)  # weights and BN statistics
    assert "layer4.0.conv1.weight" in changed and "fc.weight" in changed


def test_module_order_goes_group_by_group_in_the_order_given(resnet18):
    order = module_order(resnet18, ["layer4", "stem"])
    assert order[0] == ("layer4.0.conv1", 512 * 256 * 9) and order[-1] == ("bn1", 128)
    assert [name for name, _ in order[-2:]] == ["conv1", "bn1"]
    assert sum(size for _, size in order) == 8_393_728 + 9536


def frozen_per_group(model: torch.nn.Module, names: list[str]) -> dict[str, int]:
    freeze(model, names)
    table = trainable_summary(model).drop("total")
    frozen = table["params"] - table["trainable"]
    return {group: int(count) for group, count in frozen.items() if count}


def test_equal_count_freezing_keeps_each_arm_in_its_half_of_the_ranking(resnet18):
    plans = equal_count_freezing(resnet18, ["layer1", "layer2", "layer3", "layer4"])
    # "least" may not reach layer3 (the second most important group) to match "most": it freezes
    # its half whole, and "most" starts layer4 with one conv, the smallest stop it has.
    assert plans == {"least": ["layer1", "layer2"], "most": ["layer4.0.conv1"]}
    assert frozen_per_group(resnet18, plans["least"]) == {"layer1": 147_968, "layer2": 525_568}
    assert frozen_per_group(resnet18, plans["most"]) == {"layer4": 1_179_648}  # 43% apart
    reversed_plans = equal_count_freezing(resnet18, ["layer4", "layer3", "layer2", "layer1"])
    assert reversed_plans == {"least": ["layer4.0.conv1"], "most": ["layer1", "layer2"]}
    # Three groups: the middle one (layer2) belongs to neither arm.
    plans = equal_count_freezing(resnet18, ["layer1", "layer2", "layer3"])
    assert plans == {"least": ["layer1"], "most": ["layer3.0.conv1"]}
    with pytest.raises(ValueError, match=r"at least two groups.*\['layer1'\]"):
        equal_count_freezing(resnet18, ["layer1"])
    with pytest.raises(ValueError, match="low=1.5 asks for more than the smaller half holds"):
        equal_count_freezing(resnet18, ["layer1", "layer2"], low=1.5)


def test_equal_count_freezing_never_crosses_the_middle_of_any_ranking(resnet18):
    for ranked in permutations(["layer1", "layer2", "layer3", "layer4"]):
        plans = equal_count_freezing(resnet18, list(ranked))
        assert set(frozen_per_group(resnet18, plans["least"])) <= set(ranked[:2]), ranked
        assert set(frozen_per_group(resnet18, plans["most"])) <= set(ranked[2:]), ranked


def test_equal_count_freezing_arms_share_no_parameter(resnet18):
    for ranked in permutations(["layer1", "layer2", "layer3", "layer4"]):
        frozen = {}
        for arm, names in equal_count_freezing(resnet18, list(ranked)).items():
            freeze(resnet18, names)
            frozen[arm] = frozen_names(resnet18)
        assert frozen["least"] and frozen["most"], ranked
        assert not frozen["least"] & frozen["most"], ranked
