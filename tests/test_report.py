"""The test report: metrics at a fixed threshold, its JSON file and the published comparison."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medtl_helpers.evaluation.report import (
    PUBLISHED,
    compare_with_published,
    comparison_caveats,
    evaluation_report,
    precision_label,
    report_table,
    throughput_line,
    write_report,
)
from medtl_helpers.evaluation.val_vs_test import gap_intervals, validation_beside_test
from medtl_helpers.metrics import choose_threshold
from medtl_helpers.training.runs import History

Y = np.array([0, 0, 1, 1, 1, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.7, 0.6, 0.2])
# four copies, so that no bootstrap resample holds a single class
Y4, P4 = np.tile(Y, 4), np.tile(P, 4)


def test_report_holds_the_metrics_at_the_given_threshold_with_intervals():
    report = evaluation_report(Y4, P4, 0.5, n_boot=200, seed=0)
    assert report["n"] == 32 and report["threshold"] == 0.5
    assert report["sensitivity"] == pytest.approx(3 / 5)
    assert report["specificity"] == pytest.approx(2 / 3)
    assert report["accuracy"] == pytest.approx(5 / 8)
    assert report["balanced_accuracy"] == pytest.approx((3 / 5 + 2 / 3) / 2)
    assert report["auroc"] == pytest.approx(10 / 15)
    for name, (low, high) in report["ci95"].items():
        assert low <= high, name
    assert set(report["ci95"]) == {
        "auroc",
        "accuracy",
        "sensitivity",
        "specificity",
        "balanced_accuracy",
    }
    table = report_table(report)
    assert list(table.columns) == ["value", "low", "high"]
    assert list(table.index) == [*report["ci95"], "threshold", "n"]
    assert table.loc["sensitivity", "value"] == pytest.approx(3 / 5)
    assert table.loc["auroc", ["low", "high"]].tolist() == list(report["ci95"]["auroc"])
    assert table.loc["n", "value"] == 32 and np.isnan(table.loc["n", "low"])
    assert report["resampled"] == "images"


def test_report_by_patient_records_it_and_widens_the_intervals():
    # Y4 repeats the 8 cases 4 times: as 8 children with 4 X-rays each, there is less evidence.
    children = [f"child{i}" for i in range(8)] * 4
    by_child = evaluation_report(Y4, P4, 0.5, n_boot=300, seed=0, groups=children)
    by_image = evaluation_report(Y4, P4, 0.5, n_boot=300, seed=0)
    assert by_child["resampled"] == "patients" and by_child["auroc"] == by_image["auroc"]
    width = lambda r: r["ci95"]["auroc"][1] - r["ci95"]["auroc"][0]  # noqa: E731
    assert width(by_child) > 1.5 * width(by_image)
    one_each = evaluation_report(Y4, P4, 0.5, n_boot=50, groups=[f"mnist-{i}" for i in range(32)])
    assert one_each["resampled"] == "images"  # one id per image: nothing is grouped


def test_written_json_has_the_cli_keys(tmp_path):
    report = evaluation_report(Y4, P4, 0.5, n_boot=50)
    path = write_report(tmp_path / "run" / "test.json", report, split="test", arch="resnet18")
    saved = json.loads(path.read_text())
    for key in ("auroc", "accuracy", "sensitivity", "specificity", "threshold", "n"):
        assert saved[key] == pytest.approx(report[key])
    assert saved["split"] == "test" and saved["arch"] == "resnet18"
    assert saved["ci95"]["auroc"] == list(report["ci95"]["auroc"])
    assert not (tmp_path / "run" / "test.json.tmp").exists()


def test_comparison_puts_the_measured_row_after_the_published_ones():
    table = compare_with_published({"accuracy": 0.9, "auroc": 0.95}, "holdout: 784 images")
    assert list(table.index) == [row["result"] for row in PUBLISHED] + ["this notebook"]
    assert table.loc["this notebook", "AUROC"] == 0.95
    assert table["accuracy"].tolist() == [0.928, 0.864, 0.9]
    assert table["AUROC"].tolist()[:2] == [0.968, 0.956]
    assert "Yang et al. 2023" in table.index[1]


@pytest.mark.parametrize(
    ("source", "notes", "expected"),
    [
        ("synthetic", [], "SYNTHETIC DATA"),
        ("kermany-folder", ["no test/ folder: a patient-level 15% holdout"], "holdout of train/"),
        ("kermany-folder", [], "official test/ folder"),
        ("pneumoniamnist", [], "PneumoniaMNIST's test split"),
    ],
)
def test_caveats_depend_on_the_data_source(source, notes, expected):
    lines = comparison_caveats(source, notes)
    assert any(expected in line for line in lines)
    assert any("does not make clear that no choice" in line for line in lines)
    assert (source == "synthetic") == lines[0].startswith("SYNTHETIC")


def test_holdout_caveat_claims_only_what_the_split_shows():
    """The official test/ folder is not the pool validation was drawn from; no source says it
    was collected separately, so the caveat does not claim that."""
    lines = comparison_caveats("kermany-folder", ["no test/ folder: a patient-level 15% holdout"])
    held = next(line for line in lines if "holdout of train/" in line)
    assert "the pool validation was drawn from" in held and "did not come from that pool" in held
    assert not any("collected" in line or "separately" in line for line in lines)


def test_precision_and_throughput_on_cpu(cpu_with):
    cpu_with("avx2")  # bf16 only emulated: fp32
    assert precision_label("cpu") == "fp32"
    assert precision_label("cpu", amp="bf16") == "bf16 autocast"
    history = History()
    for speed in (100.0, 300.0, 200.0):
        history.add(stage="train", images_per_s=speed)
    line = throughput_line(history, torch.device("cpu"), 128)
    assert line.startswith("training throughput: 200 images/s (median of 3 epochs) on cpu")
    assert line.endswith("128 px, fp32")
    with pytest.raises(ValueError, match="no epochs"):
        throughput_line(History(), "cpu", 128)


def test_a_random_init_run_says_so_beside_the_published_imagenet_results():
    report = {"accuracy": 0.9, "auroc": 0.95}
    table = compare_with_published(report, "holdout: 784 images", weights="random")
    assert table.index[-1] == "this notebook (random init)"
    imagenet = compare_with_published(report, "holdout", weights="imagenet")
    assert imagenet.index[-1] == "this notebook (ImageNet weights)"
    lines = comparison_caveats("kermany-folder", [], weights="random")
    assert any("random initialisation" in line and "ImageNet" in line for line in lines)
    assert not any(
        "random" in line for line in comparison_caveats("kermany-folder", [], "imagenet")
    )


def test_a_capped_test_split_is_not_called_the_official_one_unqualified():
    """The quick profile scores 200 of the 624 images; the caveats said 'the official test/'."""
    capped = comparison_caveats("kermany-folder", [], test_images=200)
    assert any("scored 200 test images, the papers all 624" in line for line in capped)
    whole = comparison_caveats("pneumoniamnist", [], test_images=624)
    assert not any("scored" in line for line in whole)
    holdout = comparison_caveats(
        "kermany-folder", ["no test/ folder: a patient-level holdout"], test_images=200
    )
    assert not any("scored" in line for line in holdout)  # a holdout is not the papers' split


def test_caveats_name_the_threshold_rule_and_the_class_mix_behind_accuracy():
    lines = comparison_caveats("pneumoniamnist", [], test_share=0.625)
    rule = [line for line in lines if "getACC" in line]
    assert len(rule) == 1
    assert "Youden's threshold" in rule[0] and "p > 0.5" in rule[0]
    assert "(PNEUMONIA is 62.5% of ours)" in rule[0] and "AUROC depends on neither" in rule[0]


def test_the_holdout_caveat_makes_no_uncited_claim_about_scores():
    lines = comparison_caveats("kermany-folder", ["no test/ folder: a patient-level holdout"])
    assert not any("usually" in line for line in lines)
    assert any("need not carry over" in line for line in lines)


def _scored(rng, n, shift=0.0):
    """n cases, 74% PNEUMONIA, logits +-1.2 plus unit noise (+ `shift` on every logit)."""
    y = (rng.random(n) < 0.74).astype(int)
    z = np.where(y == 1, 1.2, -1.2) + rng.normal(0, 1, n) + shift
    return y, 1 / (1 + np.exp(-z))


def _flags_a_gap(val, test, seed):
    threshold = choose_threshold(*val)  # chosen on validation, as in notebook 04
    gaps = gap_intervals(val, test, threshold, n_boot=200, seed=seed)
    return not any(
        line.startswith("no interval excludes 0") for line in validation_beside_test(gaps)
    )


def test_validation_beside_test_rarely_sees_a_gap_between_sets_of_one_distribution():
    # Validation's value against the test interval alone (the old verdict) fired in 14 of these 40.
    flagged = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        flagged += _flags_a_gap(_scored(rng, 600), _scored(rng, 600), seed)
    assert flagged <= 4


def test_validation_beside_test_sees_a_shift_of_the_test_logits():
    rng = np.random.default_rng(0)
    assert _flags_a_gap(_scored(rng, 600), _scored(rng, 600, shift=0.8), seed=0)


def test_gap_intervals_resample_whole_patients():
    y, p = np.repeat(Y4, 3), np.repeat(P4, 3)  # every patient has three identical images
    patients = np.repeat(np.arange(Y4.size), 3).astype(str)
    by_image = gap_intervals((y, p), (y, p), 0.5, n_boot=300)
    by_patient = gap_intervals((y, p), (y, p), 0.5, patients, patients, n_boot=300)
    for key in ("sensitivity", "specificity"):
        assert by_image[key][:2] == by_patient[key][:2]
        width = by_patient[key][3] - by_patient[key][2]
        assert width > by_image[key][3] - by_image[key][2]


# The case (notebook 04 on Kermany's test/ folder): one rate lost, the other gained.
APART = {
    "sensitivity": (0.940, 0.994, -0.080, -0.030),
    "specificity": (0.960, 0.550, 0.350, 0.470),
    "balanced_accuracy": (0.950, 0.772, 0.140, 0.210),
}
CALM = {"sensitivity": (0.96, 0.97, -0.04, 0.02), "specificity": (0.90, 0.91, -0.05, 0.04)}


def test_validation_beside_test_reads_the_interval_of_the_difference():
    gaps = {"sensitivity": (0.96, 0.97, -0.04, 0.02), "specificity": (0.95, 0.60, 0.25, 0.45)}
    lines = validation_beside_test(gaps)
    assert lines[0] == (
        "sensitivity: validation 0.960, test 0.970, validation - test -0.010 "
        "(97.5% interval -0.040 to +0.020): includes 0"
    )
    assert lines[1].endswith("(97.5% interval +0.250 to +0.450): excludes 0")
    assert "by patients" in lines[2]
    assert lines[3] == (
        "the specificity interval excludes 0, more than the noise of these patients: "
        "specificity higher on validation by 0.350."
    )
    assert "not chance" not in " ".join(lines) and "a bias towards validation" in lines[4]
    assert lines[-1].startswith("What these do not explain may be a shift between the validation")
    assert "with its own source model and threshold, not this notebook's" in lines[-1]
    assert validation_beside_test(CALM)[-1].startswith("no interval excludes 0")


def test_the_verdict_claims_about_95_percent_not_at_least():
    line = validation_beside_test(APART)[3]
    assert "98.3% per metric" in line and "all 3 intervals hold 0 together" in line
    assert (
        "in about 95% of runs (nominal: percentile bootstrap intervals run a little narrow" in line
    )
    assert "or more" not in line
    doc = " ".join(gap_intervals.__doc__.split())
    assert "in about 95% of runs (nominal" in doc and "95% or more" not in doc


def test_the_verdict_gives_each_gaps_direction_in_words():
    verdict = validation_beside_test(APART)[4]
    assert verdict == (
        "the sensitivity, specificity and balanced_accuracy intervals exclude 0, more than the "
        "noise of these patients: sensitivity higher on test by 0.054; specificity higher on "
        "validation by 0.410; balanced_accuracy higher on validation by 0.178."
    )


def test_the_verdict_reads_rates_moving_apart_as_test_scores_that_moved():
    apart = " ".join(validation_beside_test(APART))
    assert "One rate is higher on test and the other on validation: test's scores sit higher" in (
        apart
    )
    assert "a shift between the two sets moves every score" in apart
    assert "section 6" not in apart  # a model's own offset is absorbed by validation's threshold
    held = {**APART, "auroc": (0.97, 0.96, -0.01, 0.03)}
    assert "with AUROC within the noise (the ranking held): test's scores sit higher" in " ".join(
        validation_beside_test(held)
    )
    ranked = {**APART, "auroc": (0.97, 0.85, 0.08, 0.16)}
    ranked_text = " ".join(validation_beside_test(ranked))
    assert "the ranking changed as well" in ranked_text and "chosen epoch's" in ranked_text
    lower = {
        **APART,
        "sensitivity": (0.99, 0.94, 0.02, 0.08),
        "specificity": (0.55, 0.96, -0.5, -0.3),
    }
    assert "test's scores sit lower" in " ".join(validation_beside_test(lower))
    both_lower = {**APART, "sensitivity": (0.99, 0.90, 0.05, 0.13)}
    assert "One rate is higher" not in " ".join(validation_beside_test(both_lower))
    pooled = " ".join(validation_beside_test(APART, same_pool="train/"))
    assert "the threshold fitted to validation's noise, or chance" in pooled
    assert "test's scores sit" not in pooled


def test_the_verdict_warns_when_test_reuses_training_patient_ids():
    text = " ".join(validation_beside_test(APART, test_shares_ids=True))
    assert "Test reuses patient ids of the training data" in text
    assert "reuses patient ids" not in " ".join(validation_beside_test(APART))


def test_the_verdict_says_the_bias_explains_only_a_j_gap_in_validations_favour():
    def bias(gaps):
        return next(line for line in validation_beside_test(gaps) if "a bias towards" in line)

    assert "mainly in J = sensitivity + specificity - 1 (balanced accuracy = (J + 1) / 2)" in (
        bias(APART)
    )
    assert bias(APART).endswith("in validation's favour, as the balanced accuracy gap is; "
                                "how much of it, this comparison cannot say.")  # fmt: skip
    for_test = {**APART, "balanced_accuracy": (0.80, 0.90, -0.14, -0.06)}
    assert bias(for_test).endswith("; the balanced accuracy gap favours test.")
    within = {**APART, "balanced_accuracy": (0.90, 0.89, -0.02, 0.04)}
    assert bias(within).endswith(", and balanced accuracy's interval includes 0.")


def test_the_verdict_on_images_says_the_intervals_are_too_narrow_and_names_shared_children():
    for gaps in (APART, CALM):
        lines = validation_beside_test(gaps, unit="images", shared_children=True)
        assert "too narrow and flag a gap more often than 1 run in 20" in " ".join(lines)
        assert "Validation may share children with the training split" in " ".join(lines)
    by_patient = " ".join(validation_beside_test(APART))
    assert "too narrow" not in by_patient and "share children" not in by_patient


def test_the_same_pool_sentence_is_printed_with_or_without_a_gap():
    for gaps in (APART, CALM):
        lines = validation_beside_test(gaps, same_pool="train/")
        assert (
            "Test is a holdout of train/, as validation is, so no shift is expected" in (lines[-1])
        )
        assert "may be a shift" not in " ".join(lines) and "notebook 08" not in " ".join(lines)
    assert lines[-1].endswith("no shift is expected.")  # CALM: nothing to read as bias
    gap = validation_beside_test(APART, same_pool="train/")[-1]
    assert gap.endswith("read the gap as the bias above or as chance.")


def test_gap_intervals_test_balanced_accuracy_at_the_same_threshold():
    keys = ("sensitivity", "specificity", "balanced_accuracy")
    gaps = gap_intervals((Y4, P4), (Y4, 1 - P4), 0.5, keys=keys, n_boot=300)
    for side in (0, 1):
        rates = (gaps["sensitivity"][side] + gaps["specificity"][side]) / 2
        assert gaps["balanced_accuracy"][side] == pytest.approx(rates)
    assert validation_beside_test(gaps)[0].startswith("sensitivity: validation 0.600, test 0.400")
