"""Learning-curve machinery: nested patient-level subsets, the step rule, skipping, the results."""

from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from medtl_helpers import config
from medtl_helpers.data.split import split_by_patient
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.evaluation import data_efficiency
from medtl_helpers.evaluation.data_efficiency import (
    COLUMNS,
    CurveSettings,
    learning_curve,
    nested_subsets,
    passes_needed,
    plot_learning_curve,
    pretrained_problem,
    repeats_needed,
    summarise,
    training_plan,
)
from medtl_helpers.training import steps_per_epoch

QUICK = config.get_profile("quick")
TINY = CurveSettings(epochs=1, min_steps=4, batch_size=16, image_size=32)


@pytest.fixture(scope="module")
def splits():
    pool, test = split_by_patient(make_synthetic(260, size=32, seed=5), 0.25, seed=0)
    train, val = split_by_patient(pool, 0.25, seed=1)
    return train, val, test


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached ImageNet weights


def test_subsets_are_whole_patients_stratified_sized_and_nested():
    data = make_synthetic(1000, size=16, seed=2)
    subsets = nested_subsets(data, (1.0, 0.05, 0.25, 0.01), seed=0)
    assert list(subsets) == [0.01, 0.05, 0.25, 1.0]
    assert len(subsets[1.0]) == len(data)
    share = data.labels.float().mean().item()
    per_patient = max(data.patients.count(p) for p in set(data.patients))
    for fraction, index in subsets.items():
        part = data.subset(index)
        chosen = set(part.patients)
        assert sum(p in chosen for p in data.patients) == len(part)  # every image of a patient
        assert abs(len(part) - fraction * len(data)) <= 2 * per_patient
        assert set(part.labels.tolist()) == {0, 1}
        if fraction >= 0.05:
            assert abs(part.labels.float().mean().item() - share) < 0.06
    for small, large in zip([0.01, 0.05, 0.25], [0.05, 0.25, 1.0]):
        assert set(subsets[small]) <= set(subsets[large])
    other = nested_subsets(data, (0.05,), seed=1)[0.05]
    assert not np.array_equal(other, subsets[0.05])  # seeds draw different patients


def test_bad_fraction_is_refused():
    with pytest.raises(ValueError, match=r"fractions must be in \(0, 1\]"):
        nested_subsets(make_synthetic(20, size=16), (0.0, 0.5))


def test_step_rule_gives_small_subsets_enough_updates():
    assert steps_per_epoch(38, 32) == 1 and steps_per_epoch(20, 32) == 1
    assert steps_per_epoch(377, 32) == 11 and steps_per_epoch(64, 32) == 2
    assert passes_needed(38, 32, epochs=2, min_steps=40) == 40
    assert passes_needed(377, 32, epochs=2, min_steps=40) == 4  # ceil(40 / 11)
    assert passes_needed(3767, 32, epochs=2, min_steps=40) == 2  # epochs already suffice
    assert repeats_needed(38, 32, epochs=2, min_steps=40) == 20
    assert repeats_needed(3767, 32, epochs=2, min_steps=40) == 1
    with pytest.raises(ValueError, match="no image"):
        repeats_needed(0, 32, epochs=2, min_steps=40)
    for n in (5, 20, 38, 377):  # after repetition, `epochs` epochs still make min_steps
        repeats = repeats_needed(n, 32, epochs=2, min_steps=40)
        assert 2 * steps_per_epoch(repeats * n, 32) >= 40


def test_the_plan_gives_the_passes_and_steps_really_trained_not_the_rules():
    # 60 images at batch 32: the rule counts one step per pass (fit drops 28 images each pass),
    # so 40 passes; repeated 20 times, the subset drops one partial batch per epoch: 74 steps.
    assert training_plan(60, 32, epochs=2, min_steps=40) == {
        "passes_needed": 40,
        "repeats": 20,
        "passes": 40,
        "steps": 74,
    }
    # 7 passes do not split into 2 epochs: 4 repeats train 8 passes, 94 steps.
    assert training_plan(377, 32, epochs=2, min_steps=70) == {
        "passes_needed": 7,
        "repeats": 4,
        "passes": 8,
        "steps": 94,
    }
    # smaller than a batch: one step per pass by the rule, full batches once repeated
    assert training_plan(20, 32, epochs=2, min_steps=40) == {
        "passes_needed": 40,
        "repeats": 32,
        "passes": 64,
        "steps": 40,
    }
    capped = training_plan(60, 32, epochs=2, min_steps=40, trained_epochs=1)
    assert (capped["repeats"], capped["passes"], capped["steps"]) == (20, 20, 37)


def test_each_row_of_the_curve_trained_what_the_plan_says(splits):
    train = splits[0]
    results = learning_curve(
        *splits, TINY, fractions=(0.1, 1.0), inits=("random",), profile=QUICK, device="cpu"
    )
    for fraction, index in nested_subsets(train, (0.1, 1.0), seed=0).items():
        row = results[(results.fraction == fraction) & (results.seed == 0)].iloc[0]
        plan = training_plan(len(index), TINY.batch_size, TINY.epochs, TINY.min_steps)
        assert (row.passes, row.steps) == (plan["passes"], plan["steps"])


def test_missing_pretrained_weights_are_reported_never_replaced(monkeypatch):
    quick = pretrained_problem("resnet18", QUICK)
    assert "MISSING" in quick and "quick profile" in quick and "resnet18-" in quick
    monkeypatch.setenv("MEDTL_PRETRAINED", "none")
    chosen = pretrained_problem("resnet18", config.get_profile("cpu"))
    assert "MEDTL_PRETRAINED=none" in chosen
    monkeypatch.delenv("MEDTL_PRETRAINED")
    offline = pretrained_problem("resnet18", config.get_profile("cpu"))
    assert "MISSING" in offline and "MEDTL_OFFLINE=1" in offline and "expected at" in offline


def test_tiny_curve_has_the_columns_values_and_the_skip_message(splits, capsys):
    train, val, test = splits
    results = learning_curve(
        *splits, TINY, fractions=(0.1, 1.0), seeds=(0, 1), profile=QUICK, device="cpu"
    )
    out = capsys.readouterr().out
    assert "ImageNet-pretrained curve is MISSING" in out
    assert list(results.columns) == list(COLUMNS)
    assert set(results.init) == {"random"} and "imagenet" in results.attrs["missing"]
    assert len(results) == 4 and sorted(set(results.seed)) == [0, 1]
    full = results[results.fraction == 1.0]
    assert (full.images == len(train)).all() and (full.passes == 1).all()
    assert (full.steps == len(train) // 16).all()
    small = results[results.fraction == 0.1]
    assert (small.images < len(train) / 5).all() and (small.steps >= TINY.min_steps).all()
    assert results.test_auroc.between(0, 1).all() and results.val_auroc.between(0, 1).all()
    table = summarise(results)
    assert list(table.columns) == [
        "init",
        "fraction",
        "images",
        "seeds",
        "mean",
        "sd",
        "min",
        "max",
    ]
    assert (table.seeds == 2).all()
    row = table[table.fraction == 1.0].iloc[0]
    assert row["mean"] == pytest.approx(full.test_auroc.mean())
    assert row["min"] <= row["mean"] <= row["max"]


def test_a_fraction_too_small_for_the_set_is_named_not_trained_on_one_class():
    from medtl_helpers.errors import DataError

    data = make_synthetic(64, size=16, seed=0)  # 1% of 64 images is less than one patient
    with pytest.raises(DataError) as caught:
        nested_subsets(data, (0.01, 0.05, 0.10, 0.25, 1.0), seed=0)
    message = str(caught.value)
    assert "the 1% subset of 64 images holds no" in message
    assert "fractions of at least 5%" in message
    smallest = nested_subsets(data, (0.05, 1.0), seed=0)[0.05]
    assert set(data.labels[smallest].tolist()) == {0, 1}


def test_finished_points_are_reused(splits, monkeypatch, capsys):
    options = dict(fractions=(1.0,), seeds=(0,), inits=("random",), profile=QUICK, device="cpu")
    first = learning_curve(*splits, TINY, **options)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished point was trained again")

    monkeypatch.setattr(data_efficiency, "train_point", no_training)
    again = learning_curve(*splits, TINY, **options)
    assert "Reusing 1 finished point(s)" in capsys.readouterr().out
    assert again.test_auroc.tolist() == pytest.approx(first.test_auroc.tolist())


def test_points_of_a_capped_smoke_run_are_not_reused_without_the_cap(splits, monkeypatch, capsys):
    options = dict(fractions=(1.0,), seeds=(0,), inits=("random",), profile=QUICK, device="cpu")
    monkeypatch.setenv("MEDTL_MAX_EPOCHS", "1")
    learning_curve(*splits, TINY, **options)
    monkeypatch.delenv("MEDTL_MAX_EPOCHS")
    learning_curve(*splits, TINY, **options)
    assert "Reusing" not in capsys.readouterr().out


def test_rows_count_the_epochs_trained_under_an_epoch_cap(splits, monkeypatch):
    monkeypatch.setenv("MEDTL_MAX_EPOCHS", "1")
    two = dataclasses.replace(TINY, epochs=2)
    options = dict(fractions=(1.0,), seeds=(0,), inits=("random",), profile=QUICK, device="cpu")
    results = learning_curve(*splits, two, store=False, **options)
    row = results.iloc[0]
    assert (row.epochs, row.passes, row.steps) == (1, 1, len(splits[0]) // 16)


def test_unknown_init_is_refused(splits):
    with pytest.raises(ValueError, match="Unknown init"):
        learning_curve(*splits, TINY, inits=("imagenet21k",), profile=QUICK)


def test_plot_labels_only_the_inits_that_ran(splits):
    results = pd.DataFrame(
        [
            {"init": "random", "fraction": f, "seed": s, "images": 10, "test_auroc": 0.6 + f / 4}
            for f in (0.01, 0.1, 1.0)
            for s in (0, 1)
        ]
    )
    results.attrs["missing"] = {"imagenet": "weights missing"}
    ax = plot_learning_curve(results)
    labels = ax.get_legend_handles_labels()[1]
    assert "random init (mean)" in labels and not any("ImageNet" in x for x in labels)
    assert "curve missing" in " ".join(t.get_text() for t in ax.texts)
    assert ax.get_xscale() == "log"
    plt.close(ax.figure)


def test_progress_lines_count_patients_only_where_the_source_has_patient_ids(splits, capsys):
    options = dict(fractions=(1.0,), seeds=(0,), inits=("random",), profile=QUICK, device="cpu")
    learning_curve(*splits, TINY, store=False, **options)
    assert f"({splits[0].n_patients()} patients)" in capsys.readouterr().out
    mnist = [dataclasses.replace(part, source="pneumoniamnist") for part in splits]
    learning_curve(*mnist, TINY, store=False, **options)
    line = capsys.readouterr().out
    assert f"{len(mnist[0])} images, 1 passes" in line and "patients" not in line


def test_points_saved_by_another_package_version_are_not_reused(splits, monkeypatch, capsys):
    from medtl_helpers.config import version

    options = dict(fractions=(1.0,), seeds=(0,), inits=("random",), profile=QUICK, device="cpu")
    learning_curve(*splits, TINY, **options)
    monkeypatch.setattr(version, "__version__", version.__version__ + ".post1")
    learning_curve(*splits, TINY, **options)
    assert "Reusing" not in capsys.readouterr().out


def test_points_saved_by_other_package_code_are_not_reused(splits, monkeypatch, capsys):
    from pathlib import Path

    from medtl_helpers.evaluation import curve_store

    options = dict(fractions=(1.0,), seeds=(0,), inits=("random",), profile=QUICK, device="cpu")
    learning_curve(*splits, TINY, **options)
    before, read = curve_store.code_fingerprint(), curve_store._source

    def edited(path: Path) -> bytes:  # model building changed, the version not bumped
        return read(path) + (b"# changed" if path.as_posix().endswith("models/build.py") else b"")

    monkeypatch.setattr(curve_store, "_source", edited)
    assert curve_store.code_fingerprint() != before and len(before) == 12
    learning_curve(*splits, TINY, **options)
    assert "Reusing" not in capsys.readouterr().out
    monkeypatch.setattr(curve_store, "_source", read)
    learning_curve(*splits, TINY, **options)  # the unchanged code finds its own points
    assert "Reusing 1 finished point(s)" in capsys.readouterr().out


def test_train_only_trains_the_chains_own_subsets_and_nothing_else(splits, monkeypatch):
    train, chain = splits[0], (0.1, 0.3, 1.0)
    trained = {}

    def recorded(train, val, test, index, init, seed, settings, profile, device):
        trained[len(trained)] = index
        row = {"init": init, "seed": seed, "images": len(index), "patients": 1, "epochs": 1}
        return row | {"passes": 1, "steps": 1, "test_auroc": 0.5, "seconds": 0.0}

    monkeypatch.setattr(data_efficiency, "train_point", recorded)
    results = learning_curve(
        *splits,
        TINY,
        fractions=chain,
        train_only=(0.1, 1.0),
        seeds=(0,),
        inits=("random",),
        store=False,
    )
    assert list(results.fraction) == [0.1, 1.0]
    wanted = nested_subsets(train, chain, seed=0)
    assert np.array_equal(trained[0], wanted[0.1]) and np.array_equal(trained[1], wanted[1.0])
    alone = nested_subsets(train, (0.1, 1.0), seed=0)[0.1]
    assert not np.array_equal(alone, wanted[0.1])  # why the chain matters: another draw
    with pytest.raises(ValueError, match=r"train_only \[0\.2\] not in fractions"):
        learning_curve(*splits, TINY, fractions=chain, train_only=(0.2,), store=False)
