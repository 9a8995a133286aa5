import numpy as np
import pytest
from PIL import Image

from medtl_helpers.data.folder import (
    KermanyFolder,
    find_splits,
    load_grey,
    patient_id,
    scan_split,
    to_grey,
)
from medtl_helpers.errors import DataError


@pytest.mark.parametrize(
    "name, expected",
    [
        ("person1000_bacteria_2931.jpeg", "person1000"),
        ("person1_virus_6.jpeg", "person1"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
        ("odd_name.png", "odd_name"),
    ],
)
def test_patient_id(name, expected):
    assert patient_id(name) == expected


def test_scan_counts_and_skips_non_images(kermany_root):
    assert find_splits(kermany_root) == ["train", "test"]
    scan = scan_split(kermany_root, "train")
    assert len(scan.paths) == 13
    assert scan.labels.count(0) == 4 and scan.labels.count(1) == 9
    assert sorted(p.name for p in scan.skipped) == [".DS_Store", "notes.txt"]


def test_missing_folder_names_path_and_fix(tmp_path):
    with pytest.raises(DataError, match=r"nowhere does not exist.*MEDTL_DATA.*data download"):
        find_splits(tmp_path / "nowhere")


def test_nested_layout_suggests_inner_folder(tmp_path, kermany_root):
    outer = tmp_path / "outer"
    outer.mkdir()
    kermany_root.rename(outer / "chest_xray")
    with pytest.raises(DataError, match=r"one level down: use MEDTL_DATA=.*outer/chest_xray"):
        find_splits(outer)


def test_class_folders_at_top_level_are_explained(tmp_path, kermany_root):
    with pytest.raises(DataError, match=r"holds the class folders directly: move them into"):
        find_splits(kermany_root / "train")


def test_missing_and_empty_class_folders(kermany_root):
    for path in (kermany_root / "test" / "NORMAL").iterdir():
        path.unlink()
    (kermany_root / "test" / "NORMAL" / ".DS_Store").write_bytes(b"x")
    with pytest.raises(DataError, match=r"test/NORMAL holds no images \(1 other files skipped\)"):
        scan_split(kermany_root, "test")
    (kermany_root / "test" / "NORMAL" / ".DS_Store").unlink()
    (kermany_root / "test" / "NORMAL").rmdir()
    with pytest.raises(DataError, match=r"Missing class folder .*test/NORMAL"):
        scan_split(kermany_root, "test")


def test_truncated_and_fake_images_raise_naming_the_file(tmp_path, kermany_root):
    good = next((kermany_root / "train" / "NORMAL").glob("*.jpeg"))
    truncated = tmp_path / "truncated.jpeg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(DataError, match=r"truncated\.jpeg.*corrupt or truncated"):
        load_grey(truncated)
    fake = tmp_path / "fake.png"
    fake.write_text("<html>not an image</html>")
    with pytest.raises(DataError, match=r"Cannot decode .*fake\.png"):
        load_grey(fake)


def test_cmyk_rgba_palette_and_16bit_become_grey(tmp_path):
    rgb = Image.new("RGB", (8, 8), (200, 200, 200))
    for mode in ("CMYK", "RGBA", "P", "RGB", "LA"):
        grey = to_grey(rgb.convert(mode))
        assert grey.mode == "L" and grey.size == (8, 8)
        assert abs(int(np.asarray(grey).mean()) - 200) <= 2, mode
    deep = np.linspace(1000, 4000, 64, dtype=np.uint16).reshape(8, 8)
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path)
    grey = np.asarray(load_grey(path))
    assert grey.dtype == np.uint8 and grey.min() == 0 and grey.max() == 255
    cmyk = tmp_path / "cmyk.jpeg"
    rgb.convert("CMYK").save(cmyk)
    assert load_grey(cmyk).mode == "L"


def test_kermany_folder_dataset_returns_rgb_and_label(kermany_root):
    dataset = KermanyFolder(kermany_root, "train", transform=np.asarray)
    image, label = dataset[0]
    assert image.shape == (32, 32, 3) and label == 0
    assert len(dataset) == 13 and dataset.patients[0] == "IM-0001"


def test_the_parent_of_chest_xray_given_in_python_names_medtl_data(tmp_path, kermany_root):
    from medtl_helpers.data.sources import load_folder

    parent = tmp_path / "downloads"
    parent.mkdir()
    root = kermany_root.rename(parent / "chest_xray")
    with pytest.raises(DataError) as caught:
        load_folder(parent, 16)
    assert f"one level down: use MEDTL_DATA={root}." in str(caught.value)
    assert "--data" not in str(caught.value)
