"""What one threshold does: the confusion matrix, the rates, and the predictive values at a
prevalence the student chooses. The explorers of notebooks 04 and 08 only show these numbers.

Sensitivity and specificity belong to the model at a threshold: counted within each class, they
do not change when only the share of PNEUMONIA changes and each class's images stay alike (a
new site whose images differ moves them too: notebook 08). The predictive values do change with
the share. By Bayes' rule, at a prevalence π (the share of PNEUMONIA among the patients the model
is used on):

    PPV = sens·π / (sens·π + (1 − spec)·(1 − π))
    NPV = spec·(1 − π) / (spec·(1 − π) + (1 − sens)·π)

So a threshold whose flagged children are mostly sick on a ward where π = 0.6 can flag mostly
healthy ones in a screening clinic where π = 0.05: with sensitivity 0.9 and specificity 0.8, PPV
is 0.87 on the ward and 0.19 in the clinic (it falls under 0.5 wherever (1 − spec)/sens >
π/(1 − π)). The counts in the confusion matrix are the set's own, at its own prevalence; the PPV
and NPV columns are at π.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve

from medtl_helpers.metrics.rates import confusion, labels_and_probabilities, require_classes
from medtl_helpers.metrics.threshold import choose_threshold

COLUMNS = (
    "set", "threshold", "tn", "fp", "fn", "tp", "sensitivity", "specificity", "fpr",
    "prevalence", "ppv", "npv",
)  # fmt: skip


def predictive_values(sensitivity: float, specificity: float, prevalence: float) -> dict:
    """PPV and NPV of a test with these rates among patients of this prevalence (Bayes' rule).

    A value whose denominator is 0 (nobody flagged, or nobody cleared) is NaN: it is undefined,
    not 0 or 1.
    """
    for name, value in (("sensitivity", sensitivity), ("specificity", specificity)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")
    if not 0 < prevalence < 1:
        raise ValueError(f"prevalence must lie strictly between 0 and 1, got {prevalence}")
    flagged_sick = sensitivity * prevalence
    flagged_well = (1 - specificity) * (1 - prevalence)
    cleared_well = specificity * (1 - prevalence)
    cleared_sick = (1 - sensitivity) * prevalence
    return {
        "ppv": _share(flagged_sick, flagged_sick + flagged_well),
        "npv": _share(cleared_well, cleared_well + cleared_sick),
    }


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else math.nan


def operating_point(
    y: ArrayLike, p: ArrayLike, threshold: float, prevalence: float | None = None
) -> dict:
    """The confusion counts and rates of scores `p` at `threshold` (PNEUMONIA when p >= threshold),
    with PPV and NPV at `prevalence` (default: the set's own share of PNEUMONIA).

    `fpr` = 1 − specificity: with `sensitivity` it is the point on the ROC curve.
    """
    y, p = labels_and_probabilities(y, p)
    require_classes(y, "an operating point")
    counts = confusion(y, p, threshold)
    sens = counts["tp"] / (counts["tp"] + counts["fn"])
    spec = counts["tn"] / (counts["tn"] + counts["fp"])
    prevalence = float(y.mean()) if prevalence is None else float(prevalence)
    return {
        "threshold": float(threshold),
        **{k: counts[k] for k in ("tn", "fp", "fn", "tp")},
        "sensitivity": sens,
        "specificity": spec,
        "fpr": 1 - spec,
        "prevalence": prevalence,
        **predictive_values(sens, spec, prevalence),
    }


def operating_table(
    sets: Mapping[str, tuple[ArrayLike, ArrayLike]], threshold: float, prevalence: float
) -> pd.DataFrame:
    """One row per named set of (labels, scores): its operating point at `threshold`, with PPV and
    NPV at `prevalence`, in the columns of `COLUMNS`."""
    rows = [{"set": name, **operating_point(y, p, threshold, prevalence)} for name, (y, p) in
            sets.items()]  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


def threshold_marks(y: ArrayLike, p: ArrayLike, sensitivity_target: float) -> dict[str, float]:
    """The two thresholds the course chooses on validation predictions: Youden's J, and the
    highest one whose sensitivity reaches `sensitivity_target` (`choose_threshold`)."""
    return {
        "Youden's J": choose_threshold(y, p),
        f"sensitivity >= {sensitivity_target:g}": choose_threshold(
            y, p, rule="sensitivity", target=sensitivity_target
        ),
    }


def ppv_floor_threshold(
    y: ArrayLike, p: ArrayLike, prevalence: float, min_ppv: float = 0.5
) -> float | None:
    """The lowest threshold whose PPV at `prevalence` is at least `min_ppv`: below it, with
    `min_ppv` 0.5, the flagged patients are more often well than sick. PPV need not fall steadily
    as the threshold is lowered (a few NORMAL images scored near 1 make it dip near the top), so
    higher thresholds may fall under `min_ppv` too. It is the lowest score when flagging everyone
    already reaches `min_ppv` (a prevalence of at least `min_ppv`); None when no threshold does.
    Candidates are the scores, as in `choose_threshold`."""
    y, p = labels_and_probabilities(y, p)
    require_classes(y, "a PPV threshold")
    # every unique score is a threshold of the full curve, after one above them all (as `_pick`)
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    ppv = [predictive_values(s, 1 - f, prevalence)["ppv"] for s, f in zip(tpr[1:], fpr[1:])]
    reached = thresholds[1:][np.array(ppv) >= min_ppv]
    return float(reached.min()) if reached.size else None
