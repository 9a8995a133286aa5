"""CORAL, heads on features, L2-SP and the choice on validation: values, gradients, selection."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from medtl_helpers.adaptation import (
    BestOnValidation,
    balanced_log_loss,
    choose_setting,
    coral_distance,
    covariance,
    deep_coral,
    distance_from_source,
    fine_tune,
    head_probabilities,
    l2sp,
    l2sp_penalty,
    source_weights,
    train_head,
    validation_scores,
)
from medtl_helpers.adaptation.heads import one_thread
from medtl_helpers.adaptation.l2sp import batches
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.models import build_model


def test_covariance_matches_numpy():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    np.testing.assert_allclose(covariance(x).numpy(), np.cov(x.numpy(), rowvar=False))
    with pytest.raises(ValueError, match="n >= 2"):
        covariance(x[:1])


def test_coral_is_zero_for_identical_sets_and_ignores_the_mean():
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(1))
    assert float(coral_distance(x, x)) == 0.0
    assert float(coral_distance(x, x + 3.0)) == pytest.approx(0.0, abs=1e-9)
    assert float(coral_distance(x, 2 * x)) > 0


def test_coral_value_by_hand():
    # Covariances 1·I and 4·I in d = 2: ‖(1 - 4)·I‖²_F / (4 · 2²) = 18 / 16.
    s = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]) * (3**0.5 / 2**0.5)
    assert torch.allclose(covariance(s), torch.eye(2))
    assert float(coral_distance(s, 2 * s)) == pytest.approx(18 / 16)
    with pytest.raises(ValueError, match="source has 2 features per image and target 3"):
        coral_distance(s, torch.zeros(4, 3))


def separable(n: int, seed: int, shift: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % 2).long()
    x = torch.randn(n, 8, generator=g) + shift
    x[:, 0] += 1.5 * (2 * y - 1)
    return x, y


def test_train_head_keeps_the_best_step_and_leaves_the_head_alone():
    x, y = separable(64, 0)
    xv, yv = separable(32, 1)
    head = nn.Linear(8, 2)
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0, 0] = 1.0  # starts backwards: predicts NORMAL for high feature 0
    original = copy.deepcopy(head.state_dict())
    trained, curve = train_head(head, x, y, xv, yv, steps=30, lr=0.05, batch_size=16, eval_every=10)
    assert [row["step"] for row in curve] == [0, 10, 20, 30]
    assert curve[0]["val_auroc"] < 0.2 and max(r["val_auroc"] for r in curve) > 0.8
    probs = head_probabilities(trained, xv)
    best = min(curve, key=lambda r: r["val_loss"])
    assert best["step"] > 0
    assert balanced_log_loss(yv, probs) == pytest.approx(best["val_loss"])
    assert all(torch.equal(v, original[k]) for k, v in head.state_dict().items())


def test_deep_coral_lowers_the_coral_distance_of_the_head_outputs():
    xs, ys = separable(128, 2)
    xt, _ = separable(128, 3)
    xt = xt * torch.tensor([3.0, 1, 1, 1, 1, 1, 1, 0.3])  # other spreads at the target
    xv, yv = separable(32, 4)
    torch.manual_seed(0)
    head = nn.Linear(8, 2)
    kwargs = dict(steps=150, lr=1e-2, batch_size=64, eval_every=150, seed=0)
    control, _ = deep_coral(head, xs, ys, xt, xv, yv, weight=0.0, **kwargs)
    aligned, curve = deep_coral(head, xs, ys, xt, xv, yv, weight=100.0, **kwargs)
    with torch.no_grad():
        gap = {
            name: float(coral_distance(model(xs), model(xt)))
            for name, model in (("control", control), ("aligned", aligned))
        }
    assert gap["aligned"] < 0.5 * gap["control"]
    assert [row["step"] for row in curve] == [0, 150] and curve[1]["extra_loss"] > 0


def test_deep_coral_trains_the_control_on_the_same_source_batches(monkeypatch):
    # The λ = 0 control is only a control if the alignment's target picks leave the source
    # batches alone: record every source batch of both runs and compare them.
    import medtl_helpers.adaptation.heads as heads

    seen: list[list[torch.Tensor]] = []

    def recording(n, batch_size, steps, generator):
        for index in batches(n, batch_size, steps, generator):  # lazily, as train_head draws
            seen[-1].append(index.clone())
            yield index

    monkeypatch.setattr(heads, "batches", recording)
    xs, ys = separable(40, 5)
    xt, _ = separable(30, 6)
    xv, yv = separable(16, 7)
    kwargs = dict(steps=12, lr=1e-2, batch_size=16, eval_every=12, seed=3)
    for weight in (0.0, 10.0):
        seen.append([])
        deep_coral(nn.Linear(8, 2), xs, ys, xt, xv, yv, weight=weight, **kwargs)
    control, aligned = seen
    assert len(control) == len(aligned) == 12
    assert all(torch.equal(a, b) for a, b in zip(control, aligned))


def test_l2sp_penalty_is_zero_at_the_source_and_pulls_back_towards_it():
    torch.manual_seed(0)
    model = build_model("resnet18", pretrained="none", verbose=False)
    anchor = source_weights(model)
    assert "fc.weight" not in anchor and "conv1.weight" in anchor and "layer4.1.bn2.bias" in anchor
    assert l2sp_penalty(model, anchor, alpha=10.0).item() == 0.0
    with torch.no_grad():
        model.conv1.weight += 0.1
    penalty = l2sp_penalty(model, anchor, alpha=2.0)
    assert penalty.item() == pytest.approx(model.conv1.weight.numel() * 0.01, rel=1e-4)
    penalty.backward()
    assert torch.allclose(model.conv1.weight.grad, torch.full_like(model.conv1.weight, 0.2))
    assert model.fc.weight.grad is None  # the head is not anchored
    head_only = l2sp_penalty(model, anchor, alpha=0.0, beta=2.0)
    squares = sum(p.pow(2).sum().item() for p in model.fc.parameters())
    assert head_only.item() == pytest.approx(squares, rel=1e-5)


def test_batches_are_full_and_reshuffled_each_pass():
    g = torch.Generator().manual_seed(0)
    cut = list(batches(10, 4, 5, g))
    assert [len(b) for b in cut] == [4, 4, 4, 4, 4]  # 2 full batches a pass, the 2 left dropped
    assert len(set(torch.cat(cut[:2]).tolist())) == 8  # no image twice within a pass
    assert torch.cat(cut[:2]).tolist() != torch.cat(cut[2:4]).tolist()  # a new order each pass
    assert [len(b) for b in batches(3, 16, 2, g)] == [3, 3]


def test_fine_tune_chooses_steps_on_validation_and_l2sp_stays_closer():
    data = make_synthetic(48, size=32, seed=5)
    support, val = data.subset(range(32)), data.subset(range(32, 48))
    torch.manual_seed(0)
    source = build_model("resnet18", pretrained="none", verbose=False).eval()
    before = copy.deepcopy(source.state_dict())
    kwargs = dict(steps=4, lr=1e-3, batch_size=8, eval_every=2, seed=0)
    plain, curve = fine_tune(source, support, val, alpha=0.0, **kwargs)
    anchored, anchored_curve = fine_tune(source, support, val, alpha=1e4, **kwargs)
    assert [row["step"] for row in curve] == [0, 2, 4]
    assert all(torch.equal(v, before[k]) for k, v in source.state_dict().items())
    assert curve[-1]["distance"] > 0
    assert anchored_curve[-1]["distance"] < 0.5 * curve[-1]["distance"]
    best = min(curve, key=lambda r: r["val_loss"])  # the first best, as fine_tune keeps it
    assert distance_from_source(plain, source_weights(source)) == pytest.approx(
        best["distance"], rel=1e-4, abs=1e-6
    )
    assert distance_from_source(source, source_weights(source)) == 0.0


def test_best_on_validation_keeps_the_earliest_lowest_loss():
    best = BestOnValidation()
    with pytest.raises(RuntimeError, match="offer at least one step first"):
        best.restore(nn.Linear(1, 1))
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    assert best.offer(0, model, 0.4, val_auroc=1.0)
    with torch.no_grad():
        model.weight.fill_(2.0)
    assert not best.offer(5, model, 0.4, val_auroc=1.0)  # a tie keeps the earlier step
    with torch.no_grad():
        model.weight.fill_(3.0)
    assert not best.offer(10, model, 0.9)
    assert best.restore(model).weight.item() == 1.0 and best.step == 0
    assert [row["step"] for row in best.curve] == [0, 5, 10]
    assert best.curve[1] == {"step": 5, "val_loss": 0.4, "val_auroc": 1.0}


def test_choose_setting_prefers_the_first_of_a_tie():
    assert choose_setting({0.0: 0.3, 0.1: 0.2, 1.0: 0.2}) == 0.1
    assert choose_setting({"none": 0.5}) == "none"
    with pytest.raises(ValueError, match="no settings"):
        choose_setting({})


def test_balanced_log_loss_weights_each_class_equally():
    y, p = [0, 1, 1, 1], [0.5, 0.9, 0.9, 0.9]
    expected = (np.log(2) + -np.log(0.9)) / 2  # the NORMAL mean and the PNEUMONIA mean
    assert balanced_log_loss(y, p) == pytest.approx(expected)
    scores = validation_scores(y, p)
    assert scores == {"val_loss": pytest.approx(expected), "val_auroc": 1.0}
    assert balanced_log_loss([1, 1], [1.0, 1.0]) == pytest.approx(-np.log(1 - 1e-6))


def test_one_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def batchnorm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "tracked" in k}


@pytest.fixture
def few_shot(monkeypatch):
    """A source model and 16 support images; each scored step beats the last: the last is kept."""
    scored = iter(range(100))
    monkeypatch.setattr(l2sp, "scores_on", lambda *a: {"val_loss": -next(scored), "val_auroc": 0})
    data = make_synthetic(16, size=32, seed=5)
    torch.manual_seed(0)
    return build_model("resnet18", pretrained="none", verbose=False).eval(), data


def test_fine_tune_keeps_the_source_batchnorm_statistics(few_shot):
    source, support = few_shot
    before = batchnorm_buffers(source)
    tuned, curve = fine_tune(source, support, support, steps=2, lr=1e-3, batch_size=8, eval_every=1)
    assert [r["step"] for r in curve] == [0, 1, 2]  # the last step's weights are returned
    assert distance_from_source(tuned, source_weights(source)) > 0  # the weights did move
    after = batchnorm_buffers(tuned)
    assert len(after) == 60 and all(torch.equal(after[k], v) for k, v in before.items())


def test_l2sp_distance_falls_with_alpha_under_sgd(few_shot):
    source, support = few_shot
    before, anchor = batchnorm_buffers(source), source_weights(source)
    kwargs = dict(steps=6, lr=1e-2, batch_size=8, eval_every=6, optimizer="sgd")
    distances, tuned = {}, {}
    for alpha in (0.0, 10.0, 100.0):
        tuned[alpha], curve = fine_tune(source, support, support, alpha=alpha, **kwargs)
        distances[alpha] = curve[-1]["distance"]
    assert distances[0.0] > distances[10.0] > distances[100.0]
    # A very large α (lr·α = 1, below the ceiling 3.8) holds the backbone near the source, and
    # with the BatchNorm statistics untouched nothing else of the backbone moves.
    assert distance_from_source(tuned[100.0], anchor) < 0.3 * distances[0.0]
    assert all(torch.equal(batchnorm_buffers(tuned[100.0])[k], v) for k, v in before.items())
    with pytest.raises(ValueError, match=r"lr·α = 4 >= 2·\(1 \+ momentum\) = 3.8"):
        fine_tune(source, support, support, alpha=400.0, **kwargs)
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'sgd'"):
        fine_tune(source, support, support, optimizer="rmsprop")


def test_head_and_coral_batches_mix_classes_stored_sorted():
    # Deep CORAL's source batches come from `batches` (a fresh permutation each pass) and its
    # target batches from random draws: a set stored sorted by class still gives mixed batches.
    labels = torch.arange(32) >= 16
    cut = list(batches(32, 8, 8, torch.Generator().manual_seed(0)))
    assert all(0 < int(labels[index].sum()) < 8 for index in cut)
