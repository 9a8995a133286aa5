"""Shared fixtures: the quick profile, no network, and tiny Kermany-layout folders on disk."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("MEDTL_PROFILE", "quick")
os.environ.setdefault("MEDTL_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

SHARED_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray_224"
needs_shared_data = pytest.mark.skipif(
    not (SHARED_TRAIN / "train").is_dir(), reason=f"real data not found at {SHARED_TRAIN}"
)


NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def solutions(stem: str) -> dict[str, str]:
    """Cell id -> source of the instructor's solution cells of notebooks/`stem`.ipynb (the ids
    of the answer cells of its student copy)."""
    import nbformat

    notebook = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    return {c.id: c.source for c in notebook.cells if "solution" in c.metadata.get("tags", [])}


def filled(copy_path: Path, answers: dict[str, str], path: Path, **edits: str) -> Path:
    """The student copy with some answer cells (and, through `edits`, other cells) rewritten."""
    import nbformat

    notebook = nbformat.read(copy_path, as_version=4)
    for cell in notebook.cells:
        cell.source = {**answers, **edits}.get(cell.id, cell.source)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def load_benchmark(name: str) -> ModuleType:
    """Import benchmarks/<name>.py (the benchmarks are scripts, not a package)."""
    return load_script("benchmarks", name)


def load_script(folder: str, name: str) -> ModuleType:
    """Import <folder>/<name>.py of the repository (benchmarks/, tools/: scripts, not packages)."""
    path = Path(__file__).resolve().parents[1] / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    """Every test writes downloads and caches into its own folder, never into ./data."""
    folder = tmp_path_factory.mktemp("medtl_data")
    monkeypatch.setenv("MEDTL_DATA", str(folder))
    monkeypatch.setenv("MEDTL_OFFLINE", "1")
    monkeypatch.delenv("MEDTL_SOURCE", raising=False)
    monkeypatch.delenv("MEDTL_PRETRAINED", raising=False)
    return folder


@pytest.fixture(autouse=True)
def isolated_cache_dir(tmp_path_factory, monkeypatch):
    """Caches go to a folder of each test's own, never into ./data/cache: a MEDTL_DATA that holds
    a Kermany folder is only read, so without MEDTL_CACHE its caches would land in the project."""
    folder = tmp_path_factory.mktemp("medtl_cache")
    monkeypatch.setenv("MEDTL_CACHE", str(folder))
    return folder


def random_scores(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores that separate the classes only partly, with ties (rounded to 0.01)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + rng.normal(0.35, 0.2, n), 0, 1).round(2)
    return y, p


def write_xray(path: Path, value: int = 128, size: int = 32, mode: str = "L") -> Path:
    """A small image file with a gradient so resizing has something to do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 255, size).astype(np.int64)
    arr = ((np.add.outer(ramp, ramp) // 2 + value) % 256).astype(np.uint8)
    Image.fromarray(arr, mode="L").convert(mode).save(path)
    return path


@pytest.fixture
def kermany_root(tmp_path) -> Path:
    """train/ and test/ with 2-3 patients per class, a .DS_Store and a stray text file."""
    root = tmp_path / "chest_xray"
    names = {
        "NORMAL": ["IM-0001-0001", "IM-0001-0002", "IM-0002-0001", "NORMAL2-IM-0003-0001"],
        "PNEUMONIA": [f"person{p}_bacteria_{k}" for p in (1, 2, 3, 4) for k in (1, 2)]
        + ["person5_virus_9"],
    }
    for split, offset in (("train", 0), ("test", 100)):
        for cls, stems in names.items():
            for i, stem in enumerate(stems):
                stem = stem.replace("000", f"{offset // 100}00") if split == "test" else stem
                stem = stem.replace("person", f"person{offset}") if split == "test" else stem
                write_xray(
                    root / split / cls / f"{stem}.jpeg", value=20 * i + 60 * (cls == "PNEUMONIA")
                )
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "train" / "NORMAL" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "train" / "PNEUMONIA" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def kaggle_root(tmp_path) -> Path:
    """The Kaggle download's layout, small: train/, a 4-image val/ and test/, no stray files.

    12 patients per class in train/ (NORMAL: one image each; PNEUMONIA: two), 2 per class in val/,
    3 per class in test/, where test/ reuses one train/ patient id (person1) as the release does.
    """
    root = tmp_path / "kaggle" / "chest_xray"
    layout = {
        "train": (
            [f"IM-{p:04d}-0001" for p in range(1, 13)],
            [f"person{p}_bacteria_{k}" for p in range(1, 13) for k in (1, 2)],
        ),
        "val": (
            ["NORMAL2-IM-0901-0001", "NORMAL2-IM-0902-0001"],
            ["person901_virus_1", "person902_virus_1"],
        ),
        "test": (
            [f"IM-{p:04d}-0001" for p in (501, 502, 503)],
            ["person1_virus_7", "person502_virus_1", "person503_bacteria_1"],
        ),
    }
    for split, (normal, pneumonia) in layout.items():
        for cls, stems in (("NORMAL", normal), ("PNEUMONIA", pneumonia)):
            for i, stem in enumerate(stems):
                write_xray(root / split / cls / f"{stem}.jpeg", value=7 * i, size=8)
    return root


@pytest.fixture
def cpu_with(monkeypatch):
    """Pretend the processor has these flags: `cpu_with("avx2")` is a CPU without native bf16.

    oneDNN's bf16 check is made to agree with the flags, as it does on real hardware.
    """
    import torch

    from medtl_helpers.config import hardware

    def pretend(*flags: str) -> None:
        monkeypatch.setattr(hardware, "cpu_flags", lambda: set(flags))
        native = bool({"avx512_bf16", "amx_bf16"} & set(flags))
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)

    return pretend


@pytest.fixture(scope="session")
def standin_torch_home(tmp_path_factory) -> Path:
    """A TORCH_HOME holding stand-in ImageNet weights for resnet18/34/50 (random, offline)."""
    from standin_weights import write_standin_weights

    home = tmp_path_factory.mktemp("torch_home")
    write_standin_weights(home)
    return home


@pytest.fixture
def standin_weights(standin_torch_home, monkeypatch) -> Path:
    """ImageNet weights "available": the stand-in files, with MEDTL_PRETRAINED=imagenet."""
    monkeypatch.setenv("TORCH_HOME", str(standin_torch_home))
    monkeypatch.setenv("MEDTL_PRETRAINED", "imagenet")
    return standin_torch_home


@pytest.fixture(autouse=True)
def no_kaggle_input(tmp_path_factory, monkeypatch):
    """Tests never read a real /kaggle/input: run on Kaggle, they would find its data set."""
    absent = tmp_path_factory.mktemp("no_kaggle") / "input"
    monkeypatch.setenv("MEDTL_KAGGLE_INPUT", str(absent))
    return absent


@pytest.fixture
def kaggle_input(tmp_path, kaggle_root, monkeypatch) -> Path:
    """Kaggle's input folder with the X-rays as Kaggle mounts them, at MEDTL_KAGGLE_INPUT.

    input/chest-xray-pneumonia/chest_xray/{train,val,test} is the data (`kaggle_root`); the
    archive adds a second copy, chest_xray/chest_xray/, and __MACOSX/ folders (inside chest_xray/
    and beside it). Both hold images, one more in each train/NORMAL, so that reading either one
    would change the counts. Returns the input folder.
    """
    import shutil

    data = tmp_path / "input" / "chest-xray-pneumonia" / "chest_xray"
    data.parent.mkdir(parents=True)
    kaggle_root.rename(data)
    copies = (
        data / "chest_xray",
        data / "__MACOSX" / "chest_xray",
        data.parent / "__MACOSX" / "chest_xray",
    )
    for copy in copies:
        shutil.copytree(data, copy, ignore=shutil.ignore_patterns("chest_xray", "__MACOSX"))
        write_xray(copy / "train" / "NORMAL" / "IM-0999-0001.jpeg", size=8)
    (data.parent / "__MACOSX" / "train").mkdir()  # not a Kermany folder, whatever it holds
    monkeypatch.setenv("MEDTL_KAGGLE_INPUT", str(tmp_path / "input"))
    return tmp_path / "input"
