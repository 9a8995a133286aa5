from pathlib import Path

import pytest
import torch

from medtl_helpers import config


def test_profile_from_env_and_argument(monkeypatch):
    monkeypatch.setenv("MEDTL_PROFILE", "cpu")
    assert config.get_profile().image_size == 128
    assert config.get_profile("quick").image_size == 64
    assert config.get_profile("gpu").image_size == 224
    assert config.get_profile("quick", epochs=5).epochs == 5


def test_profile_detected_when_unset(monkeypatch):
    monkeypatch.delenv("MEDTL_PROFILE")
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert config.get_profile().name == expected


def test_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv("MEDTL_PROFILE", "fast")
    with pytest.raises(ValueError, match="'fast'.*quick, cpu, gpu"):
        config.get_profile()


def test_device_cpu_and_missing_cuda():
    assert config.get_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="Change runtime type") as missing:
            config.get_device("cuda")
        assert "device='cpu'" in str(missing.value) and "--device" not in str(missing.value)


def test_seed_everything_repeats():
    config.seed_everything(3)
    a = torch.rand(4)
    gen = config.seed_everything(3)
    assert torch.equal(a, torch.rand(4))
    assert torch.equal(
        torch.rand(2, generator=gen), torch.rand(2, generator=config.seed_everything(3))
    )


def test_data_dir_never_inside_a_kermany_folder(monkeypatch, tmp_path, kermany_root):
    """A folder holding a dataset, itself or one level down, is only read; any other is ours."""
    from medtl_helpers.data.medmnist import pneumoniamnist_path

    monkeypatch.delenv("MEDTL_CACHE", raising=False)
    course_data = config.project_root() / "data"
    downloads = tmp_path / "downloads"  # a folder kept for the course's downloads: written to
    downloads.mkdir()
    monkeypatch.setenv("MEDTL_DATA", str(downloads))
    assert config.data_dir() == downloads.resolve()
    assert config.cache_dir() == downloads.resolve() / "cache"
    # the dataset itself, and the folder holding it (tmp_path holds chest_xray/): never written
    for holder in (kermany_root, tmp_path):
        monkeypatch.setenv("MEDTL_DATA", str(holder))
        assert config.data_setting() == holder.resolve()
        assert config.data_dir() == course_data
        assert config.cache_dir() == course_data / "cache"
        assert pneumoniamnist_path(64).parent == course_data
    monkeypatch.setenv("MEDTL_CACHE", str(tmp_path / "caches"))
    assert config.cache_dir() == (tmp_path / "caches").resolve()


def test_relative_data_setting_resolves_against_project_root(monkeypatch, tmp_path):
    """Notebooks run in notebooks/, but MEDTL_DATA=local/x is meant from the repository root."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "medtl_helpers").mkdir()
    (tmp_path / "local" / "x").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.setenv("MEDTL_DATA", "local/x")
    assert config.project_root() == tmp_path.resolve()
    assert config.data_setting() == (tmp_path / "local" / "x").resolve()
    monkeypatch.delenv("MEDTL_DATA")
    assert config.data_setting() is None
    assert config.data_dir() == Path(tmp_path / "data").resolve()


def test_pretrained_choice(monkeypatch):
    cpu = config.get_profile("cpu")
    monkeypatch.delenv("MEDTL_PRETRAINED", raising=False)
    assert config.pretrained_choice(cpu) == "imagenet"
    assert config.pretrained_choice(config.get_profile("quick")) == "none"
    monkeypatch.setenv("MEDTL_PRETRAINED", "none")
    assert config.pretrained_choice(cpu) == "none"
    monkeypatch.setenv("MEDTL_PRETRAINED", "yes")
    with pytest.raises(ValueError, match="'yes'"):
        config.pretrained_choice(cpu)


def test_an_explicit_imagenet_choice_is_honoured_in_the_quick_profile(monkeypatch):
    monkeypatch.setenv("MEDTL_PRETRAINED", "imagenet")
    assert config.pretrained_choice(config.get_profile("quick")) == "imagenet"


def test_offline_flag(monkeypatch):
    monkeypatch.setenv("MEDTL_OFFLINE", "1")
    assert config.offline()
    monkeypatch.setenv("MEDTL_OFFLINE", "0")
    assert not config.offline()


def test_without_caps_every_profile_takes_its_own_loop_sizes(monkeypatch):
    monkeypatch.delenv("MEDTL_MAX_IMAGES", raising=False)
    monkeypatch.delenv("MEDTL_MAX_EPOCHS", raising=False)
    assert [config.get_profile(name).scale for name in config.PROFILE_NAMES] == [
        "quick",
        "cpu",
        "gpu",
    ]
    monkeypatch.setenv("MEDTL_MAX_EPOCHS", "2")  # either cap makes a smoke run
    assert config.get_profile("cpu").scale == "quick"


def test_caps_hold_in_every_profile_and_are_announced(monkeypatch):
    monkeypatch.setenv("MEDTL_MAX_IMAGES", "64")
    monkeypatch.setenv("MEDTL_MAX_EPOCHS", "1")
    gpu = config.get_profile("gpu")
    assert (gpu.max_train_images, gpu.max_eval_images, gpu.epochs) == (64, 64, 1)
    assert gpu.image_size == 224 and gpu.batch_size == 64  # only the sizes that were capped
    assert (gpu.name, gpu.scale) == ("gpu", "quick")  # the notebooks' loops take quick sizes
    assert config.get_profile("quick").max_train_images == 64
    assert config.caps_note().startswith("MEDTL_MAX_IMAGES=64, MEDTL_MAX_EPOCHS=1: a capped")
    monkeypatch.setenv("MEDTL_PROFILE", "gpu")
    assert "MEDTL_MAX_IMAGES=64" in config.environment_report()
    monkeypatch.setenv("MEDTL_MAX_IMAGES", "lots")
    with pytest.raises(ValueError, match="MEDTL_MAX_IMAGES='lots': use a whole number"):
        config.get_profile("cpu")


def test_the_data_banner_says_the_data_is_capped(monkeypatch):
    from medtl_helpers.data.sources import load_course_data

    monkeypatch.setenv("MEDTL_MAX_IMAGES", "40")
    data = load_course_data(config.get_profile("gpu", image_size=32), verbose=False)
    # whole patients are kept, so a split may pass the cap by one child's few images
    assert max(len(data.train), len(data.val), len(data.test)) <= 44 and len(data.train) >= 30
    assert "MEDTL_MAX_IMAGES=40: a capped smoke run" in data.banner()


def test_kaggles_input_folder_is_never_where_the_course_writes(monkeypatch, kaggle_input):
    """/kaggle/input holds its data sets two levels down, and Kaggle mounts it read-only."""
    from medtl_helpers.config import profiles

    monkeypatch.delenv("MEDTL_CACHE", raising=False)
    course_data = config.project_root() / "data"
    for folder in (kaggle_input, kaggle_input / "chest-xray-pneumonia"):
        monkeypatch.setenv("MEDTL_DATA", str(folder))
        assert config.data_dir() == course_data and config.cache_dir() == course_data / "cache"
    assert profiles.kaggle_data() == kaggle_input.resolve() / "chest-xray-pneumonia" / "chest_xray"
    monkeypatch.delenv("MEDTL_KAGGLE_INPUT")
    assert profiles.kaggle_input() == Path("/kaggle/input")


def test_kaggles_newer_mount_of_the_data_set_is_found_too(monkeypatch, tmp_path):
    """Kaggle also mounts an added data set at <input>/datasets/<owner>/<slug>."""
    outer = tmp_path / "datasets" / "paultimothymooney" / "chest-xray-pneumonia" / "chest_xray"
    (outer / "train").mkdir(parents=True)
    (outer / "chest_xray" / "train").mkdir(parents=True)  # the archive's second copy
    monkeypatch.setenv("MEDTL_KAGGLE_INPUT", str(tmp_path))
    assert config.profiles.kaggle_data() == outer
