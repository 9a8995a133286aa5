import json

import pytest
import torch

from medtl_helpers import config
from medtl_helpers.data.split import split_by_patient
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.models import build_model
from medtl_helpers.training import saved_runs
from medtl_helpers.training.saved_runs import fit_or_load, run_dir, runs_root
from medtl_helpers.training.stages import Stage

QUICK = config.get_profile("quick")


@pytest.fixture(scope="module")
def tiny():
    return split_by_patient(make_synthetic(160, size=32, seed=5), 0.25, seed=0)


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTL_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def build():
    torch.manual_seed(0)
    return build_model("resnet18", pretrained="none", verbose=False)


def go(tiny, **kwargs):
    options = dict(profile=QUICK, epochs=1, batch_size=32, progress=False, seed=0)
    options.update(kwargs)
    return fit_or_load("demo", build, *tiny, **options)


def test_run_dir_is_per_profile_under_medtl_runs(runs):
    assert runs_root() == runs
    assert run_dir("04_x", QUICK) == runs / "quick" / "04_x"


def test_second_call_loads_the_finished_run_instead_of_training(tiny, monkeypatch, capsys):
    model, history = go(tiny)
    folder = run_dir("demo", QUICK)
    assert {"best.pt", "last.pt", "finished.json", "settings.json"} <= {
        p.name for p in folder.iterdir()
    }

    def no_training(*args, **kwargs):
        raise AssertionError("fit must not run for a finished run")

    monkeypatch.setattr(saved_runs, "fit", no_training)
    again, loaded = go(tiny)
    assert "Loaded the finished run" in capsys.readouterr().out
    assert loaded.best_auroc == history.best_auroc and loaded.rows == history.rows
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key].cpu(), value.cpu()), key


def test_a_capped_smoke_run_is_not_reused_by_a_full_run(tiny, monkeypatch, capsys):
    monkeypatch.setenv("MEDTL_MAX_EPOCHS", "1")
    go(tiny, epochs=2)  # trains one epoch: the cap holds
    monkeypatch.delenv("MEDTL_MAX_EPOCHS")
    _, history = go(tiny, epochs=2)
    out = capsys.readouterr().out
    assert "Loaded the finished run" not in out
    assert "its settings differ (caps)" in out
    assert [row["epoch"] for row in history.rows] == [1, 2]


def test_other_settings_train_again_in_a_clean_folder(tiny, capsys):
    go(tiny)
    finished = run_dir("demo", QUICK) / "finished.json"
    first = json.loads(finished.read_text())["settings"]
    _, history = go(tiny, stages=[Stage("head", 1, "all", 1e-2), Stage("all", 1, "none", 1e-3)])
    second = json.loads(finished.read_text())["settings"]
    assert first != second
    assert [row["stage"] for row in history.rows] == ["head", "all"]
    expected = f"Replacing the run in {run_dir('demo', QUICK)}: its settings differ (fit)."
    assert expected in capsys.readouterr().out


def test_an_unreadable_settings_file_is_an_error_not_a_fresh_start(tiny):
    from medtl_helpers.errors import MedtlError

    go(tiny)
    settings = run_dir("demo", QUICK) / "settings.json"
    settings.write_text("{not json")
    (settings.parent / "finished.json").unlink()
    with pytest.raises(MedtlError, match=r"settings.json is unreadable.*Delete .*retrain=True"):
        go(tiny)
    assert (settings.parent / "best.pt").exists()  # nothing was deleted


def test_fingerprint_changes_with_the_images_chosen(tiny):
    train, val = tiny
    assert train.fingerprint() != val.fingerprint()
    assert train.fingerprint() == train.subset(list(range(len(train)))).fingerprint()
    assert len(train.fingerprint()) == 16


def test_a_reloaded_run_is_frozen_as_training_left_it(tiny, capsys):
    from medtl_helpers.models import count_parameters

    trained, _ = go(tiny, freeze="all")
    loaded, _ = go(tiny, freeze="all")
    assert "Loaded the finished run" in capsys.readouterr().out
    trainable = count_parameters(trained, trainable_only=True)
    assert trainable == count_parameters(loaded, trainable_only=True) == 1026  # the head alone


def test_a_member_with_its_head_drawn_from_the_seed_is_not_an_older_run(tiny):
    """build_member redraws the head from the seed: a run saved with the head build_model drew
    has the same arch, weights, head type and seed, and must not be reloaded as if it were one."""
    from medtl_helpers.evaluation.ensemble import build_member
    from medtl_helpers.training.saved_runs import run_settings

    config.seed_everything(0)
    old = build_model("resnet18", pretrained="none", verbose=False)
    new = build_member("resnet18", 0, pretrained="none", verbose=False)
    kwargs = {"epochs": 1}
    before, after = (run_settings(m, *tiny, 0, kwargs) for m in (old, new))
    assert not torch.equal(old.fc.weight, new.fc.weight), "the two draws differ"
    assert before != after
    assert after["head_draw"] == "seed"
    # a model build_member did not make keeps the keys every saved run had
    assert list(before) == ["arch", "weights", "head", "train", "val", "seed", "fit", "caps"]
