import os

import pytest
import torch
from conftest import SHARED_TRAIN, needs_shared_data

from medtl_helpers.data.cache import TensorCache, build_image_set, cache_key
from medtl_helpers.data.folder import scan_split
from medtl_helpers.errors import DataError


def test_build_save_and_reload_are_identical(tmp_path, kermany_root):
    scan = scan_split(kermany_root, "train")
    cache = TensorCache(tmp_path / "cache")
    data = cache.load_or_build(scan.paths, scan.labels, 16, progress=False)
    assert data.images.shape == (13, 1, 16, 16) and data.images.dtype == torch.uint8
    assert data.class_counts() == {"NORMAL": 4, "PNEUMONIA": 9}
    assert data.patients[:3] == ["IM-0001", "IM-0001", "IM-0002"]
    files = list((tmp_path / "cache").glob("kermany-16px-*.pt"))
    assert len(files) == 1
    again = TensorCache.load(files[0])
    assert torch.equal(again.images, data.images) and again.patients == data.patients
    assert again.paths == data.paths


def test_key_depends_on_files_and_size(kermany_root):
    paths = scan_split(kermany_root, "train").paths
    assert cache_key(paths, 64) != cache_key(paths, 128)
    assert cache_key(paths, 64) != cache_key(paths[1:], 64)
    assert cache_key(paths, 64) == cache_key(list(paths), 64)


def test_corrupt_images_are_skipped_and_counted(kermany_root):
    scan = scan_split(kermany_root, "train")
    scan.paths[0].write_bytes(scan.paths[0].read_bytes()[:100])
    with pytest.warns(
        UserWarning, match=r"Skipped 1 corrupt or truncated image\(s\), e.g. .*IM-0001-0001"
    ):
        data = build_image_set(scan.paths, scan.labels, 16, progress=False)
    assert len(data) == 12 and str(scan.paths[0]) not in data.paths


def test_all_corrupt_raises(tmp_path):
    bad = tmp_path / "IM-0001-0001.jpeg"
    bad.write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="None of the 1 images"):
        build_image_set([bad], [0], 16, progress=False)


def test_damaged_cache_file_is_rebuilt_with_a_warning(tmp_path, kermany_root):
    scan = scan_split(kermany_root, "train")
    cache = TensorCache(tmp_path)
    cache.load_or_build(scan.paths, scan.labels, 16, progress=False)
    target = next(tmp_path.glob("*.pt"))
    target.write_bytes(target.read_bytes()[:200])
    with pytest.warns(UserWarning, match=r"unreadable.*Rebuilding"):
        data = cache.load_or_build(scan.paths, scan.labels, 16, progress=False)
    assert len(data) == 13


@needs_shared_data
def test_real_training_set_caches_every_image(tmp_path):
    scan = scan_split(SHARED_TRAIN, "train")
    data = TensorCache(tmp_path).load_or_build(scan.paths, scan.labels, 64, progress=False)
    assert data.class_counts() == {"NORMAL": 1341, "PNEUMONIA": 3875}
    assert data.n_patients() == 2846
    target = next(tmp_path.glob("*.pt"))
    assert os.path.getsize(target) < 5216 * 64 * 64 * 1.05
    assert torch.equal(TensorCache.load(target).labels, data.labels)


def test_a_reused_cache_still_names_the_images_it_skipped(tmp_path, kermany_root):
    scan = scan_split(kermany_root, "train")
    for path in scan.paths[:2]:
        path.write_bytes(path.read_bytes()[:100])  # two truncated JPEGs
    cache = TensorCache(tmp_path / "cache")
    with pytest.warns(UserWarning, match=r"Skipped 2 corrupt"):
        cache.load_or_build(scan.paths, scan.labels, 16, progress=False)
    with pytest.warns(UserWarning, match=r"built without 2 corrupt .*IM-0001-0001.*delete"):
        again = cache.load_or_build(scan.paths, scan.labels, 16, progress=False)
    assert len(again) == 11


def test_a_decompression_bomb_is_named_and_skipped(kermany_root, monkeypatch):
    from conftest import write_xray
    from PIL import Image

    from medtl_helpers.data.folder import load_grey

    scan = scan_split(kermany_root, "train")
    bomb = write_xray(kermany_root / "train" / "NORMAL" / "IM-0009-0001.jpeg", size=64)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1024)  # 64x64 is over twice this, 32x32 not
    with pytest.raises(DataError, match=r"Refused .*IM-0009-0001.jpeg.*decompression bomb.*shrink"):
        load_grey(bomb)
    with pytest.warns(
        UserWarning, match=r"Skipped 1 corrupt or truncated image\(s\), e.g. .*IM-0009"
    ):
        data = build_image_set([bomb, scan.paths[0]], [0, 0], 16, progress=False, workers=2)
    assert len(data) == 1


def test_a_cache_that_cannot_be_written_is_said_and_the_course_goes_on(tmp_path, kermany_root):
    from test_atomic import file_size_limit

    scan = scan_split(kermany_root, "train")
    cache = TensorCache(tmp_path / "cache")
    with file_size_limit(2_000), pytest.warns(UserWarning) as warned:
        data = cache.load_or_build(scan.paths, scan.labels, 16, progress=False)
    target = cache.file_for("kermany", cache_key(scan.paths, 16), 16)
    message = str(warned[-1].message)
    assert message.startswith(f"The tensor cache was not saved. Could not write {target}: ")
    assert "File too large. Nothing was written there." in message
    assert "raise the limit, or point MEDTL_CACHE at another folder" in message
    assert message.endswith("used from memory, and decoded again next time.")
    assert len(data) == 13 and data.images.shape == (13, 1, 16, 16)
    assert list((tmp_path / "cache").iterdir()) == []
    assert TensorCache.save(data, target) == target  # with the limit gone, the same call writes
    assert torch.equal(TensorCache.load(target).images, data.images)


def test_a_cache_reused_for_a_copied_folder_names_the_copy(tmp_path, kermany_root):
    import shutil

    first = scan_split(kermany_root, "train")
    first.paths[0].write_bytes(first.paths[0].read_bytes()[:100])  # one truncated JPEG
    cache = TensorCache(tmp_path / "cache")
    with pytest.warns(UserWarning, match=r"Skipped 1 corrupt"):
        cache.load_or_build(first.paths, first.labels, 16, progress=False)
    copy = shutil.copytree(kermany_root, tmp_path / "moved" / "chest_xray")
    shutil.rmtree(kermany_root)
    scan = scan_split(copy, "train")
    with pytest.warns(UserWarning, match=r"built without 1 corrupt") as warned:
        data = cache.load_or_build(scan.paths, scan.labels, 16, progress=False)
    message = str(warned[-1].message)
    assert f"e.g. {scan.paths[0]}. Replace them" in message
    assert str(kermany_root) not in message
    assert len(data) == 12 and data.paths == [str(path) for path in scan.paths[1:]]
    with pytest.warns(UserWarning, match=r"built without 1 corrupt"):  # no paths: what it stored
        stored = TensorCache.load(next((tmp_path / "cache").glob("*.pt"))).paths
    assert stored == [str(path) for path in first.paths[1:]]
