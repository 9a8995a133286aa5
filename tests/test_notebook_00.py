"""Notebook 00's cells say what its data source really is and what it really timed."""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import write_xray
from notebook_cells import cell_source, run_cells
from scipy.stats import binom

from medtl_helpers import config, load_course_data
from medtl_helpers.data.cache import cache_key
from medtl_helpers.data.folder import scan_split
from medtl_helpers.data.medmnist import SPLIT_ORIGIN, pneumoniamnist_path
from medtl_helpers.data.records import ImageSet
from medtl_helpers.plots import plot_roc

NB = "00_setup_and_data"
IMPORTS, PARAMETERS = "4266b4fa", "819d1ec5"
SPLIT_CHECK, GAPS_CELL = "99154a8f", "36f7bf94"
DECODE, TIMED_FILES, RATIO_PROSE = "57a4806e", "d89e1b37", "9602c16b"
TITLE, ENVIRONMENT_PROSE, SOURCES_PROSE, LOAD = "b0b33ce5", "4e7d07f8", "b4f5c148", "500df007"
VERIFY_PROSE, BALANCE_PROSE, PER_PATIENT, GAPS_PROSE = (
    "6df964d2",
    "276bafe0",
    "309089ac",
    "6a8bf652",
)
SELECTION, SELECTION_PROSE, NAIVE_PROSE = "371e6df6", "007c8e96", "1ed7c1d4"
INTERVALS, SPLIT_GAPS, NAIVE_CHECK = "b8e13712", "d8279422", "677e52c2"
CACHE_PROSE, SHARES, EXERCISE_3 = "2385cfec", "05b0e8e1", "acdf7170"
BALANCE_SHARE, SHARES_VERDICT, SHARES_PROMPT = "109b339a", "41ec4215", "5d404beb"


def prepared(**names) -> dict:
    """The notebook's imports and parameters, then `names` on top."""
    namespace: dict = {}
    run_cells(NB, [IMPORTS, PARAMETERS], namespace)
    return namespace | names


def fake_pneumoniamnist(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in {"train": 8, "val": 4, "test": 4}.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 64, 64), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    path = pneumoniamnist_path(64, folder)
    np.savez(path, **arrays)
    return path


def test_split_check_quotes_medmnist_for_pneumoniamnist(isolated_data_dir):
    fake_pneumoniamnist(isolated_data_dir)
    data = load_course_data(source="pneumoniamnist", verbose=False)
    out = run_cells(NB, [SPLIT_CHECK], prepared(data=data))
    assert "carved" not in out and "by patient: it shares no patient" not in out
    assert "it divided the source's training set 9:1 into train and val" in out
    assert "no split of this source can be checked by patient" in out


def test_split_check_counts_the_ids_a_given_test_folder_reuses(kaggle_root, monkeypatch):
    monkeypatch.setenv("MEDTL_DATA", str(kaggle_root))
    data = load_course_data(verbose=False)
    out = run_cells(NB, [SPLIT_CHECK], prepared(data=data))
    assert "the given test/ folder: 1 of its 6 patient ids also name a patient in train" in out


def test_split_check_on_synthetic_data_checks_the_carved_test_split():
    data = load_course_data(source="synthetic", verbose=False)
    out = run_cells(NB, [SPLIT_CHECK], prepared(data=data))
    assert "a patient-level holdout of the same pool as train and val" in out


def test_roc_prose_names_the_axes_that_plot_roc_draws():
    prose = cell_source(NB, "109b339a")
    found = re.search(
        r"\*\*ROC curve\*\*: (\S+) \(y axis\) against the (\S+) rate \(x axis\)", prose
    )
    assert found, "the ROC paragraph says which quantity is on which axis"
    ax = plot_roc(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    assert found[1] in ax.get_ylabel()
    assert found[2].replace("-", " ") in ax.get_xlabel()


def test_sixteen_images_comparison_is_computed_and_matches_the_binomial():
    namespace = prepared(p=0.9, data=SimpleNamespace(val=range(153)))
    out = run_cells(NB, [GAPS_CELL], namespace)
    rows = re.findall(r"n = +(\d+): a model ([\d.]+) less accurate .* in (\d+)% of draws", out)
    assert len(rows) == 2 * len(namespace["GAPS"])
    for n, gap, share in rows:
        n, gap = int(n), float(gap)
        better, worse = (
            binom.pmf(np.arange(n + 1), n, 0.9),
            binom.pmf(np.arange(n + 1), n, 0.9 - gap),
        )
        exact = sum(worse[j] * better[: j + 1].sum() for j in range(n + 1))
        assert abs(int(share) / 100 - exact) <= 0.01, (n, gap)
    notebook = "\n".join(cell_source(NB, c) for c in ("c919150a", "6a8bf652"))
    assert "wider than the gap between any two models" not in notebook
    assert "larger\nthan most improvements" not in notebook


@pytest.mark.parametrize("source", ["kermany-folder", "synthetic"])
def test_timing_names_the_files_it_decoded(source, kermany_root):
    tmp = tempfile.TemporaryDirectory()
    names = {"tmp": tmp, "tensor_ms": 0.01, "N_DECODE": 8, "IMAGE_SIZE": 64}
    names["data"] = SimpleNamespace(source=source, origin=str(kermany_root))
    names["scan"] = scan_split(kermany_root, "train")
    out = run_cells(NB, [DECODE, TIMED_FILES], prepared(**names))
    if source == "kermany-folder":
        assert f"timed: 8 JPEG files of {kermany_root}, 32-32 x 32-32 px, median" in out
        assert "per-image Dataset, decode (PIL, whole file) + resize to 64 px: " in out
        assert "JPEG draft decode + resize to 64 px, as the cache build does once: " in out
    else:
        assert "timed: 8 synthetic PNG files written just now, 64-64 x 64-64 px, median" in out
        assert "per-image Dataset, decode (PIL, whole file), nothing to resize: " in out
        assert "draft" not in out
    assert not Path(tmp.name).exists()  # the notebook cleans up after timing
    assert "thumbnails timed here" not in cell_source(NB, RATIO_PROSE)


def image_set(patients: list[str], source: str, labels: list[int] | None = None) -> ImageSet:
    labels = labels if labels is not None else [i % 2 for i in range(len(patients))]
    return ImageSet(
        images=torch.zeros((len(patients), 1, 4, 4), dtype=torch.uint8),
        labels=torch.tensor(labels),
        patients=patients,
        source=source,
    )


def prose(*cell_ids: str) -> str:
    """The cells' text with line breaks as spaces, so a phrase is found across a wrapped line."""
    return " ".join(" ".join(cell_source(NB, c).split()) for c in cell_ids)


def test_the_load_cell_prints_how_medmnist_made_its_splits_instead_of_retyping_it():
    fake_pneumoniamnist(config.data_dir())
    out = run_cells(NB, [LOAD], prepared())
    assert f"PneumoniaMNIST (in use): {SPLIT_ORIGIN}." in out
    text = prose(SOURCES_PROSE, BALANCE_PROSE)
    assert "made per image" not in text and "per-image splits" not in text
    assert "does not say whether a child's X-rays stay on one side" in text


@pytest.mark.parametrize(
    ("source", "unit", "effect", "wide"),
    [("kermany-folder", "patients", 1.5, 0.720), ("pneumoniamnist", "images", 1.0, 0.588)],
)
def test_validation_interval_brackets_the_width_by_patient(source, unit, effect, wide):
    val = image_set(["a", "a", "b", "c"] if unit == "patients" else ["0", "1", "2", "3"], source)
    out = run_cells(NB, [PER_PATIENT], prepared(p=0.9, data=SimpleNamespace(val=val)))
    ids = 3 if unit == "patients" else 4
    assert f"our val split: 4 images, {ids} ids, unit: {unit}" in out
    # se = sqrt(0.9 * 0.1 / 4) = 0.15: width 2 * 1.96 * 0.15 = 0.588; x sqrt(design effect)
    assert f"design effect {effect:.2f}; 95% interval width 0.588 if every image" in out
    assert f", {wide:.3f} if all images of one id are right or wrong together" in out
    assert ("no patient ids: both widths are per image" in out) == (unit == "images")


def test_exercise_3_scales_the_independent_answer_by_the_design_effect():
    data = SimpleNamespace(val=image_set(["a"] * 4, "kermany-folder"), train=range(96))
    names = {"p": 0.9, "half_width": 0.02, "data": data, "design_effect": 1.5, "math": math}
    out = run_cells(NB, [EXERCISE_3], names)
    assert "n >= 865 independent images; our validation split has 4" in out
    assert "if all images of one id (patients) err together: n >= 1,298 images" in out


def test_stratification_verdict_is_not_given_for_medmnist_splits():
    split_gaps = {"stratified": np.array([0.0, 0.5]), "unstratified": np.array([0.0, 2.0, 5.0])}
    for source, verdict in (("pneumoniamnist", False), ("kermany-folder", True)):
        data = SimpleNamespace(
            train=image_set([f"t{i}" for i in range(4)], source, [1, 1, 1, 0]),
            val=image_set([f"v{i}" for i in range(8)], source, [1, 1, 1, 0] * 2),
        )
        out = run_cells(NB, [SHARES_VERDICT], {"data": data, "split_gaps": split_gaps, "np": np})
        assert "train and val are 0.00 percentage points apart" in out
        said = "unstratified patient splits of section 5: 33% as close or closer" in out
        assert said == verdict
        assert ("MedMNIST made these splits" in out) == (not verdict)


def test_stratification_is_judged_against_unstratified_splits_not_a_2_point_criterion():
    """Most unstratified patient splits pass a 2-point criterion, so it showed nothing."""
    assert "2-point criterion" not in cell_source(NB, SHARES) + cell_source(NB, SHARES_VERDICT)
    data = load_course_data(source="synthetic", verbose=False)
    out = run_cells(NB, [SPLIT_GAPS], prepared(data=data))
    found = dict(re.findall(r"(\w+) +patient splits, 100 seeds: gap median ([\d.]+)", out))
    assert float(found["stratified"]) < float(found["unstratified"])


def test_the_interval_width_is_the_width_of_the_printed_interval():
    out = run_cells(NB, [INTERVALS], prepared(data=SimpleNamespace(val=range(153))))
    for low, high, width in re.findall(r"([\d.]+) \.\. ([\d.]+) \(width ([\d.]+)", out):
        assert abs(float(high) - float(low) - float(width)) <= 0.0015, (low, high, width)
    assert "0.753 .. 1.000 (width 0.247, cut at 1)" in out


def test_the_naive_split_check_names_a_cause_only_when_it_holds():
    """On a source with patient ids, a naive split that leaks no one is not 'one id per image'."""
    whole = image_set(["a", "a", "b", "b"], "kermany-folder")
    names = {"naive_train": whole.subset([0, 1]), "naive_val": whole.subset([2, 3])}
    names["data"] = SimpleNamespace(val=whole)
    out = run_cells(NB, [NAIVE_CHECK], prepared(**names))
    assert "every image has its own id" not in out and "happened to keep every child" in out
    names["data"] = SimpleNamespace(val=image_set(["0", "1"], "pneumoniamnist"))
    assert "every image has its own id" in run_cells(NB, [NAIVE_CHECK], prepared(**names))


def test_the_prose_says_the_quick_profile_also_changes_the_weights(monkeypatch):
    monkeypatch.delenv("MEDTL_PRETRAINED", raising=False)
    assert config.pretrained_choice(config.get_profile("quick")) == "none"
    text = prose(ENVIRONMENT_PROSE)
    assert "only changes sizes" not in text and "never the code" not in text
    assert "in `quick` the default weights too" in text and "MEDTL_PRETRAINED=imagenet" in text
    assert "only changes sizes" not in (config.__doc__ or "") + (config.profiles.__doc__ or "")


def test_the_prose_gives_a_share_not_a_factor_and_pays_decoding_every_epoch():
    assert "by the factor the `pneumonia_share` column gives" not in prose(BALANCE_SHARE)
    assert "PNEUMONIA images per NORMAL one" in prose(BALANCE_SHARE)
    assert "ratio printed above is paid back every epoch" not in prose(RATIO_PROSE)
    assert "Every epoch of a per-image pipeline pays the decode time" in prose(RATIO_PROSE)


def test_the_picked_model_is_scored_on_many_new_image_sets():
    data = SimpleNamespace(test=image_set([str(i) for i in range(200)], "synthetic"))
    out = run_cells(NB, [SELECTION], prepared(data=data))
    found = re.search(r"on (\d+) new sets of 200 images: mean accuracy ([\d.]+); ([\d.]+)%", out)
    assert found and int(found[1]) > 1 and abs(float(found[2]) - 0.5) < 0.01
    assert float(found[3]) < 5.0  # the lead won on the test set rarely comes back
    assert "falls back to chance" not in prose(SELECTION_PROSE)


def test_the_profile_prose_says_what_happens_on_apple_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert config.detect_profile() == "cpu" and config.get_device().type == "mps"
    text = prose(ENVIRONMENT_PROSE)
    assert "`gpu` when torch sees a CUDA GPU and `cpu` otherwise" in text
    assert "the device is `mps`" in text and "the sizes are the `cpu` profile's" in text


def test_the_cache_prose_names_what_the_key_hashes(tmp_path):
    image = write_xray(tmp_path / "train" / "NORMAL" / "IM-0001-0001.jpeg")
    key = cache_key([image], 64)
    assert key != cache_key([image], 128)
    image.write_bytes(image.read_bytes() + b"\0")  # one byte more: a new key
    assert key != cache_key([image], 64)
    text = prose(CACHE_PROSE)
    assert "last three path parts (`split/CLASS/name`) and size in bytes" in text
    assert "of the working size and of the cache's format version" in text


def test_prose_names_kaggles_val_folder_and_what_verify_folder_does():
    assert "official 16-image" not in prose(TITLE, BALANCE_PROSE)
    assert "Kaggle's copy of the Kermany set" in prose(TITLE)
    assert "counting part" not in prose(VERIFY_PROSE)
    assert "opens and decodes every image" in prose(VERIFY_PROSE)
    assert "Add that one image" not in prose(GAPS_PROSE)
    assert "when* every image and the two models err independently" in prose(GAPS_PROSE)
    assert "on PneumoniaMNIST, where every image is its own id" in prose(NAIVE_PROSE)


def test_the_shares_prompt_asks_for_exact_shares_and_bounds_the_stratified_line():
    """The checker compares within 1e-6, so a rounded share the prompt allowed used to fail."""
    text = prose(SHARES_PROMPT)
    assert "give the exact, unrounded share: two splits can differ by less than 0.001" in text
    # cell 68 prints np.mean(gaps <= gap), which reads 0% below every reference gap and 100%
    # at or above all of them; on PneumoniaMNIST it prints no such line
    assert "(0%: smaller than all of them; 100%: at least as large as all of them)" in text
    assert "so this is no verdict on it either way" in text
    assert "on PneumoniaMNIST it says instead that the gap tests no stratification" in text
