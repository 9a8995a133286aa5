"""Ensembles: voting by hand-computed examples, refusals for members that do not fit, and the soft
vote against the member chosen on validation (how much two models' errors overlap: test_diversity).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtl_helpers.data.records import ImageSet
from medtl_helpers.errors import CheckpointError
from medtl_helpers.evaluation.ensemble import (
    Ensemble,
    build_member,
    compare_members,
    hard_vote,
    majority_cut,
    soft_vote,
    soft_vote_against_best,
    vote_share,
    weights_fingerprint,
)
from medtl_helpers.metrics import auroc, choose_threshold, paired_difference
from medtl_helpers.models import build_model
from medtl_helpers.training.checkpoints import checkpoint_meta, save_checkpoint

PROBS = np.array([[0.9, 0.2, 0.6, 0.4], [0.7, 0.1, 0.3, 0.45]])


def save(path, arch="resnet18", seed=0, threshold=0.5, image_size=32, **meta):
    torch.manual_seed(seed)
    model = build_model(arch, pretrained="none", verbose=False)
    info = checkpoint_meta(
        model,
        image_size=image_size,
        data_source="synthetic",
        profile="quick",
        seed=seed,
        threshold=threshold,
    )
    return save_checkpoint(path, model, {**info, **meta})


def tiny_set(n=6, size=32) -> ImageSet:
    images = (torch.arange(n * size * size) % 251).to(torch.uint8).view(n, 1, size, size)
    labels = torch.tensor([0, 1] * (n // 2))
    return ImageSet(images, labels, [f"p{i}" for i in range(n)], "synthetic")


def test_soft_vote_is_the_mean_over_members():
    np.testing.assert_allclose(soft_vote(PROBS), [0.8, 0.15, 0.45, 0.425])


def test_hard_vote_uses_each_members_own_threshold():
    # member 2's threshold 0.44 turns its 0.45 into a positive vote on the last image
    np.testing.assert_allclose(vote_share(PROBS, [0.5, 0.44]), [1.0, 0.0, 0.5, 0.5])
    assert hard_vote(PROBS, [0.5, 0.5]).tolist() == [1, 0, 1, 0]


def test_hard_vote_breaks_ties_as_asked():
    assert hard_vote(PROBS, [0.5, 0.5], tie="positive").tolist() == [1, 0, 1, 0]
    assert hard_vote(PROBS, [0.5, 0.5], tie="negative").tolist() == [1, 0, 0, 0]
    with pytest.raises(ValueError, match="tie='coin'"):
        hard_vote(PROBS, [0.5, 0.5], tie="coin")


def test_majority_cut_puts_a_tie_on_the_chosen_side():
    assert majority_cut("positive") == 0.5
    negative = majority_cut("negative")
    assert 0.5 < negative < 0.5 + 1e-15  # the next float: any real majority is still above it
    assert 2 / 3 >= negative and not 0.5 >= negative
    with pytest.raises(ValueError, match="tie='maybe': use 'positive' or 'negative'"):
        majority_cut("maybe")


def test_three_members_have_no_ties():
    probs = np.array([[0.9, 0.1], [0.6, 0.7], [0.2, 0.8]])
    assert hard_vote(probs, [0.5] * 3, tie="negative").tolist() == [1, 1]


def test_ensemble_rebuilds_each_architecture(tmp_path):
    a = save(tmp_path / "a" / "best.pt", "resnet18", threshold=0.3)
    b = save(tmp_path / "b" / "best.pt", "resnet34", threshold=0.6)
    ensemble = Ensemble.from_checkpoints([a, b], names=["r18", "r34"])
    assert [m.model.medtl_arch for m in ensemble.members] == ["resnet18", "resnet34"]
    assert ensemble.thresholds.tolist() == [0.3, 0.6]
    assert ensemble.image_size == 32
    data = tiny_set()
    probs = ensemble.member_probabilities(data)
    assert probs.shape == (2, 6)
    np.testing.assert_allclose(ensemble.predict_proba(data), probs.mean(axis=0))
    assert ensemble.predict(data).tolist() == hard_vote(probs, [0.3, 0.6]).tolist()


def test_members_must_agree_on_the_input(tmp_path):
    a = save(tmp_path / "a.pt", image_size=32)
    b = save(tmp_path / "b.pt", seed=1, image_size=64)
    with pytest.raises(CheckpointError, match=r"image_size is 32 for the first and 64"):
        Ensemble.from_checkpoints([a, b])
    c = save(tmp_path / "c.pt", seed=2, normalisation={"mean": [0.5], "std": [0.5]})
    with pytest.raises(CheckpointError, match="normalisation"):
        Ensemble.from_checkpoints([a, c])


def test_identical_members_are_refused(tmp_path):
    a = save(tmp_path / "a.pt")
    twin = save(tmp_path / "twin.pt")  # same seed, same weights, another file
    with pytest.raises(ValueError, match="identical weights.*not an ensemble"):
        Ensemble.from_checkpoints([a, twin])
    with pytest.raises(ValueError, match="identical weights"):
        Ensemble.from_checkpoints([a, a])


def test_fingerprint_sees_a_single_changed_value():
    model = build_model("resnet18", pretrained="none", verbose=False)
    before = weights_fingerprint(model)
    with torch.no_grad():
        model.fc.bias[0] += 1e-6
    assert weights_fingerprint(model) != before


def test_an_ensemble_needs_two_members(tmp_path):
    with pytest.raises(ValueError, match="at least 2 members"):
        Ensemble.from_checkpoints([save(tmp_path / "a.pt")])


def test_compare_members_table(tmp_path):
    from medtl_helpers.data.synthetic import make_synthetic
    from medtl_helpers.metrics import auroc, choose_threshold, sensitivity

    a = save(tmp_path / "a.pt", "resnet18")
    b = save(tmp_path / "b.pt", "resnet18", seed=1)
    ensemble = Ensemble.from_checkpoints([a, b], names=["m0", "m1"])
    data = make_synthetic(40, size=32, seed=2)
    val, test = data.subset(range(20)), data.subset(range(20, 40))  # two different sets
    table = compare_members(ensemble, val, test)
    assert list(table.index) == ["m0", "m1", "soft vote", "hard vote (tie=positive)"]
    assert {"val AUROC", "test AUROC", "test sensitivity", "test specificity"} <= set(table)
    assert table["test AUROC"].between(0, 1).all()
    p_val, p_test = ensemble.member_probabilities(val), ensemble.member_probabilities(test)
    y_val, y_test = val.labels.numpy(), test.labels.numpy()
    for i, name in enumerate(["m0", "m1"]):
        assert table.loc[name, "val AUROC"] == pytest.approx(auroc(y_val, p_val[i]))
        assert table.loc[name, "test AUROC"] == pytest.approx(auroc(y_test, p_test[i]))
    soft_threshold = choose_threshold(y_val, p_val.mean(axis=0))  # chosen on validation only
    assert table.loc["soft vote", "threshold"] == pytest.approx(soft_threshold)
    expected = sensitivity(y_test, p_test.mean(axis=0), soft_threshold)
    assert table.loc["soft vote", "test sensitivity"] == pytest.approx(expected)
    assert table.loc["m0", "val AUROC"] != pytest.approx(table.loc["m0", "test AUROC"])


def test_a_member_without_a_threshold_is_an_error_not_a_half(tmp_path):
    a = save(tmp_path / "a.pt", "resnet18", threshold=None)
    b = save(tmp_path / "b.pt", "resnet18", seed=1)
    ensemble = Ensemble.from_checkpoints([a, b])
    with pytest.raises(
        CheckpointError, match=r"a.pt records no decision threshold.*choose_threshold"
    ):
        ensemble.predict(tiny_set())


def two_sets(n_val=8, n_test=12):
    """A validation and a test set of tiny images; test patients hold two X-rays each."""
    val = tiny_set(n_val)
    test = tiny_set(n_test)
    test.patients = [f"t{i // 2}" for i in range(n_test)]
    return val, test


def test_compare_members_takes_given_probabilities(tmp_path):
    a = save(tmp_path / "a.pt", threshold=0.4)
    b = save(tmp_path / "b.pt", seed=1, threshold=0.6)
    ensemble = Ensemble.from_checkpoints([a, b], names=["m0", "m1"])
    val, test = two_sets()
    computed = ensemble.member_probabilities(val), ensemble.member_probabilities(test)
    given = compare_members(ensemble, val, test, probabilities=computed)
    assert given.equals(compare_members(ensemble, val, test))
    # probabilities that no member produced are used as given, not recomputed
    made_up = np.linspace(0.05, 0.95, 8)
    table = compare_members(
        ensemble, val, test, probabilities=(np.stack([made_up] * 2), computed[1])
    )
    assert table.loc["m0", "val AUROC"] == pytest.approx(auroc(val.labels.numpy(), made_up))
    with pytest.raises(ValueError, match=r"shapes \(2, 8\) and \(2, 12\).*got \(2, 12\) and"):
        compare_members(ensemble, val, test, probabilities=(computed[1], computed[1]))


def test_soft_vote_is_compared_with_the_member_chosen_on_validation(tmp_path):
    a = save(tmp_path / "a.pt", threshold=0.5)
    b = save(tmp_path / "b.pt", seed=1, threshold=0.45)
    ensemble = Ensemble.from_checkpoints([a, b], names=["m0", "m1"])
    val, test = two_sets()
    y_val, y_test = val.labels.numpy(), test.labels.numpy()  # 0, 1, 0, 1, ...
    # m1 ranks validation perfectly and m0 does not; on test it is the other way round
    p_val = np.stack([np.linspace(0.9, 0.1, 8), 0.2 + 0.6 * y_val])
    p_test = np.stack([0.1 + 0.8 * y_test, np.linspace(0.9, 0.1, 12)])
    assert auroc(y_test, p_test[0]) > auroc(y_test, p_test[1])
    name, table = soft_vote_against_best(ensemble, val, test, probabilities=(p_val, p_test))
    assert name == "m1", "the better member is the one chosen on validation"
    soft_threshold = choose_threshold(y_val, p_val.mean(axis=0))
    expected = paired_difference(
        y_test, p_test[1], p_test.mean(axis=0), 0.45, soft_threshold, groups=test.patients
    )
    for metric, (difference, low, high) in expected.items():
        assert table.loc[metric, "soft vote - member"] == pytest.approx(difference)
        assert (table.loc[metric, "low"], table.loc[metric, "high"]) == pytest.approx((low, high))
    soft, member = auroc(y_test, p_test.mean(axis=0)), auroc(y_test, p_test[1])
    assert table.loc["auroc", "soft vote - member"] == pytest.approx(soft - member)
    assert set(table["verdict"]) <= {
        "soft vote is better",
        "m1 is better",
        "not settled by these patients (the interval includes 0)",
    }


def test_soft_vote_verdicts_name_what_was_resampled(tmp_path):
    # PneumoniaMNIST records no patient ids: the bootstrap draws images, and the verdict says so
    a = save(tmp_path / "a.pt", threshold=0.5)
    b = save(tmp_path / "b.pt", seed=1, threshold=0.45)
    ensemble = Ensemble.from_checkpoints([a, b], names=["m0", "m1"])
    val, test = two_sets()
    test.source = "pneumoniamnist"
    same = np.stack([np.linspace(0.9, 0.1, 12)] * 2)  # the soft vote equals each member
    _, table = soft_vote_against_best(
        ensemble, val, test, probabilities=(np.stack([np.linspace(0.9, 0.1, 8)] * 2), same)
    )
    assert set(table["verdict"]) == {"not settled by these images (the interval includes 0)"}


def test_members_of_different_depths_built_from_one_seed_share_the_head():
    """Only the depth differs: the new head is drawn from the seed alone, not after the backbone."""
    heads = {
        arch: build_member(arch, seed=3, pretrained="none", verbose=False).fc
        for arch in ("resnet18", "resnet34")
    }
    assert torch.equal(heads["resnet18"].weight, heads["resnet34"].weight)
    assert torch.equal(heads["resnet18"].bias, heads["resnet34"].bias)
    other_seed = build_member("resnet18", seed=4, pretrained="none", verbose=False).fc
    assert not torch.equal(heads["resnet18"].weight, other_seed.weight)
    # the backbone still comes from the seed: the same seed rebuilds the same model
    again = build_member("resnet18", seed=3, pretrained="none", verbose=False)
    assert weights_fingerprint(again) == weights_fingerprint(
        build_member("resnet18", seed=3, pretrained="none", verbose=False)
    )
