"""A new hospital's own images: the data's test split as a second site, and what repairs it.

Train on the Kermany `train/` folder and score its official `test/` folder, and the model meets
images the data's authors set apart for testing, not drawn from the pool it was trained and
validated on: a real shift, of a size no simulation sets. `new_site` returns that split when
the course data have one (a given `test/` folder, or PneumoniaMNIST's test split, which MedMNIST
calls its source's validation set: 624 images, as many as the `test/` folder), and otherwise a
site simulated from the patient-level holdout with an exposure change and the `test/` folder's
share of PNEUMONIA, saying so in its banner. `site_rates` scores one model at one threshold with
AUROC, sensitivity, specificity, PPV and ECE, each with an interval over whole patients;
`repairs_table` puts every repair beside the unrepaired model on the same patients, with a
verdict computed from paired intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from medtl_helpers.adaptation.prior import _weighted_metrics, prevalence_metrics
from medtl_helpers.adaptation.results import result_row, with_interval
from medtl_helpers.data.records import ImageSet
from medtl_helpers.data.sites import SiteSpec, acquire, marker_mask, prevalence_index
from medtl_helpers.data.sources import CourseData
from medtl_helpers.metrics.bootstrap import _group_index, _resample_weights
from medtl_helpers.metrics.paired import paired_difference

# The official test/ folder: 390 PNEUMONIA and 234 NORMAL images (Kermany et al. 2018).
TEST_FOLDER_SHARE = 390 / 624
SIMULATED = SiteSpec("simulated new site", gamma=0.7, pneumonia_share=TEST_FOLDER_SHARE)
RATES = ("auroc", "sensitivity", "specificity", "ppv", "ece")


@dataclass
class NewSite:
    """The second site's images, whether they are real, and where they came from."""

    data: ImageSet
    real: bool
    origin: str

    def banner(self) -> str:
        if self.real:
            return f"New site: {self.origin} (real images, not simulated)"
        return (
            "*** SIMULATED NEW SITE: the course data have no test split of their own, so the "
            f"'new site' is {self.origin}. Its shift is one chosen here, not a hospital's: give "
            "a Kermany folder with test/ (MEDTL_DATA) to see a real one. ***"
        )


def new_site(data: CourseData, seed: int = 0, spec: SiteSpec = SIMULATED) -> NewSite:
    """The data's own test split when there is one; otherwise `spec` applied to the holdout.

    A given `test/` folder (`data.test_given`) and PneumoniaMNIST's test split are real second
    sets: set apart by the data's authors, not drawn from the training pool. Whether they hold
    none of the training children is another matter: the official `test/` folder reuses some
    patient ids of `train/` (the data banner counts them), and MedMNIST publishes no patient
    ids. A holdout of `train/` is no second set (it was drawn from the same pool), so it is
    acquired as `spec` says, with whole patients kept to `spec.pneumonia_share`.
    """
    if data.test_given or data.source == "pneumoniamnist":
        return NewSite(data.test, True, f"the {data.source} test split ({data.origin})")
    part = data.test
    if spec.pneumonia_share is not None:
        part = part.subset(prevalence_index(part, spec.pneumonia_share, seed))
    images = acquire(part.images, spec, marker_mask(part.labels, spec, seed), seed)
    simulated = ImageSet(images, part.labels, part.patients, f"{part.source} / {spec.name}")
    origin = f"the patient-level test holdout of the {data.source} course data, {spec.describe()}"
    return NewSite(simulated, False, origin)


def site_rates(
    y: ArrayLike, p: ArrayLike, threshold: float, patients, n_boot: int = 1000, seed: int = 0
) -> dict[str, float]:
    """AUROC, sensitivity, specificity, PPV and ECE at `threshold`, each with `_low` and `_high`:
    95% intervals over whole patients. PPV is read at this set's own share of PNEUMONIA; ECE
    (`prevalence_metrics`) is the calibration error of the probabilities, whatever the threshold."""
    row = result_row("", "", y, p, threshold, patients, n_boot, seed)
    extra = prevalence_metrics(y, p, threshold, patients, n_boot, seed)
    out = {"n": row["n"], "prevalence": extra["prevalence"]}
    for name, source in (("auroc", row), ("sensitivity", row), ("specificity", row)):
        out.update({k: source[k] for k in (name, f"{name}_low", f"{name}_high")})
    for name in ("ppv", "ece"):
        out.update({k: extra[k] for k in (name, f"{name}_low", f"{name}_high")})
    return out


@dataclass(frozen=True)
class Repair:
    """One arm of the table: probabilities on the scored patients, its threshold, what it used."""

    p: np.ndarray
    threshold: float
    needs: str


def paired_ece(
    y: ArrayLike, p_a: ArrayLike, p_b: ArrayLike, patients, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """(ECE of b - ECE of a, low, high): a 95% interval paired over the same resampled patients.

    ECE is `prevalence_metrics`' (10 equal bins of p), computed for both arms on each resample.
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    p_a, p_b = (np.asarray(p, dtype=np.float64).reshape(-1) for p in (p_a, p_b))
    weights = _resample_weights(np.random.default_rng(seed), _group_index(patients, y.size), n_boot)
    whole = np.ones((1, y.size))
    point, resampled = (
        _weighted_metrics(w, y, p_b, 0.5, 10)["ece"] - _weighted_metrics(w, y, p_a, 0.5, 10)["ece"]
        for w in (whole, weights)
    )
    low, high = np.percentile(resampled, [2.5, 97.5])
    return float(point[0]), float(low), float(high)


def _verdict(differences: dict[str, tuple[float, float, float]]) -> str:
    moved = [
        f"{name} {'up' if low > 0 else 'down'} {d:+.3f}"
        for name, (d, low, high) in differences.items()
        if low > 0 or high < 0
    ]
    return "; ".join(moved) if moved else "no change beyond the noise"


def repairs_table(
    repairs: dict[str, Repair],
    y: ArrayLike,
    patients,
    baseline: str = "source model",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per repair, all scored on the same patients: each rate (and ECE) with its 95%
    interval, what the repair needs, and a verdict against `baseline` on AUROC, sensitivity,
    specificity and ECE.

    The verdict names each metric whose 95% interval of repair - baseline, paired over the same
    patients (`paired_difference`, `paired_ece`), excludes 0, with its difference; "no change
    beyond the noise" where none does (not proof that the two are the same). A row that only
    moves the threshold (or moves every score by one monotone map and keeps the threshold)
    changes the decisions of every case between the two thresholds the same way, so its
    sensitivity or specificity verdict follows by construction once more than a few patients lie
    there.
    """
    base = repairs[baseline]
    rows = {}
    for name, arm in repairs.items():
        rates = site_rates(y, arm.p, arm.threshold, patients, n_boot, seed)
        row = {r: with_interval(rates, r, digits=3) for r in RATES}
        row.update({"threshold": round(arm.threshold, 3), "needs": arm.needs})
        if name == baseline:
            row["verdict"] = "(the baseline)"
        else:
            diff = paired_difference(
                y, base.p, arm.p, base.threshold, arm.threshold, n_boot, seed, groups=patients
            )
            tested = {k: diff[k] for k in RATES[:3]}
            tested["ece"] = paired_ece(y, base.p, arm.p, patients, n_boot, seed)
            row["verdict"] = _verdict(tested)
        rows[name] = row
    return pd.DataFrame(rows).T
