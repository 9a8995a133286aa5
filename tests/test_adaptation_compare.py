"""A target site's roles, the runs compared at it, the log-odds shift, and the result plots."""

from __future__ import annotations

import copy

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from medtl_helpers.adaptation import (
    FewShot,
    adapt_with_labels,
    compare,
    compare_methods,
    coral_chosen,
    k_support,
    logit_shift,
    plot_against_k,
    plot_by_site,
    split_target,
)
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.models import build_model
from medtl_helpers.training import backbone_features


@pytest.fixture(scope="module")
def target():
    return split_target("blur", make_synthetic(120, size=32, seed=7), val_patients=2, seed=0)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("resnet18", pretrained="none", verbose=False).eval()


def test_split_target_gives_disjoint_roles(target):
    test, unlabelled = set(target.test.patients), set(target.unlabelled.patients)
    assert test.isdisjoint(unlabelled)
    assert set(target.val.patients) | set(target.support.patients) == unlabelled
    assert set(target.val.patients).isdisjoint(target.support.patients)
    assert target.val.n_patients() == 4 and set(target.val.labels.tolist()) == {0, 1}
    assert len(target.unlabelled) + len(target.test) == 120
    assert abs(len(target.test) - 60) <= 6  # half of the patients, about half of the images


def test_k_support_draws_about_k_images_of_whole_patients(target):
    support = k_support(target, 8, seed=0)
    assert 6 <= len(support) <= 10
    assert set(support.patients) <= set(target.support.patients)
    whole = {p: target.support.patients.count(p) for p in set(support.patients)}
    assert all(support.patients.count(p) == n for p, n in whole.items())


def test_coral_chosen_returns_test_probabilities_and_the_lambda_it_chose(model, target):
    features = {
        part: backbone_features(model, getattr(target, part).images, 32)
        for part in ("unlabelled", "val", "test")
    }
    settings = FewShot(head_steps=10, lambdas=(10.0,))
    result = coral_chosen(model, features["unlabelled"], target.unlabelled.labels, features,
                          target, settings)  # fmt: skip
    assert result["p"].shape == (len(target.test),)
    assert set(result["val_losses"]) == {0.0, 10.0}
    assert result["lambda"] == min(result["val_losses"], key=result["val_losses"].get)


def test_adapt_with_labels_runs_the_three_methods_on_the_same_images(model, target):
    settings = FewShot(steps=2, eval_every=1, batch_size=4, head_steps=4, alphas=(0.1, 1.0))
    support = k_support(target, 8, seed=0)
    results = adapt_with_labels(model, support, target, settings, image_size=32)
    assert list(results) == ["head only", "fine-tune all", "L2-SP"]
    for method, result in results.items():
        assert result["p"].shape == (len(target.test),), method
        assert result["curve"][0]["step"] == 0
    assert [row["step"] for row in results["fine-tune all"]["curve"]] == [0, 1, 2]
    assert results["fine-tune all"]["alpha"] == 0.0
    losses = results["L2-SP"]["val_losses"]
    assert list(losses) == [1.0, 0.1, 0.0]  # the largest α, the least movement, first; 0 last
    assert results["L2-SP"]["alpha"] == min(losses, key=losses.get)


def test_l2sp_chooses_alpha_0_when_plain_fine_tuning_has_the_lowest_validation_loss(
    model, target, monkeypatch
):
    # L2-SP is fine-tuning with α chosen on validation: α = 0 competes inside that choice, so
    # "fine-tune all" and "L2-SP" differ in the choice of α, not in extra tries for one side.
    best = {1.0: 0.6, 0.1: 0.5, 0.0: 0.4}

    def fake(net, support, val, *, alpha, **options):
        return net, [{"step": 0, "val_loss": 0.9}, {"step": 1, "val_loss": best[alpha]}]

    monkeypatch.setattr(compare, "fine_tune", fake)
    settings = FewShot(steps=1, eval_every=1, batch_size=4, head_steps=2, alphas=(0.1, 1.0))
    results = adapt_with_labels(model, k_support(target, 8, seed=0), target, settings, 32)
    assert results["L2-SP"]["val_losses"] == best
    assert results["L2-SP"]["alpha"] == 0.0
    best[0.0] = 0.5  # a tie with α = 0.1 keeps the penalty (the more constrained setting)
    results = adapt_with_labels(model, k_support(target, 8, seed=0), target, settings, 32)
    assert results["L2-SP"]["alpha"] == 0.1


def test_adapt_with_labels_adds_joint_training_given_the_source_images(model, target, monkeypatch):
    seen = {}

    def fake(net, support, source, site, lambdas, **options):
        seen.update(source=source, site=site, lambdas=lambdas, **options)
        return {"p": np.zeros(len(site.test)), "curve": [], "lambda": lambdas[0], "val_losses": {}}

    monkeypatch.setattr(compare, "joint_chosen", fake)
    settings = FewShot(steps=1, eval_every=1, batch_size=4, head_steps=2, alphas=(1.0,),
                       joint_lambdas=(0.5, 2.0), beta=0.01)  # fmt: skip
    support, source = k_support(target, 8, seed=0), make_synthetic(16, size=32, seed=3)
    results = adapt_with_labels(model, support, target, settings, image_size=32, source=source)
    assert list(results) == ["head only", "fine-tune all", "L2-SP", "joint"]
    assert seen["source"] is source and seen["site"] is target and seen["lambdas"] == (0.5, 2.0)
    # the same training settings as "fine-tune all", so the arms differ in the source term only
    assert {k: seen[k] for k in ("steps", "lr", "batch_size", "eval_every", "beta")} == {
        "steps": 1, "lr": 1e-4, "batch_size": 4, "eval_every": 1, "beta": 0.01
    }  # fmt: skip
    assert seen["optimizer"] == "adam" and seen["image_size"] == 32


def test_adapt_with_labels_passes_its_seed_to_every_method(model, target, monkeypatch):
    seeds = {}

    def spy(name, real):
        def wrapped(*args, **kwargs):
            seeds.setdefault(name, set()).add(kwargs.get("seed"))
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(compare, "train_head", spy("head", compare.train_head))
    monkeypatch.setattr(compare, "fine_tune", spy("fine_tune", compare.fine_tune))
    monkeypatch.setattr(compare, "joint_chosen", spy("joint", compare.joint_chosen))
    settings = FewShot(steps=1, eval_every=1, batch_size=4, head_steps=2, alphas=(1.0,),
                       joint_lambdas=(1.0,))  # fmt: skip
    support, source = k_support(target, 8, seed=0), make_synthetic(16, size=32, seed=3)
    first = adapt_with_labels(model, support, target, settings, 32, source=source, seed=7)
    assert seeds == {"head": {7}, "fine_tune": {7}, "joint": {7}}
    again = adapt_with_labels(model, support, target, settings, 32, source=source, seed=7)
    for method in first:  # the same seed repeats a run
        np.testing.assert_allclose(first[method]["p"], again[method]["p"], atol=1e-6)


def test_logit_shift_measures_the_mean_and_the_spread_of_the_log_odds(model):
    net = copy.deepcopy(model)
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.bias.zero_()
        net.fc.weight[1, 0] = 1.0  # log-odds = feature 0
    source = np.zeros((4, 512), dtype=np.float32)
    source[:, 0] = [0.0, 1.0, 2.0, 3.0]
    target = source.copy()
    target[:, 0] = 2 * source[:, 0] + 5  # spread doubled, mean 1.5 -> 8
    shift = logit_shift(net, source, target)
    assert shift["mean_change"] == pytest.approx(6.5)
    assert shift["sd_ratio"] == pytest.approx(2.0)


def rows():
    def row(method, site, auroc, K=None):
        values = {"method": method, "site": site, "auroc": auroc, "sensitivity": 0.8}
        values.update(auroc_low=auroc - 0.1, auroc_high=min(1.0, auroc + 0.05))
        values.update(sensitivity_low=0.7, sensitivity_high=0.9, K=K)
        return values

    return [row("source model", "a", 0.8, 8), row("AdaBN", "a", 0.9, 8),
            row("source model", "b", 0.7, 32), row("AdaBN", "b", 0.75, 32)]  # fmt: skip


def test_compare_methods_puts_methods_side_by_side_per_metric():
    table = compare_methods(rows(), ["source model", "AdaBN"], ("auroc",))
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", ("auroc", "AdaBN")] == 0.9
    assert list(table.columns) == [("auroc", "source model"), ("auroc", "AdaBN")]


def test_plot_by_site_draws_one_series_per_method_and_panel():
    axes = plot_by_site(rows(), metrics=("auroc", "sensitivity"))
    assert len(axes) == 2
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["a", "b"]
    assert len(axes[0].containers) == 2  # source model and AdaBN
    plt.close("all")


def test_plot_against_k_draws_methods_and_baselines():
    ax = plot_against_k(rows(), {"reference": 0.85}, "auroc")
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert "reference" in labels
    assert len(ax.containers) == 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["8", "32"]
    plt.close("all")


def test_coral_chosen_returns_the_lambda_0_control_scored_on_test(model, target, monkeypatch):
    # Deep CORAL's head also trains further on the source; the λ = 0 run of those steps is
    # returned and scored, so that Deep CORAL minus the control is what the alignment added.
    features = {
        part: backbone_features(model, getattr(target, part).images, 32)
        for part in ("unlabelled", "val", "test")
    }
    losses = {0.0: 0.5, 10.0: 0.4}

    def fake(head, *args, weight, **kwargs):
        shifted = copy.deepcopy(head)
        linear = next(m for m in shifted.modules() if isinstance(m, torch.nn.Linear))
        with torch.no_grad():
            linear.bias += torch.tensor([-weight / 5, weight / 5])  # λ = 10: higher scores
        return shifted, [{"step": 0, "val_loss": 0.9}, {"step": 1, "val_loss": losses[weight]}]

    monkeypatch.setattr(compare, "deep_coral", fake)
    settings = FewShot(lambdas=(10.0,))
    result = coral_chosen(model, features["unlabelled"], target.unlabelled.labels, features,
                          target, settings)  # fmt: skip
    control = result["control"]
    assert result["lambda"] == 10.0 and control["lambda"] == 0.0
    assert control["p"].shape == result["p"].shape == (len(target.test),)
    assert (control["p"] < result["p"]).all()  # the λ = 0 head's own scores
    losses[10.0] = 0.5  # a tie keeps λ = 0: the two rows are then one run
    result = coral_chosen(model, features["unlabelled"], target.unlabelled.labels, features,
                          target, settings)  # fmt: skip
    assert result["lambda"] == 0.0 and result["control"]["p"] is result["p"]
