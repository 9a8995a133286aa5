"""`train` and `evaluate` on the command line: a user's mistake gets one or two lines naming the
flag or file and the fix, never a traceback; resuming and evaluating check what they are given."""

from __future__ import annotations

import shutil

import pytest

from medtl_helpers.course.cli import main
from medtl_helpers.data.synthetic import write_synthetic_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A Kermany-layout folder without test/: evaluate's test split is a patient holdout."""
    root = write_synthetic_folder(tmp_path_factory.mktemp("cli") / "xrays", 64, 0, size=32)
    shutil.rmtree(root / "test")
    return root


def train(folder, out, *extra):
    args = ["train", "--data", str(folder), "--epochs", "1", "--image-size", "32"]
    return main([*args, "--batch-size", "8", "--out", str(out), *extra])


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--arch", "resnet19", "argument --arch: invalid choice: 'resnet19'"),
        ("--image-size", "0", "argument --image-size: 0 must be at least 1"),
        ("--image-size", "5000", "5000 px is not a usable image size: use 32 to 1024"),
        ("--freeze", "layer9", "unknown layer group(s) layer9: use none | partial | all"),
        ("--amp", "fp32", "argument --amp: invalid choice: 'fp32'"),
    ],
)
def test_a_bad_flag_is_one_usage_line(folder, tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as stop:
        train(folder, tmp_path / "run", flag, value)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and "Traceback" not in err


def test_a_gpu_that_is_not_there_is_said_before_any_work(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert train(folder, tmp_path / "run", "--device", "cuda") == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: CUDA was requested but torch sees no GPU") and "--device cpu" in err
    )
    assert not (tmp_path / "run").exists()
    assert train(folder, tmp_path / "run", "--device", "gpu") == 2
    assert "Unknown device 'gpu': use cpu, cuda" in capsys.readouterr().err


def test_resuming_is_checked_and_a_finished_run_is_left_alone(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(folder, out) == 0
    best = (out / "best.pt").read_bytes()
    capsys.readouterr()
    assert train(folder, out, "--resume") == 0
    assert "holds a finished run (1 epoch(s)" in capsys.readouterr().out
    assert (out / "best.pt").read_bytes() == best
    assert train(folder, out, "--resume", "--batch-size", "4") == 2
    err = capsys.readouterr().err
    assert "batch_size=8, but this run has batch_size=4" in err and "--batch-size" in err


def test_evaluate_refuses_images_the_model_was_trained_on(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(folder, out) == 0
    other = tmp_path / "same-xrays-other-split"
    shutil.copytree(folder, other)
    for path in sorted((other / "train" / "NORMAL").iterdir())[:6]:
        path.unlink()  # the same patients, split again: the holdout now holds training patients
    evaluate = ["evaluate", "--checkpoint", str(out / "best.pt"), "--n-boot", "20"]
    assert main([*evaluate, "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert "patients of the test split" in err and "were in the training split" in err
    assert main([*evaluate, "--data", str(folder)]) == 0  # the held-out split it was trained with


def test_evaluate_on_other_data_warns_and_scores(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(folder, out) == 0
    elsewhere = write_synthetic_folder(tmp_path / "elsewhere", 48, 16, size=32, seed=9)
    evaluate = ["evaluate", "--checkpoint", str(out / "best.pt"), "--n-boot", "20"]
    assert main([*evaluate, "--data", str(elsewhere)]) == 0
    captured = capsys.readouterr()
    assert "warning: The training split rebuilt from" in captured.err
    assert "is not the one" in captured.err and "auroc" in captured.out


def test_rerunning_without_resume_refuses_and_keeps_the_finished_run(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(folder, out) == 0
    best = (out / "best.pt").read_bytes()
    capsys.readouterr()
    assert train(folder, out) == 2  # the same command, without --resume
    err = capsys.readouterr().err
    assert "already holds a training run" in err and "Nothing was written" in err
    assert "--resume" in err and "--overwrite" in err and "resume=True" not in err
    assert (out / "best.pt").read_bytes() == best
    assert train(folder, out, "--overwrite") == 0
    assert "is replaced when this run saves its first epoch" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        train(folder, out, "--overwrite", "--resume")
    assert "not allowed with argument" in capsys.readouterr().err


def test_ctrl_c_in_the_first_epoch_is_told_in_the_commands_words(
    folder, tmp_path, capsys, monkeypatch
):
    from medtl_helpers.training.steps import BatchTrainer

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(BatchTrainer, "train_epoch", interrupt)
    out = tmp_path / "run"
    assert train(folder, out) == 130
    printed = capsys.readouterr().out
    assert "nothing was saved" in printed and "Run the same command again" in printed
    assert "best model so far" not in printed and "fit(" not in printed
    monkeypatch.undo()
    assert train(folder, out, "--resume") == 0
    assert "Nothing to resume" in capsys.readouterr().out


def test_a_full_disk_in_epoch_two_keeps_epoch_one_and_resume_trains_on(
    folder, tmp_path, capsys, monkeypatch
):
    import errno
    import os
    from pathlib import Path

    import torch

    from medtl_helpers.training import read_checkpoint

    real_save, writes = torch.save, []

    def full_on_the_second_last_pt(obj, file, *args, **kwargs):
        if Path(getattr(file, "name", file)).name.startswith(".last.pt."):
            writes.append(file)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, file, *args, **kwargs)

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", full_on_the_second_last_pt)
        assert train(folder, out, "--epochs", "2") == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the small validation split's warning
    assert err.startswith(f"error: Could not write {out / 'last.pt'}: No space left on device.")
    assert "last.pt is unchanged: it still holds its previous version" in err
    assert f"Training stopped in epoch 2; {out / 'last.pt'} holds the run up to epoch 1" in err
    assert "carry on with the same command and --resume" in err
    assert "resume=True" not in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt"]
    assert len(read_checkpoint(out / "last.pt")["training"]["history"]["rows"]) == 1
    assert read_checkpoint(out / "best.pt")["meta"]["best_epoch"] == 1
    assert train(folder, out, "--epochs", "2", "--resume") == 0
    assert "1 epoch(s) done" in capsys.readouterr().out
    assert len(read_checkpoint(out / "last.pt")["training"]["history"]["rows"]) == 2
