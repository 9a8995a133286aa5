"""`data verify` on a PneumoniaMNIST .npz: counts, and MedMNIST's MD5 for every size's file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medtl_helpers.course.cli import main
from medtl_helpers.data.download import md5sum
from medtl_helpers.data.medmnist import PNEUMONIAMNIST_MD5, size_from_name
from medtl_helpers.data.verify import verify_npz
from medtl_helpers.errors import ChecksumError

LABELS = {"train": [0, 1, 1, 1], "val": [0, 1], "test": [0, 0, 1]}


def fake_npz(path: Path, size: int = 8) -> Path:
    arrays = {}
    for split, labels in LABELS.items():
        arrays[f"{split}_images"] = np.zeros((len(labels), size, size), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.array(labels, dtype=np.uint8).reshape(-1, 1)
    np.savez(path, **arrays)
    return path


def test_size_from_name_knows_the_28_px_file():
    assert size_from_name(Path("data/pneumoniamnist.npz")) == 28
    assert size_from_name(Path("pneumoniamnist_64.npz")) == 64
    assert size_from_name(Path("other.npz")) is None


def test_verify_npz_counts_per_split_and_class(tmp_path, monkeypatch):
    path = fake_npz(tmp_path / "pneumoniamnist_64.npz")
    monkeypatch.setitem(PNEUMONIAMNIST_MD5, 64, md5sum(path))
    table, md5_check = verify_npz(path)
    assert list(table.columns) == ["images"] and table.index.names == ["split", "class"]
    assert table["images"].tolist() == [1, 3, 1, 1, 2, 1]
    assert table.loc[("train", "PNEUMONIA"), "images"] == 3
    assert md5_check == f"md5 {md5sum(path)}: OK, MedMNIST's for the 64 px file"


@pytest.mark.parametrize("name", ["pneumoniamnist.npz", "pneumoniamnist_64.npz"])
def test_verify_npz_raises_on_a_mismatch_for_every_medmnist_name(tmp_path, name):
    """The 28 px file is `pneumoniamnist.npz`, with no `_28`: it was not checked at all."""
    path = fake_npz(tmp_path / name)
    size = size_from_name(path)
    expected = f"has MD5 {md5sum(path)}, expected {PNEUMONIAMNIST_MD5[size]}. Delete it"
    with pytest.raises(ChecksumError, match=expected):
        verify_npz(path)


def test_verify_npz_checks_a_renamed_copy_by_its_image_size(tmp_path, monkeypatch):
    path = fake_npz(tmp_path / "copy.npz", size=28)
    with pytest.raises(ChecksumError, match=f"expected {PNEUMONIAMNIST_MD5[28]}"):
        verify_npz(path)
    monkeypatch.setitem(PNEUMONIAMNIST_MD5, 28, md5sum(path))
    assert verify_npz(path)[1] == f"md5 {md5sum(path)}: OK, MedMNIST's for the 28 px file"


def test_verify_npz_says_when_no_md5_is_published(tmp_path):
    path = fake_npz(tmp_path / "other.npz", size=8)
    assert (
        verify_npz(path)[1] == f"md5 {md5sum(path)}: not checked, MedMNIST publishes none for 8 px"
    )


def test_data_verify_exits_non_zero_on_an_md5_mismatch(tmp_path, capsys, monkeypatch):
    path = fake_npz(tmp_path / "pneumoniamnist.npz")
    assert main(["data", "verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"expected {PNEUMONIAMNIST_MD5[28]}" in err
    assert "data download --source pneumoniamnist --size 28" in err
    monkeypatch.setitem(PNEUMONIAMNIST_MD5, 28, md5sum(path))
    assert main(["data", "verify", str(path)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[2] == ["train", "NORMAL", "1"] and rows[3] == ["PNEUMONIA", "3"]
    assert rows[-1][:2] == ["md5", f"{md5sum(path)}:"] and rows[-1][2] == "OK,"
