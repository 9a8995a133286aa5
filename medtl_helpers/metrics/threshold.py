"""Choosing the decision threshold on validation predictions, by Youden's J or a target sensitivity.

The threshold is part of the model: choose it on VALIDATION predictions, then report the test
metrics at that fixed threshold. Choosing it on the test set would flatter every number.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve

from medtl_helpers.metrics.rates import labels_and_probabilities, require_classes


def choose_threshold(
    y: ArrayLike, p: ArrayLike, rule: str = "youden", target: float = 0.95
) -> float:
    """Pick a decision threshold on VALIDATION predictions; never choose it on the test set.

    Candidates are the unique scores. `rule="youden"` maximises J = sensitivity + specificity - 1;
    ties go to the candidate closest to 0.5, then to the higher one. `rule="sensitivity"` returns
    the highest candidate whose sensitivity is at least `target`.
    """
    y, p = labels_and_probabilities(y, p)
    require_classes(y, "choosing a threshold")
    # Every unique score is a threshold of the full curve; the first point is an extra threshold
    # above them all (nothing flagged), which no one would choose.
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    candidates, sens, spec = thresholds[1:], tpr[1:], 1 - fpr[1:]
    if rule == "youden":
        j = sens + spec - 1
        # The tolerance treats J values that differ only by rounding as the tie they are.
        best = candidates[np.isclose(j, j.max(), rtol=0, atol=1e-12)]
        distance = np.abs(best - 0.5)
        return float(best[np.isclose(distance, distance.min(), rtol=0, atol=1e-12)].max())
    if rule == "sensitivity":
        if not 0 < target <= 1:
            raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
        return float(candidates[sens >= target].max())
    raise ValueError(f"unknown rule {rule!r}; use 'youden' or 'sensitivity'")
