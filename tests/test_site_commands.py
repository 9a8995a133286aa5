"""A model at a new hospital on the command line (#27): `evaluate --adapt bn --prior em`, and
`calibrate`, whose copy `evaluate` then scores on the site's other patients only.

The site is a folder on disk: synthetic X-rays acquired brighter (`SiteSpec(gamma=0.7)`) with a
lower pneumonia share than the training folder (`prevalence_index`), written as its test/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medtl_helpers.course.cli import main
from medtl_helpers.data.folder import patient_id
from medtl_helpers.data.records import CLASSES
from medtl_helpers.data.sites import SiteSpec, acquire, prevalence_index
from medtl_helpers.data.synthetic import make_synthetic, synthetic_stems, write_synthetic_folder

SHARE = 0.4  # the site's pneumonia share; the training folder's is about 0.74


def write_site(root: Path, n: int = 160, seed: int = 5) -> Path:
    """root/test/: `n` synthetic X-rays cut to SHARE pneumonia, acquired with gamma 0.7."""
    site = make_synthetic(n, size=32, seed=seed, first_patient=1000)
    site = site.subset(prevalence_index(site, SHARE, seed=0))
    images = acquire(
        site.images, SiteSpec("exposure", gamma=0.7), torch.zeros(len(site), dtype=torch.bool)
    )
    for image, label, stem in zip(images, site.labels.tolist(), synthetic_stems(site.patients)):
        path = root / "test" / CLASSES[label] / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].numpy()).save(path)
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A Kermany-layout folder: train/ from the source, test/ from the shifted site."""
    root = write_synthetic_folder(tmp_path_factory.mktemp("site") / "xrays", 96, 0, size=32)
    shutil.rmtree(root / "test")
    return write_site(root)


@pytest.fixture(scope="module")
def checkpoint(site, tmp_path_factory) -> Path:
    """best.pt of one epoch on the site folder's train/ (caches kept out of the project)."""
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDTL_CACHE", str(out / "cache"))
        patch.setenv("MEDTL_DATA", str(out / "data"))
        args = ["train", "--data", str(site), "--epochs", "1", "--image-size", "32"]
        assert main([*args, "--batch-size", "8", "--out", str(out)]) == 0
    return out / "best.pt"


def site_test_images(site: Path) -> dict[str, int]:
    """Images per patient in the site's test/, read from the file names."""
    counts: dict[str, int] = {}
    for path in (site / "test").rglob("*.png"):
        counts[patient_id(path)] = counts.get(patient_id(path), 0) + 1
    return counts


def calibrate(checkpoint, site, out, *extra) -> int:
    args = ["calibrate", "--checkpoint", str(checkpoint), "--data", str(site), "--split", "test"]
    return main([*args, "--out", str(out), *extra])


def evaluate(checkpoint, site, *extra) -> int:
    args = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(site), "--n-boot", "20"]
    return main([*args, *extra])


def split_images(checkpoint: Path, site: Path, split: str = "test"):
    from medtl_helpers.data.sources import load_folder
    from medtl_helpers.training import read_checkpoint

    meta = read_checkpoint(checkpoint)["meta"]
    data = load_folder(site, meta["image_size"], meta["seed"], meta.get("val_fraction", 0.15))
    return data, getattr(data, split)


def test_calibration_reaches_its_sensitivity_and_evaluate_leaves_its_patients_out(
    site, checkpoint, tmp_path, capsys
):
    from medtl_helpers.metrics import predict_proba, sensitivity
    from medtl_helpers.training import load_checkpoint

    out = tmp_path / "site.pt"
    assert calibrate(checkpoint, site, out, "--patients", "12", "--sensitivity", "0.9") == 0
    printed = capsys.readouterr().out
    model, meta = load_checkpoint(out)
    record, old = meta["calibration"], load_checkpoint(checkpoint)[1]["threshold"]
    assert record["data_root"] == str(site.resolve()) and record["split"] == "test"
    assert len(record["patients"]) == 12 and record["adapt"] == "none"
    assert record["old_threshold"] == old and record["threshold"] == meta["threshold"]
    assert "highest threshold with sensitivity >= 0.9" in record["rule"] and record["date"]
    per_patient = site_test_images(site)
    drawn = sum(per_patient[p] for p in record["patients"])
    assert record["images"] == drawn
    kinds = {p.startswith("person") for p in record["patients"]}
    assert kinds == {True, False}  # stratified: both classes drawn
    assert f"calibration patients: 12 of the {len(per_patient)} patients of the test" in printed
    assert "optimistic" in printed and f"other {len(per_patient) - 12} patients" in printed
    assert "on other patients it often falls short of the target" in " ".join(printed.split())

    _, part = split_images(checkpoint, site)
    mine = np.array([p in set(record["patients"]) for p in part.patients])
    p = predict_proba(model, part.images[torch.from_numpy(mine)])
    reached = sensitivity(part.labels.numpy()[mine], p, meta["threshold"])
    assert reached >= 0.9 and reached == pytest.approx(record["sensitivity_reached"])

    report = tmp_path / "test.json"
    assert evaluate(out, site, "--split", "test", "--json", str(report)) == 0
    printed = capsys.readouterr().out
    scored = sum(per_patient.values()) - drawn
    assert f"test: {scored} images from" in printed
    assert f"left out 12 calibration patients ({drawn} images)" in printed
    saved = json.loads(report.read_text())
    assert saved["n"] == scored and saved["left_out"]["images"] == drawn
    assert saved["left_out"]["patients"] == record["patients"]
    assert saved["threshold"] == pytest.approx(meta["threshold"])


def test_on_another_split_the_calibrated_copy_scores_every_image(
    site, checkpoint, tmp_path, capsys
):
    out = tmp_path / "site.pt"
    assert calibrate(checkpoint, site, out, "--patients", "8") == 0
    _, val = split_images(checkpoint, site, "val")
    report = tmp_path / "val.json"
    assert evaluate(out, site, "--split", "val", "--json", str(report)) == 0
    printed = capsys.readouterr().out
    assert f"val: {len(val)} images from" in printed
    assert f"calibrated elsewhere (the test split of {site.resolve()}): all scored" in printed
    saved = json.loads(report.read_text())
    assert saved["n"] == len(val) and saved["left_out"]["images"] == 0


def test_adapt_bn_moves_the_batchnorm_statistics_to_the_folders(
    site, checkpoint, tmp_path, capsys, monkeypatch
):
    from medtl_helpers.adaptation.adabn import batchnorm_input_statistics
    from medtl_helpers.course import site_commands
    from medtl_helpers.training import load_checkpoint

    out = tmp_path / "site.pt"
    assert calibrate(checkpoint, site, out, "--patients", "8", "--adapt", "bn") == 0
    source, _ = load_checkpoint(checkpoint)
    adapted, meta = load_checkpoint(out)
    data, test = split_images(checkpoint, site)
    at_site = batchnorm_input_statistics(source, test.images)["bn1"]
    at_home = batchnorm_input_statistics(source, data.train.images)["bn1"]
    moved = adapted.bn1.running_mean
    assert (moved - at_site[0]).abs().mean() < 0.02 * (at_home[0] - at_site[0]).abs().mean()
    torch.testing.assert_close(adapted.bn1.running_var, at_site[1], rtol=1e-3, atol=1e-5)
    assert meta["calibration"]["adapt"] == "bn" and meta["calibration"]["adapt_images"] == len(test)

    seen = []
    real = site_commands.adapt_to
    monkeypatch.setattr(site_commands, "adapt_to", lambda m, x, s: seen.append(x) or real(m, x, s))
    report = tmp_path / "test.json"
    assert evaluate(checkpoint, site, "--adapt", "bn", "--json", str(report)) == 0
    printed = capsys.readouterr().out
    assert f"AdaBN: BatchNorm statistics re-estimated on the {len(test)} images scored" in printed
    assert "transductive" in printed and torch.equal(seen[0], test.images)
    assert json.loads(report.read_text())["adapt"] == {
        "method": "bn",
        "images": len(test),
        "transductive": True,
    }


def test_evaluate_of_an_adapted_copy_says_where_its_statistics_came_from(
    site, checkpoint, tmp_path, capsys
):
    out, report = tmp_path / "site.pt", tmp_path / "copy.json"
    assert calibrate(checkpoint, site, out, "--patients", "8", "--adapt", "bn") == 0
    capsys.readouterr()
    assert evaluate(out, site, "--json", str(report)) == 0
    printed = capsys.readouterr().out
    assert "BatchNorm statistics were re-estimated by calibrate on the" in printed
    saved = json.loads(report.read_text())
    assert saved["adapt"]["method"] == "bn, by calibrate"
    assert "re-estimated by calibrate" in saved["left_out"]["batchnorm"]
    with pytest.warns(UserWarning, match="calibrated with other BatchNorm statistics"):
        from medtl_helpers.course.site_commands import site_probabilities
        from medtl_helpers.training import load_checkpoint

        model, meta = load_checkpoint(out)
        _, test = split_images(checkpoint, site)
        args = argparse.Namespace(adapt="bn", prior="none", checkpoint=out)
        site_probabilities(args, model, meta, None, test, torch.device("cpu"))


def test_adaptation_and_prior_correction_are_off_by_default(site, checkpoint, tmp_path, capsys):
    report = tmp_path / "test.json"
    assert evaluate(checkpoint, site, "--json", str(report)) == 0
    printed = capsys.readouterr().out
    assert "AdaBN" not in printed and "prior:" not in printed and "left out" not in printed
    saved = json.loads(report.read_text())
    assert saved["adapt"] == {"method": "none"} and saved["prior"] == {"method": "none"}
    assert saved["left_out"] is None


def test_em_recovers_a_known_prevalence():
    from medtl_helpers.course.site_commands import prior_correction

    rng = np.random.default_rng(0)
    y = (rng.random(20_000) < 0.2).astype(int)
    x = rng.normal(np.where(y == 1, 1.0, -1.0), 1.0)
    p = 1 / (1 + np.exp(-2 * x))  # the exact P(PNEUMONIA | x) where both classes are equally likely
    train_labels = np.array([0] * 100 + [1] * 300)  # the weighted loss still trains towards 1/2
    corrected, record = prior_correction(p, train_labels)
    assert record["source_prior"] == pytest.approx(0.5)
    assert record["estimated_prior"] == pytest.approx(y.mean(), abs=0.02)
    assert corrected.mean() == pytest.approx(record["estimated_prior"], abs=1e-4)


def test_prior_em_is_printed_and_recorded(site, checkpoint, tmp_path, capsys):
    report = tmp_path / "test.json"
    assert evaluate(checkpoint, site, "--prior", "em", "--json", str(report)) == 0
    printed = capsys.readouterr().out
    prior = json.loads(report.read_text())["prior"]
    labelled = sum(1 for _ in (site / "test" / "PNEUMONIA").iterdir()) / sum(
        site_test_images(site).values()
    )
    assert prior["method"] == "em" and prior["source_prior"] == pytest.approx(0.5)
    assert 0 < prior["estimated_prior"] < 1
    assert prior["labelled_share"] == pytest.approx(labelled)
    assert f"EM estimates a PNEUMONIA share of {prior['estimated_prior']:.3f}" in printed
    assert "(source prior 0.500" in printed and f"give {labelled:.3f}" in printed


@pytest.fixture(scope="module")
def one_normal(site, tmp_path_factory) -> Path:
    """The site folder with a single NORMAL patient left in test/."""
    root = tmp_path_factory.mktemp("one") / "xrays"
    shutil.copytree(site, root)
    files = sorted((root / "test" / "NORMAL").iterdir())
    for path in files:
        if patient_id(path) != patient_id(files[0]):
            path.unlink()
    return root


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--patients", "500"], "asked for 500 calibration patients, but the split has"),
        (["--sensitivity", "0"], "a sensitivity of 0.0 is no target: give --sensitivity a value"),
        (["--sensitivity", "1.5"], "a sensitivity of 1.5 is no target: give --sensitivity a"),
        (["--split", "train"], "--split train is the split the model was trained on"),
        (["--out", "SOURCE"], "is the checkpoint being calibrated"),
        (["--data", "ONE_NORMAL"], "the split has one NORMAL patient only"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    site, checkpoint, one_normal, tmp_path, capsys, extra, message
):
    out = tmp_path / "site.pt"
    before = checkpoint.read_bytes()
    swap = {"SOURCE": str(checkpoint.parent / ".." / checkpoint.parent.name / "best.pt")}
    swap["ONE_NORMAL"] = str(one_normal)
    extra = [swap.get(word, word) for word in extra]
    assert (
        main(
            ["calibrate", "--checkpoint", str(checkpoint), "--data", str(site), "--out", str(out)]
            + extra
        )
        == 2
    )
    err = capsys.readouterr().err  # a progress bar may come first (MEDTL_PROGRESS unset)
    errors = [line for line in err.splitlines() if "error: " in line]
    assert len(errors) == 1 and errors[0].split("\r")[-1].startswith("error: ")
    assert message in errors[0] and "Traceback" not in err
    assert not out.exists() and checkpoint.read_bytes() == before


def test_fixes_are_named_in_the_messages(site, checkpoint, one_normal, tmp_path, capsys):
    out = str(tmp_path / "site.pt")
    args = ["calibrate", "--checkpoint", str(checkpoint), "--out", out]
    patients = len(site_test_images(site))
    assert main([*args, "--data", str(site), "--patients", "500"]) == 2
    assert f"give --patients at most {patients - 2}" in capsys.readouterr().err
    assert main([*args, "--data", str(site), "--split", "train"]) == 2
    assert "--split test" in capsys.readouterr().err
    assert main([*args[:-1], str(checkpoint), "--data", str(site)]) == 2
    assert f"Give --out another file, e.g. {checkpoint.parent / 'site.pt'}" in (
        capsys.readouterr().err
    )
    assert main([*args, "--data", str(one_normal)]) == 2
    assert "at least 2 patients of each class" in capsys.readouterr().err


def test_inputs_are_checked_before_the_data_is_read(checkpoint, tmp_path, capsys, monkeypatch):
    def no_reading(*args, **kwargs):
        raise AssertionError("the data were read before the arguments were checked")

    monkeypatch.setattr("medtl_helpers.data.sources.load_folder", no_reading)
    args = ["calibrate", "--checkpoint", str(checkpoint), "--data", str(tmp_path / "nowhere")]
    for extra in (["--sensitivity", "2"], ["--split", "train"], ["--out", str(checkpoint)]):
        out = [] if "--out" in extra else ["--out", str(tmp_path / "site.pt")]
        assert main([*args, *out, *extra]) == 2
        assert capsys.readouterr().err.startswith("error: ")


def test_em_at_the_edge_is_warned_about(capsys):
    from medtl_helpers.course.site_commands import _say_prior

    record = {"method": "em", "source_prior": 0.5, "estimated_prior": 1.0}
    with pytest.warns(UserWarning, match="EM ran to a share of 1.000"):
        _say_prior(record, 0.5)
    assert record["labelled_share"] == 0.5 and "EM estimates" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _say_prior({"source_prior": 0.5, "estimated_prior": 0.62}, 0.6)  # no warning
