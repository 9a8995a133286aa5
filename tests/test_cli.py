import subprocess
import sys
from unittest import mock

from conftest import SHARED_TRAIN, needs_shared_data

from medtl_helpers import config
from medtl_helpers.course.cli import main
from medtl_helpers.data.sources import load_folder


def test_verify_prints_counts_and_skipped_files(kermany_root, capsys):
    assert main(["data", "verify", str(kermany_root)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["images", "patients"] and rows[1] == ["split", "class"]
    assert rows[2:6] == [
        ["train", "NORMAL", "4", "3"],
        ["PNEUMONIA", "9", "5"],
        ["test", "NORMAL", "4", "3"],
        ["PNEUMONIA", "9", "5"],
    ]
    assert "skipped non-image files: 3 (.DS_Store, notes.txt)" in out
    assert "corrupt images: 0" in out and "patients in more than one split: 0" in out


def test_verify_report_table_counts_images_and_patients(kermany_root):
    from medtl_helpers.data.verify import verify_folder

    report = verify_folder(kermany_root, decode=False)
    table = report.table()
    assert list(table.columns) == ["images", "patients"]
    assert table.index.names == ["split", "class"]
    assert table.loc[("train", "PNEUMONIA")].tolist() == [9, 5]
    assert table.loc[("test", "NORMAL")].tolist() == [4, 3]
    assert table["images"].sum() == 26
    assert report.notes().splitlines()[0] == "skipped non-image files: 3 (.DS_Store, notes.txt)"


def test_verify_reports_corrupt_images_and_fails(kermany_root, capsys):
    victim = next((kermany_root / "test" / "PNEUMONIA").glob("*.jpeg"))
    victim.write_bytes(b"\xff\xd8\xff broken")
    assert main(["data", "verify", str(kermany_root)]) == 1
    assert f"corrupt: {victim}" in capsys.readouterr().out


def test_bad_folder_gives_a_one_line_error_not_a_traceback(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "medtl_helpers", "data", "verify", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("error: Data folder") and "Traceback" not in run.stderr


def test_cache_command_builds_the_caches_training_reads(kermany_root, tmp_path, capsys):
    assert main(["data", "cache", str(kermany_root), "--size", "16", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train+val: 13 images at 16px" in out and "test: 13 images at 16px" in out
    built = sorted(p.name.split("-16px")[0] for p in tmp_path.glob("kermany-*-16px-*.pt"))
    assert built == ["kermany-test", "kermany-trainval"]
    # load_course_data then finds them instead of decoding again
    with mock.patch.object(config, "cache_dir", return_value=tmp_path):
        with mock.patch("medtl_helpers.data.cache.decode_resized") as decode:
            load_folder(kermany_root, 16)
    decode.assert_not_called()


def test_download_offline_names_the_file_to_place(capsys, isolated_data_dir):
    assert main(["data", "download", "--size", "64"]) == 2
    err = capsys.readouterr().err
    assert "MEDTL_OFFLINE" in err and "pneumoniamnist_64.npz" in err


@needs_shared_data
def test_verify_real_training_set(capsys):
    assert main(["data", "verify", str(SHARED_TRAIN), "--no-decode"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    assert rows[2:4] == [["train", "NORMAL", "1341", "1211"], ["PNEUMONIA", "3875", "1635"]]
    assert "skipped non-image files: 2 (.DS_Store)" in out


def test_verify_documents_its_exit_status(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["data", "verify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 when every image decodes, 1 when corrupt images were found" in text


def test_a_tiny_validation_split_is_said_once_with_the_count_and_the_fix(
    kermany_root, tmp_path, capsys
):
    import warnings

    args = ["train", "--data", str(kermany_root), "--epochs", "1", "--image-size", "32"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*args, "--batch-size", "4", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: The validation split holds only") == 1
    assert "NORMAL images from" in err and "--val-fraction 0.3" in err
    assert not caught  # printed as one plain line by the command line, not as a Python warning


def test_the_command_line_names_its_own_flag_and_following_it_works(kermany_root, tmp_path, capsys):
    parent = tmp_path / "downloads"
    parent.mkdir()
    root = kermany_root.rename(parent / "chest_xray")
    args = [
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(["train", "--data", str(parent), *args]) == 2
    err = capsys.readouterr().err
    assert f"one level down: use --data {root}." in err and "MEDTL_DATA" not in err
    assert main(["data", "verify", str(parent)]) == 2
    err = capsys.readouterr().err
    assert f"one level down: use `data verify {root}`." in err and "MEDTL_DATA" not in err
    assert main(["train", "--data", str(tmp_path / "nowhere"), *args]) == 2
    err = capsys.readouterr().err
    assert "nowhere does not exist. Check the path" in err and "MEDTL_DATA" not in err
    assert main(["train", "--data", str(root), *args]) == 0  # the advice, followed, works


def _preview_rows(out: str) -> dict[str, dict[str, str]]:
    """The preview's `split=… images=… patients=…` lines, by split."""
    rows = [
        dict(kv.split("=", 1) for kv in line.split())
        for line in out.splitlines()
        if line.startswith("  split=")
    ]
    return {row["split"]: row for row in rows}


def test_verify_previews_the_courses_own_split_with_val_merged(kaggle_root, capsys):
    assert main(["data", "verify", str(kaggle_root), "--no-decode"]) == 0
    out = capsys.readouterr().out
    rows = _preview_rows(out)
    data = load_folder(kaggle_root, 16)  # what the notebooks and `train --data` use
    for split in ("train", "val", "test"):
        part = getattr(data, split)
        assert rows[split]["images"] == str(len(part)), split
        assert rows[split]["patients"] == str(part.n_patients()), split
    assert len(data.train) + len(data.val) == 40  # train/ (36) with val/ (4) merged in
    assert "skipped non-image files: 0\n" in out and "()" not in out
    assert "patients in more than one split: 1\n  train/ and test/ share 1: the official" in out
    assert "note: test/ reuses 1 patient ids of train/ (e.g. person1)" in out
    assert "note: val/ (16 images in Kaggle's copy) is merged into train/" in out


def test_the_preview_is_load_folders_split_patient_for_patient(kaggle_root):
    from medtl_helpers.data.sources import preview_folder

    preview, loaded = preview_folder(kaggle_root, 3, 0.3), load_folder(kaggle_root, 16, 3, 0.3)
    for split in ("train", "val", "test"):
        assert getattr(preview, split).patients == getattr(loaded, split).patients, split
    assert preview.notes == loaded.notes


@needs_shared_data
def test_verify_previews_the_split_load_folder_makes_of_the_real_training_set(capsys):
    assert main(["data", "verify", str(SHARED_TRAIN), "--no-decode"]) == 0
    rows = _preview_rows(capsys.readouterr().out)
    data = load_folder(SHARED_TRAIN, 16)  # 16 px: decoding 5,216 thumbnails takes seconds
    for split in ("train", "val", "test"):
        assert rows[split]["images"] == str(len(getattr(data, split))), split


def test_the_medtl_script_shows_its_own_name_and_the_version(monkeypatch, capsys):
    import importlib
    import re
    from pathlib import Path

    import pytest

    import medtl_helpers

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    module, function = re.search(r'^medtl = "([\w.]+):(\w+)"$', pyproject, re.MULTILINE).groups()
    script = getattr(importlib.import_module(module), function)
    # what pip's `medtl` script does: sys.argv as typed, then the entry point without arguments
    monkeypatch.setattr(sys, "argv", ["/venv/bin/medtl", "--help"])
    with pytest.raises(SystemExit) as done:
        script()
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("usage: medtl [-h] [--version]")
    monkeypatch.setattr(sys, "argv", ["/venv/bin/medtl", "--version"])
    with pytest.raises(SystemExit) as done:
        script()
    assert done.value.code == 0
    assert capsys.readouterr().out == f"medtl_helpers {medtl_helpers.__version__}\n"


def test_python_m_shows_python_m_in_usage_and_errors():
    run = subprocess.run(
        [sys.executable, "-m", "medtl_helpers", "data", "nonsense"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stderr.startswith("usage: python -m medtl_helpers data [-h]")
    assert "\npython -m medtl_helpers data: error: argument" in run.stderr


def test_a_notebook_command_without_nbformat_names_the_extra_to_install(
    monkeypatch, kermany_root, tmp_path, capsys
):
    monkeypatch.setitem(sys.modules, "nbformat", None)  # not installed, as after a plain install
    assert main(["student", str(tmp_path), "-o", str(tmp_path / "student")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: `medtl student` needs the notebook tools nbformat, nbclient")
    assert "missing here: nbformat. Install the package's `course` extra" in err
    assert "pip install -e '.[course]'" in err and err.endswith("or pip install nbformat\n")
    assert not (tmp_path / "student").exists()
    assert main(["data", "verify", str(kermany_root), "--no-decode"]) == 0  # needs none of them


def test_verify_without_decoding_does_not_claim_zero_corrupt_images(kermany_root, capsys):
    assert main(["data", "verify", str(kermany_root), "--no-decode"]) == 0
    out = capsys.readouterr().out
    assert "corrupt images: not checked" in out and "corrupt images: 0" not in out


def test_data_cache_that_cannot_write_its_file_fails(kermany_root, tmp_path, capsys):
    """It printed its summary and exited 0 although no cache file was written."""
    from test_atomic import file_size_limit

    out = tmp_path / "cache"
    with file_size_limit(2_000):
        code = main(["data", "cache", str(kermany_root), "--size", "16", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "The tensor cache was not saved" in err
    assert f"error: the cache was not written to {out}" in err
    assert not out.exists() or list(out.iterdir()) == []
