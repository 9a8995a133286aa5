"""The test report: metrics with intervals, the JSON file, and the comparison with published work.

`evaluation_report` computes every metric at a threshold fixed beforehand (on validation) with 95%
bootstrap intervals; `write_report` saves it with the same keys as `python -m medtl_helpers
evaluate --json`. `compare_with_published` puts the measured values beside the published results
for this dataset, and `comparison_caveats` says, for the data actually used, why the rows are not
directly comparable.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from medtl_helpers.atomic import write_json
from medtl_helpers.config import device_label, precision_label
from medtl_helpers.errors import in_terms
from medtl_helpers.metrics import binary_metrics, bootstrap_ci, metrics_table
from medtl_helpers.training import History

# Kermany et al., "Identifying medical diagnoses and treatable diseases by image-based deep
# learning", Cell 172(5):1122-1131 (2018). Yang et al., "MedMNIST v2", Scientific Data 10:41
# (2023), benchmark table: ResNet-18 trained from scratch on 28 px images resized to 224 px.
PUBLISHED = (
    {
        "result": "Kermany et al. 2018 (Inception-v3, ImageNet weights)",
        "test set": "official test/ (624 images)",
        "model chosen on": "unclear",
        "accuracy": 0.928,
        "AUROC": 0.968,
    },
    {
        "result": "Yang et al. 2023, MedMNIST v2 (ResNet-18, random init, 28 px resized to 224)",
        "test set": "PneumoniaMNIST test (624 images)",
        "model chosen on": "validation",
        "accuracy": 0.864,
        "AUROC": 0.956,
    },
)


def evaluation_report(
    y, p, threshold: float, n_boot: int = 1000, seed: int = 0, groups=None
) -> dict:
    """`binary_metrics` at the given threshold plus `ci95`: a (low, high) interval per metric.

    Pass `groups=<set>.patients` (`test.patients`, or `val.patients` for validation) to resample
    whole children in the bootstrap (see `bootstrap_ci`); `resampled` records which was done
    ("images" when every image has its own id).
    """
    values = binary_metrics(y, p, threshold)
    intervals = bootstrap_ci(y, p, threshold, n_boot=n_boot, seed=seed, groups=groups)
    # With one id per image (PneumoniaMNIST's ids), resampling patients is resampling images.
    by_patient = groups is not None and len(set(groups)) < values["n"]
    return {**values, "resampled": "patients" if by_patient else "images", "ci95": intervals}


def report_table(report: dict) -> pd.DataFrame:
    """The report as `metrics_table` shows it: one metric per row, its 95% interval's low and high.

    What the bootstrap resampled (whole patients or single images) is `report["resampled"]`:
    say it next to the table, as `evaluate` on the command line and notebook 04 do.
    """
    values = {k: v for k, v in report.items() if k not in ("ci95", "resampled")}
    return metrics_table(values, report.get("ci95"))


def write_report(path: str | Path, report: dict, **extra: object) -> Path:
    """Write the report as JSON (auroc, accuracy, sensitivity, specificity, threshold, n, ...).

    A write that fails (a full disk, a read-only folder) raises WriteError naming the file.
    """
    plain = {k: v for k, v in report.items() if k != "ci95"}
    plain["ci95"] = {k: list(v) for k, v in report.get("ci95", {}).items()}
    elsewhere = in_terms("give write_report another path", "give --json another path")
    return write_json(path, {**plain, **extra}, elsewhere=elsewhere)


OFFICIAL_TEST_IMAGES = 624
START = {"random": "random init", "imagenet": "ImageNet weights"}  # model.medtl_weights


def compare_with_published(
    report: dict, test_set: str, chosen_on: str = "validation", weights: str | None = None
):
    """A DataFrame: the published results, then this run's measured accuracy and AUROC.

    `weights` (the model's `medtl_weights`: "imagenet" or "random") is said in the row's name,
    so a run from random initialisation is never read as the published ImageNet recipe.
    """
    ours = {
        "result": "this notebook" + (f" ({START.get(weights, weights)})" if weights else ""),
        "test set": test_set,
        "model chosen on": chosen_on,
        "accuracy": report["accuracy"],
        "AUROC": report["auroc"],
    }
    return pd.DataFrame([*PUBLISHED, ours]).set_index("result")


def comparison_caveats(
    source: str,
    notes: list[str] | tuple[str, ...] = (),
    weights: str | None = None,
    test_images: int | None = None,
    test_share: float | None = None,
) -> list[str]:
    """Why the measured row differs from the published ones, for the data source, the starting
    weights, the number of test images actually used (a profile may cap it) and the share of
    PNEUMONIA among them (`test_share`), on which accuracy depends and AUROC does not."""
    share = "" if test_share is None else f" (PNEUMONIA is {test_share:.1%} of ours)"
    lines = [
        "Kermany et al. report one 624-image test set, and their paper does not make clear that "
        "no choice (model, epoch, threshold) was made on it; any that was makes their numbers "
        "optimistic. Here the model and threshold were chosen on validation only.",
        "Our accuracy is taken at Youden's threshold, chosen on validation, which maximises "
        "sensitivity + specificity (balanced accuracy), not accuracy; MedMNIST's evaluator "
        "(getACC) takes accuracy at p > 0.5, and we found no threshold rule stated by Kermany "
        "et al. Accuracy also moves with the test set's share of PNEUMONIA" + share + ", which "
        "differs between test sets; AUROC depends on neither.",
    ]
    if weights == "random":
        lines.append(
            "This run trained from random initialisation (MEDTL_PRETRAINED=none, or the quick "
            "profile's default), while Kermany et al. fine-tuned ImageNet weights: the gap also "
            "measures the starting point, not only the recipe."
        )
    if source == "synthetic":
        lines.insert(
            0,
            "SYNTHETIC DATA: these numbers say nothing clinically and cannot be compared with "
            "any published result; they only show that the code runs.",
        )
    holdout = any("holdout" in note for note in notes)
    if source == "kermany-folder" and holdout:
        lines.append(
            "Our test set is a patient-level holdout of train/, the pool validation was drawn "
            "from, not the official 624-image test/ folder, which did not come from that pool: a "
            "score on a holdout of train/ need not carry over to that folder."
        )
    elif source == "kermany-folder":
        lines.append("Our test set is the official test/ folder, the one the papers used.")
    elif source == "pneumoniamnist":
        lines.append(
            "PneumoniaMNIST's test split holds the same 624 images as the official test/ "
            "folder, downscaled by MedMNIST and resized here to the profile's image size."
        )
    given = source == "pneumoniamnist" or (source == "kermany-folder" and not holdout)
    if given and test_images is not None and test_images < OFFICIAL_TEST_IMAGES:
        lines.append(
            f"This run scored {test_images} test images, the papers all {OFFICIAL_TEST_IMAGES} "
            "of the official split (the quick profile and MEDTL_MAX_IMAGES cap the evaluation "
            "images): its intervals are wider than a run on the whole split would give."
        )
    return lines


def throughput_line(history: History, device: torch.device | str, image_size: int) -> str:
    """Median training images/s over the epochs, with the device, image size and precision.

    Each epoch's rate times the training loop alone (augmentation, forward, backward, optimizer
    step), not the validation pass `fit` runs after it.
    """
    speeds = sorted(history.column("images_per_s"))
    if not speeds:
        raise ValueError("the history has no epochs: train first")
    median = speeds[len(speeds) // 2]
    return (
        f"training throughput: {median:,.0f} images/s (median of {len(speeds)} epochs) on "
        f"{device_label(device)}, {image_size} px, {precision_label(device)}"
    )
