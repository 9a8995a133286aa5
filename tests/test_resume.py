"""Resuming a run: early stops and finished runs are kept, changed settings are refused, and
best.pt never disagrees with last.pt."""

from __future__ import annotations

import hashlib

import pytest
import torch

from medtl_helpers import config
from medtl_helpers.data.split import split_by_patient
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.errors import MedtlError
from medtl_helpers.models import build_model
from medtl_helpers.training import fit, read_checkpoint, runs
from medtl_helpers.training.stages import Stage

QUICK = config.get_profile("quick")
FLAT = [Stage("flat", 5, "all", lr=0.0, schedule="constant")]  # no epoch improves on the first


@pytest.fixture(scope="module")
def tiny():
    return split_by_patient(make_synthetic(160, size=32, seed=3), 0.25, seed=0)


def run(tiny, arch="resnet18", head="linear", **kwargs):
    torch.manual_seed(0)
    model = build_model(arch, pretrained="none", head=head, verbose=False)
    options = dict(profile=QUICK, batch_size=32, progress=False, seed=0, epochs=1)
    options.update(kwargs)
    return fit(model, *tiny, **options)


def digest(path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def test_an_early_stop_is_saved_and_resuming_the_finished_run_changes_nothing(
    tiny, tmp_path, capsys
):
    history = run(tiny, stages=FLAT, patience=2, out_dir=tmp_path)
    assert len(history.rows) == 3
    assert read_checkpoint(tmp_path / "last.pt")["training"]["position"] == [0, 5]
    before = {name: digest(tmp_path / name) for name in ("best.pt", "last.pt")}
    capsys.readouterr()
    again = run(tiny, stages=FLAT, patience=2, out_dir=tmp_path, resume=True, progress=True)
    printed = capsys.readouterr().out
    assert "holds a finished run (3 epoch(s)" in printed and "nothing changed" in printed
    assert len(again.rows) == 3
    assert {name: digest(tmp_path / name) for name in before} == before


def test_resuming_a_run_that_ran_all_its_epochs_trains_nothing(tiny, tmp_path, capsys):
    run(tiny, epochs=1, out_dir=tmp_path)
    before = digest(tmp_path / "best.pt")
    history = run(tiny, epochs=1, out_dir=tmp_path, resume=True)
    assert len(history.rows) == 1 and digest(tmp_path / "best.pt") == before
    assert "holds a finished run (1 epoch(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(batch_size=16), "batch_size=32, but this run has batch_size=16.*same batch_size as"),
        (dict(seed=1), "seed=0, but this run has seed=1.*same seed as"),
        (dict(image_size=48), "image_size=32, but this run has image_size=48.*same image_size as"),
        (dict(head="mlp"), "head='linear', but this run has head='mlp'.*same head as"),
        (dict(arch="resnet34"), "arch='resnet18', but this run has arch='resnet34'.*same arch as"),
    ],
)
def test_resume_refuses_changed_settings_and_names_them(tiny, tmp_path, change, message):
    run(tiny, out_dir=tmp_path)
    with pytest.raises(MedtlError, match=message):
        run(tiny, out_dir=tmp_path, resume=True, **change)


def test_resume_refuses_other_training_data(tiny, tmp_path):
    run(tiny, out_dir=tmp_path)
    train, val = tiny
    fewer = train.subset(list(range(len(train) - 8)))
    with pytest.raises(MedtlError, match="data=.*same training set"):
        run((fewer, val), out_dir=tmp_path, resume=True)


def test_last_pt_is_written_before_best_pt(tiny, tmp_path, monkeypatch):
    written = []
    real = runs.save_checkpoint
    monkeypatch.setattr(
        runs, "save_checkpoint", lambda path, *a: written.append(path.name) or real(path, *a)
    )
    run(tiny, epochs=1, out_dir=tmp_path)
    assert written == ["last.pt", "best.pt"]  # epoch 1 is always the best so far


def test_a_crash_between_the_two_writes_is_repaired_on_resume(tiny, tmp_path, monkeypatch, capsys):
    real = runs.save_checkpoint

    def crash_on_best(path, *args):
        if path.name == "best.pt":
            raise KeyboardInterrupt  # the process dies after last.pt, before best.pt
        return real(path, *args)

    monkeypatch.setattr(runs, "save_checkpoint", crash_on_best)
    with pytest.raises(KeyboardInterrupt):
        run(tiny, epochs=2, out_dir=tmp_path)
    assert not (tmp_path / "best.pt").exists()
    monkeypatch.setattr(runs, "save_checkpoint", real)
    history = run(tiny, epochs=2, out_dir=tmp_path, resume=True)
    assert "best.pt was behind last.pt" in capsys.readouterr().out
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["meta"]["best_epoch"] == history.best_epoch
    assert best["meta"]["threshold"] == history.threshold


def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(tiny, tmp_path, capsys):
    run(tiny, epochs=1, out_dir=tmp_path)
    before = {name: digest(tmp_path / name) for name in ("best.pt", "last.pt")}
    with pytest.raises(MedtlError, match="already holds a training run") as refused:
        run(tiny, epochs=2, out_dir=tmp_path)  # the same call without resume=True
    message = str(refused.value)
    assert "resume=True" in message and "overwrite=True" in message and "--" not in message
    assert {name: digest(tmp_path / name) for name in before} == before  # nothing was written
    capsys.readouterr()
    history = run(tiny, epochs=2, out_dir=tmp_path, overwrite=True)
    assert "is replaced when this run saves its first epoch" in capsys.readouterr().out
    assert len(history.rows) == 2
    assert read_checkpoint(tmp_path / "last.pt")["training"]["position"] == [0, 2]


def test_ctrl_c_in_the_first_epoch_says_nothing_was_saved(tiny, tmp_path, capsys, monkeypatch):
    from medtl_helpers.training.steps import BatchTrainer

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(BatchTrainer, "train_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(tiny, epochs=1, out_dir=tmp_path / "run")
    printed = capsys.readouterr().out
    assert "nothing was saved" in printed and "Call fit again" in printed
    assert "best model so far" not in printed and "val AUROC -1" not in printed
    assert not (tmp_path / "run" / "best.pt").exists()
    monkeypatch.undo()
    history = run(tiny, epochs=1, out_dir=tmp_path / "run", resume=True)  # nothing to resume
    assert "Nothing to resume" in capsys.readouterr().out and len(history.rows) == 1


def test_ctrl_c_after_an_epoch_names_the_saved_model(tiny, tmp_path, capsys, monkeypatch):
    from medtl_helpers.training.steps import BatchTrainer

    real, calls = BatchTrainer.train_epoch, []

    def second_interrupts(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(BatchTrainer, "train_epoch", second_interrupts)
    with pytest.raises(KeyboardInterrupt):
        run(tiny, epochs=3, out_dir=tmp_path)
    printed = capsys.readouterr().out
    assert f"is in {tmp_path / 'best.pt'}" in printed and "resume=True" in printed
    assert (tmp_path / "best.pt").exists()


def test_overwrite_keeps_the_old_run_until_the_new_one_saves(tiny, tmp_path, capsys, monkeypatch):
    from medtl_helpers.training.steps import BatchTrainer

    run(tiny, epochs=1, out_dir=tmp_path)
    before = {name: digest(tmp_path / name) for name in ("best.pt", "last.pt")}

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(BatchTrainer, "train_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(tiny, epochs=1, out_dir=tmp_path, overwrite=True)  # Ctrl-C in its first epoch
    assert {name: digest(tmp_path / name) for name in before} == before  # nothing lost


def test_resuming_with_other_stages_names_what_changed(tiny, tmp_path):
    run(tiny, epochs=1, out_dir=tmp_path)
    with pytest.raises(MedtlError, match=r"changed: epochs 1 -> 3"):
        run(tiny, epochs=3, out_dir=tmp_path, resume=True)
