import numpy as np
import pytest
from conftest import write_xray

from medtl_helpers import config
from medtl_helpers.data.sources import find_kermany_root, load_course_data
from medtl_helpers.errors import DataError


def test_offline_without_data_falls_back_to_synthetic_loudly(capsys):
    data = load_course_data(config.get_profile("quick"))
    banner = capsys.readouterr().out
    assert data.source == "synthetic"
    assert "SYNTHETIC X-RAYS" in banner and "Data source: synthetic" in banner
    assert "MEDTL_OFFLINE=1 forbids downloading" in banner
    assert "data download --source pneumoniamnist" in banner
    assert data.train.image_size == 64 and abs(len(data.train) - 800) <= 3
    assert not set(data.train.patients) & set(data.val.patients)
    assert not set(data.val.patients) & set(data.test.patients)


def test_kermany_folder_is_found_and_test_split_kept(monkeypatch, kermany_root):
    monkeypatch.setenv("MEDTL_DATA", str(kermany_root))
    assert find_kermany_root() == kermany_root.resolve()
    data = load_course_data(config.get_profile("quick"), verbose=False)
    assert data.source == "kermany-folder"
    assert len(data.test) == 13 and data.test.image_size == 64
    assert len(data.train) + len(data.val) == 13
    assert "Data source: kermany-folder" in data.banner()
    assert data.test_given and not any("reuses" in note for note in data.notes)


def test_a_given_test_folder_that_reuses_train_ids_is_reported_not_refused(
    monkeypatch, kermany_root
):
    # As in the official release: test/PNEUMONIA/person1_virus_6.jpeg beside
    # train/PNEUMONIA/person1_bacteria_1.jpeg.
    write_xray(kermany_root / "test" / "PNEUMONIA" / "person1_virus_6.jpeg", value=90)
    write_xray(kermany_root / "test" / "PNEUMONIA" / "person3_virus_7.jpeg", value=95)
    monkeypatch.setenv("MEDTL_DATA", str(kermany_root))
    data = load_course_data(config.get_profile("quick"), verbose=False)
    assert data.test_given and len(data.test) == 15
    note = next(note for note in data.notes if "reuses" in note)
    assert note.startswith("test/ reuses 2 patient ids of train/ (e.g. person1, person3).")
    assert "test metrics are optimistic" in note and f"note: {note}" in data.banner()
    assert not set(data.train.patients) & set(data.val.patients)


def test_train_only_folder_gets_a_patient_level_holdout(monkeypatch, kermany_root):
    for path in (kermany_root / "test").rglob("*.jpeg"):
        path.unlink()
    for folder in sorted((kermany_root / "test").rglob("*"), reverse=True):
        folder.rmdir()
    (kermany_root / "test").rmdir()
    monkeypatch.setenv("MEDTL_DATA", str(kermany_root))
    data = load_course_data(config.get_profile("quick"), verbose=False)
    assert any("holdout of train/ is the test" in note for note in data.notes)
    assert not data.test_given
    assert not set(data.train.patients) & set(data.test.patients)
    assert len(data.train) + len(data.val) + len(data.test) == 13


def test_nonexistent_medtl_data_is_an_error_not_a_fallback(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDTL_DATA", str(tmp_path / "typo"))
    with pytest.raises(DataError, match=r"points to .*typo, which does not exist"):
        load_course_data(config.get_profile("quick"))


def test_forced_folder_source_without_folder_explains_layout(monkeypatch):
    with pytest.raises(DataError, match=r"has no train/ folder. Expected the Kermany layout"):
        load_course_data(config.get_profile("quick"), source="folder")


def test_cached_pneumoniamnist_is_used_before_synthetic(isolated_data_dir):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 40), ("val", 10), ("test", 12)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 64, 64), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1)
    np.savez(isolated_data_dir / "pneumoniamnist_64.npz", **arrays)
    data = load_course_data(config.get_profile("quick"), verbose=False)
    assert data.source == "pneumoniamnist"
    assert (len(data.train), len(data.val), len(data.test)) == (40, 10, 12)
    assert "no patient ids" in data.banner() and "not patient-level" in data.banner()


def test_unknown_source_is_rejected():
    with pytest.raises(ValueError, match="Unknown data source 'kaggle'"):
        load_course_data(config.get_profile("quick"), source="kaggle")


def _snapshot(folder):
    """Every path under `folder` (and the folder itself) with its modification time."""
    return {p: p.stat().st_mtime_ns for p in [folder, *folder.rglob("*")]}


def test_the_folder_holding_chest_xray_is_read_one_level_down_and_never_written(
    monkeypatch, tmp_path, kermany_root, capsys
):
    # The common slip: MEDTL_DATA=~/Downloads while the data is ~/Downloads/chest_xray.
    parent = tmp_path / "parent"
    parent.mkdir()
    root = kermany_root.rename(parent / "chest_xray")
    (parent / "holiday.jpg").write_bytes(b"not ours")
    monkeypatch.setenv("MEDTL_DATA", str(parent))
    monkeypatch.setenv("MEDTL_CACHE", str(tmp_path / "caches"))
    before = _snapshot(parent)
    data = load_course_data(config.get_profile("quick"))
    banner = capsys.readouterr().out
    assert data.source == "kermany-folder" and data.origin == str(root.resolve())
    assert len(data.train) + len(data.val) == 13 and len(data.test) == 13
    assert (
        f"note: MEDTL_DATA={parent.resolve()} holds no train/; using the Kermany folder one "
        f"level down, {root.resolve()}"
    ) in banner
    assert _snapshot(parent) == before  # no cache, download or anything else written there
    assert len(list((tmp_path / "caches").glob("kermany-*.pt"))) == 2


def test_without_medtl_cache_the_cache_goes_to_the_projects_data_folder(
    monkeypatch, tmp_path, kermany_root
):
    project = tmp_path / "project"  # a stand-in for the course's folder, so data/ is not ours
    (project / "medtl_helpers").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    monkeypatch.chdir(project)
    monkeypatch.delenv("MEDTL_CACHE", raising=False)
    parent = tmp_path / "parent"
    parent.mkdir()
    kermany_root.rename(parent / "chest_xray")
    monkeypatch.setenv("MEDTL_DATA", str(parent))
    before = _snapshot(parent)
    data = load_course_data(config.get_profile("quick"), verbose=False)
    assert data.source == "kermany-folder"
    assert _snapshot(parent) == before
    assert len(list((project / "data" / "cache").glob("kermany-*.pt"))) == 2
    assert f"caches go to {project.resolve() / 'data' / 'cache'}" in data.banner()


def test_several_kermany_folders_one_level_down_are_named_with_the_fix(
    monkeypatch, tmp_path, kermany_root
):
    for name in ("xray_a", "xray_b"):
        (tmp_path / name / "train").mkdir(parents=True)
    monkeypatch.setenv("MEDTL_DATA", str(tmp_path))
    assert find_kermany_root() == (tmp_path / "chest_xray").resolve()  # chest_xray/ is preferred
    kermany_root.rename(tmp_path / ".chest_xray_backup")  # hidden folders are not candidates
    with pytest.raises(DataError) as caught:
        find_kermany_root()
    message = str(caught.value)
    assert "2 folders in it hold one (xray_a, xray_b)" in message
    assert f"MEDTL_DATA={tmp_path.resolve() / 'xray_a'} or MEDTL_DATA=" in message
    (tmp_path / "xray_b" / "train").rmdir()
    assert find_kermany_root() == (tmp_path / "xray_a").resolve()  # the only one is fine


@pytest.mark.parametrize(("profile", "size"), [("quick", 64), ("gpu", 224)])
def test_the_synthetic_banner_names_the_pneumoniamnist_file_this_profile_reads(
    monkeypatch, profile, size
):
    """It always said --size 128, a file only the cpu profile reads."""
    from medtl_helpers.data.sources import _from_synthetic

    data = _from_synthetic(40, config.get_profile(profile).image_size, 0, "no data")
    assert f"--source pneumoniamnist --size {size}`" in data.banner()


def _images(folder):
    return sorted(p for p in folder.rglob("*.jpeg"))


def test_kaggles_input_folder_is_found_counted_once_and_never_written(
    monkeypatch, tmp_path, kaggle_input, capsys
):
    # On Kaggle: MEDTL_DATA unset, the data set added as input, the working folder for the rest.
    project = tmp_path / "working"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.delenv("MEDTL_DATA")
    monkeypatch.delenv("MEDTL_CACHE")
    outer = kaggle_input / "chest-xray-pneumonia" / "chest_xray"
    # 46 images, and three copies (chest_xray/chest_xray, two __MACOSX) of one image more each
    assert len(_images(outer / "train")) == 36 and len(_images(kaggle_input)) == 46 + 3 * 47
    before = _snapshot(kaggle_input)
    data = load_course_data(config.get_profile("quick"))
    banner = capsys.readouterr().out
    assert data.source == "kermany-folder" and data.origin == str(outer.resolve())
    pooled = _images(outer / "train") + _images(outer / "val")  # val/ is merged into train/
    assert len(data.train) + len(data.val) == len(pooled) == 40
    assert len(data.test) == len(_images(outer / "test")) == 6
    assert f"note: Kaggle input folder {outer.resolve()} (only read: caches go to " in banner
    assert _snapshot(kaggle_input) == before  # Kaggle mounts it read-only
    assert len(list((project / "data" / "cache").glob("kermany-*.pt"))) == 2


def test_medtl_data_comes_before_kaggle_and_a_folder_without_data_does_not(
    monkeypatch, tmp_path, kaggle_input, kermany_root
):
    outer = (kaggle_input / "chest-xray-pneumonia" / "chest_xray").resolve()
    # The test's MEDTL_DATA (conftest) holds no Kermany data: Kaggle's copy is used, and the
    # banner does not call it "one level down" in MEDTL_DATA.
    assert find_kermany_root() == outer
    data = load_course_data(config.get_profile("quick"), verbose=False)
    assert not any("one level down" in note for note in data.notes)
    monkeypatch.setenv("MEDTL_DATA", str(kermany_root))
    assert find_kermany_root() == kermany_root.resolve()
    monkeypatch.setenv("MEDTL_DATA", str(outer.parent))  # the data set's folder: one level down
    assert find_kermany_root() == outer


def test_verify_reads_only_the_outer_copy_of_kaggles_folder(kaggle_input):
    from medtl_helpers.data.folder import find_splits
    from medtl_helpers.data.verify import verify_folder

    dataset = kaggle_input / "chest-xray-pneumonia"
    outer = dataset / "chest_xray"
    report = verify_folder(outer, decode=False)
    assert sum(int(row["images"]) for row in report.rows) == 46
    assert report.count("train", "NORMAL") == len(_images(outer / "train" / "NORMAL")) == 12
    assert report.skipped == []  # the copy and __MACOSX are folders beside the splits: not read
    with pytest.raises(DataError, match="one level down") as caught:
        find_splits(dataset)
    assert f"MEDTL_DATA={outer}." in str(caught.value)


def test_on_kaggle_without_the_data_set_the_banner_says_how_to_add_it(
    monkeypatch, no_kaggle_input, capsys
):
    no_kaggle_input.mkdir()  # Kaggle's input folder, with nothing added
    load_course_data(config.get_profile("quick"))
    banner = capsys.readouterr().out
    assert (
        "on Kaggle, add the data set paultimothymooney/chest-xray-pneumonia (Add Input)" in banner
    )
