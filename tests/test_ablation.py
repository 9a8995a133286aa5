"""Ablation zeroes weights and biases, scores in eval mode and restores the model exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medtl_helpers.explain import ablation
from medtl_helpers.explain.ablation import ablation_importance, identity_blocks
from medtl_helpers.models import build_model


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
        self.layer10 = nn.Linear(3, 1)

    def forward(self, x):
        return self.layer10(self.layer1(x))


def output_sum(model):
    return float(model(torch.ones(2, 3)).sum().detach())


def test_zeroes_weights_and_biases_and_scores_in_eval_mode():
    torch.manual_seed(0)
    model = TwoLayers().train()
    seen = {}

    def score(m):
        seen[len(seen)] = (not m.training, [p.abs().sum().item() for p in m.layer1.parameters()])
        return output_sum(m)

    result = ablation_importance(model, ["layer1"], score)
    assert all(in_eval for in_eval, _ in seen.values())
    assert seen[1][1] == [0.0, 0.0, 0.0, 0.0]  # Linear weight, bias, BN weight, bias
    # layer1 outputs zeros, so the score is layer10's bias, twice
    assert result.rows[0]["score"] == pytest.approx(2 * model.layer10.bias.item())
    assert result.rows[0]["zeroed"] == 9 + 3 + 3 + 3


def test_restores_state_and_modes_exactly():
    model = TwoLayers().train()
    model.layer1[1].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = ablation_importance(model, ["layer1", "layer10"], output_sum)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and not model.layer1[1].training and model.layer1[0].training
    assert [row["part"] for row in result.rows] == ["layer1", "layer10"]
    assert result.rows[1]["drop"] == pytest.approx(result.baseline - result.rows[1]["score"])


def test_restores_even_when_the_score_fails():
    model = TwoLayers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def failing(m):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("boom")
        return 0.0

    with pytest.raises(RuntimeError, match="boom"):
        ablation_importance(model, ["layer1"], failing)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_prefix_matches_at_a_dot_boundary():
    model = TwoLayers()
    result = ablation_importance(model, ["layer1"], output_sum)
    assert result.rows[0]["zeroed"] == 18  # layer10 (4 values) is not part of layer1
    with pytest.raises(ValueError, match="layer2: no parameter name starts with"):
        ablation_importance(model, ["layer2"], output_sum)


def test_least_important_and_grouped_parts():
    model = TwoLayers()
    result = ablation_importance(
        model, {"both": ["layer1", "layer10"], "l1": ["layer1"]}, output_sum
    )
    assert result.rows[0]["zeroed"] == 22
    drops = {row["part"]: row["drop"] for row in result.rows}
    assert result.least_important(1) == [min(drops, key=drops.get)]


def test_table_is_a_data_frame_with_the_baseline_first():
    model = TwoLayers()
    result = ablation_importance(model, ["layer1", "layer10"], output_sum)
    table = result.table()
    assert list(table.columns) == ["zeroed", "score", "drop"] and table.index.name == "part"
    assert list(table.index) == ["(nothing zeroed)", "layer1", "layer10"]
    assert table.loc["(nothing zeroed)"].tolist() == [0, result.baseline, 0.0]
    assert table.loc["layer10", "zeroed"] == 4
    zeroed_score = 2 * model.layer10.bias.item()  # layer1 outputs zeros: layer10's bias, twice
    assert table.loc["layer1", "score"] == pytest.approx(zeroed_score)
    assert table.loc["layer1", "drop"] == pytest.approx(result.baseline - zeroed_score)


def test_identity_blocks_of_resnet18_and_resnet50():
    with torch.device("meta"):
        r18 = build_model("resnet18", pretrained="none", verbose=False)
        r50 = build_model("resnet50", pretrained="none", verbose=False)
    assert identity_blocks(r18) == {
        "layer1": ["layer1.0", "layer1.1"],
        "layer2": ["layer2.1"],
        "layer3": ["layer3.1"],
        "layer4": ["layer4.1"],
    }
    assert identity_blocks(r50)["layer1"] == ["layer1.1", "layer1.2"]
    assert identity_blocks(r50)["layer3"] == [f"layer3.{i}" for i in range(1, 6)]


def test_the_docstring_calls_the_freezing_advice_a_claim_03_tests():
    doc = " ".join(ablation.__doc__.split())
    assert "it is the cheapest to freeze" not in doc  # stated as fact before 03 tested it
    assert "is a claim to test, not a fact" in doc and "nearly equal" not in doc  # 43% apart
    assert "each freezing only groups from its own half of the ranking" in doc
    assert "restores nothing" in doc  # state_dict() holds the live tensors
