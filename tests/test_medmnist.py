"""PneumoniaMNIST: file names, MD5 table and loading, on tiny fake .npz files (no network)."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from medtl_helpers.data import medmnist
from medtl_helpers.data.download import md5sum
from medtl_helpers.data.medmnist import (
    PNEUMONIAMNIST_MD5,
    load_pneumoniamnist,
    pneumoniamnist_path,
    pneumoniamnist_url,
)
from medtl_helpers.errors import ChecksumError, DataError, DownloadError

COUNTS = {"train": 6, "val": 3, "test": 4}


def fake_arrays(size: int = 8, channels: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in COUNTS.items():
        shape = (n, size, size) if channels is None else (n, size, size, channels)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    return arrays


@pytest.fixture
def fake_npz(tmp_path: Path) -> Path:
    path = tmp_path / "pneumoniamnist_64.npz"
    np.savez(path, **fake_arrays())
    return path


def test_md5_table_has_published_hex_digests():
    for size in (64, 128, 224):
        assert re.fullmatch(r"[0-9a-f]{32}", PNEUMONIAMNIST_MD5[size])
    assert len(set(PNEUMONIAMNIST_MD5.values())) == len(PNEUMONIAMNIST_MD5)


def test_urls_and_paths_follow_medmnist_names(tmp_path):
    assert pneumoniamnist_url(128) == (
        "https://zenodo.org/records/10519652/files/pneumoniamnist_128.npz?download=1"
    )
    assert pneumoniamnist_url(28).endswith("/pneumoniamnist.npz?download=1")
    assert pneumoniamnist_path(64, tmp_path) == tmp_path / "pneumoniamnist_64.npz"
    with pytest.raises(ValueError, match="no 100 px file"):
        pneumoniamnist_path(100, tmp_path)


def test_default_root_is_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTL_DATA", str(tmp_path))
    assert pneumoniamnist_path(224) == tmp_path.resolve() / "pneumoniamnist_224.npz"


def test_load_gives_grey_uint8_imagesets(fake_npz):
    sets = load_pneumoniamnist(fake_npz)
    # No patient ids in the file: intervals over its "patients" are over images.
    assert {s.unit for s in sets.values()} == {"images"}
    # a site simulated from PneumoniaMNIST has no patient ids either
    site = dataclasses.replace(sets["test"], source=f"{sets['test'].source} / noise")
    assert site.unit == "images"
    assert list(sets) == ["train", "val", "test"]
    raw = fake_arrays()
    for split, n in COUNTS.items():
        data = sets[split]
        assert data.images.shape == (n, 1, 8, 8) and data.images.dtype == torch.uint8
        assert data.labels.dtype == torch.int64 and data.labels.shape == (n,)
        assert data.labels.tolist() == [i % 2 for i in range(n)]
        assert torch.equal(data.images[:, 0], torch.from_numpy(raw[f"{split}_images"]))
        assert data.source == "pneumoniamnist"
    assert sets["val"].patients == ["mnist-val-00000", "mnist-val-00001", "mnist-val-00002"]
    assert sets["train"].n_patients() == COUNTS["train"]


def test_channel_last_images_become_grey(tmp_path):
    one = tmp_path / "one.npz"
    np.savez(one, **fake_arrays(channels=1))
    assert load_pneumoniamnist(one)["test"].images.shape == (4, 1, 8, 8)

    rgb = fake_arrays(channels=3)
    rgb["train_images"][0] = [255, 0, 0]  # pure red everywhere in image 0
    path = tmp_path / "rgb.npz"
    np.savez(path, **rgb)
    grey = load_pneumoniamnist(path)["train"].images
    assert grey.shape == (6, 1, 8, 8)
    assert (grey[0] == 76).all()  # round(0.299 * 255)


def test_missing_file_names_path_and_download_command(tmp_path):
    missing = tmp_path / "pneumoniamnist_128.npz"
    with pytest.raises(DataError) as info:
        load_pneumoniamnist(missing)
    message = str(info.value)
    assert str(missing) in message
    assert "python -m medtl_helpers data download --source pneumoniamnist --size 128" in message


def test_npz_missing_keys_lists_missing_and_found(tmp_path):
    arrays = fake_arrays()
    del arrays["val_labels"], arrays["test_images"]
    path = tmp_path / "pneumoniamnist_64.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="lacks val_labels, test_images") as info:
        load_pneumoniamnist(path)
    message = str(info.value)
    assert "found: test_labels, train_images, train_labels, val_images" in message
    assert str(path) in message and "download it again" in message


def test_file_that_is_not_npz_raises_data_error(tmp_path):
    path = tmp_path / "pneumoniamnist_64.npz"
    path.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(DataError, match=r"pneumoniamnist_64\.npz is not a valid \.npz"):
        load_pneumoniamnist(path)


def test_verify_checks_md5_against_table(fake_npz, monkeypatch):
    with pytest.raises(ChecksumError, match=PNEUMONIAMNIST_MD5[64]):
        load_pneumoniamnist(fake_npz, verify=True)
    monkeypatch.setitem(PNEUMONIAMNIST_MD5, 64, md5sum(fake_npz))
    assert len(load_pneumoniamnist(fake_npz, verify=True)["test"]) == COUNTS["test"]


def test_download_uses_table_md5_and_respects_offline(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(medmnist, "download_file", lambda *args, **kw: calls.append(args))
    medmnist.download_pneumoniamnist(224, tmp_path, progress=False)
    assert calls == [
        (pneumoniamnist_url(224), tmp_path / "pneumoniamnist_224.npz", PNEUMONIAMNIST_MD5[224])
    ]
    monkeypatch.undo()
    monkeypatch.setenv("MEDTL_OFFLINE", "1")
    with pytest.raises(DownloadError, match="MEDTL_OFFLINE=1") as info:
        medmnist.download_pneumoniamnist(64, tmp_path, progress=False)
    assert str(tmp_path / "pneumoniamnist_64.npz") in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_download_from_a_local_mirror_checks_the_md5_then_loads(fake_npz, tmp_path, monkeypatch):
    monkeypatch.setattr(medmnist, "pneumoniamnist_url", lambda size: fake_npz.as_uri())
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # pooch's wait between tries
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match=PNEUMONIAMNIST_MD5[64]):
        medmnist.download_pneumoniamnist(64, root, progress=False)
    assert list(root.iterdir()) == []

    monkeypatch.setitem(PNEUMONIAMNIST_MD5, 64, md5sum(fake_npz))
    path = medmnist.download_pneumoniamnist(64, root, progress=False)
    assert path == root / "pneumoniamnist_64.npz"
    assert path.read_bytes() == fake_npz.read_bytes()
    assert len(load_pneumoniamnist(path, verify=True)["train"]) == COUNTS["train"]
