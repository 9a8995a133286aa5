"""AUROC and the rates at a threshold that the course reports for pneumonia (1) vs normal (0).

`y` holds 0/1 labels and `p` the predicted probability of PNEUMONIA; numpy arrays, torch tensors
and lists are all accepted. A case is predicted positive when `p >= threshold`. Accuracy alone
flatters a model on a 3:1 imbalanced test set, so every report also carries AUROC, sensitivity,
specificity and balanced accuracy, each with a bootstrap interval (see `metrics.bootstrap`).

AUROC and the confusion counts come from scikit-learn; the rates are written out from the counts
because their definitions are what the course teaches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike
from sklearn.metrics import confusion_matrix, roc_auc_score

from medtl_helpers.data.records import CLASSES

METRICS = ("auroc", "accuracy", "sensitivity", "specificity", "balanced_accuracy")


def labels_and_probabilities(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """`y` as int64 0/1 and `p` as float64, both flat numpy; a clear error on a mismatch."""
    y, p = (
        v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for v in (y, p)
    )
    y, p = y.reshape(-1), p.reshape(-1).astype(np.float64)
    if y.shape != p.shape:
        raise ValueError(f"y has {y.size} labels but p has {p.size} probabilities")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 ({CLASSES[0]}) or 1 ({CLASSES[1]}), got {np.unique(y)}")
    if not np.isfinite(p).all():
        raise ValueError(
            f"{int((~np.isfinite(p)).sum())} of {p.size} probabilities are NaN or infinite: the "
            "model's outputs are not numbers, which happens when training diverged. Retrain with "
            "a smaller learning rate; no metric is computed from such scores."
        )
    return y.astype(np.int64), p


def require_classes(y: np.ndarray, metric: str, labels: tuple[int, ...] = (0, 1)) -> None:
    """Raise an error naming the missing class when `y` lacks one that `metric` needs.

    Checked before calling scikit-learn, whose own error doesn't say which class is missing.
    """
    for label in labels:
        if not (y == label).any():
            if labels == (0, 1):
                raise ValueError(
                    f"{metric} needs both classes; the split has only {CLASSES[1 - label]} images"
                )
            raise ValueError(f"{metric} needs {CLASSES[label]} images; the split has none")


def auroc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve: how often a PNEUMONIA case outscores a NORMAL one.

    A tied pair counts as half a win, which is what the area under the stepped curve gives.
    """
    y, p = labels_and_probabilities(y, p)
    require_classes(y, "AUROC")
    return float(roc_auc_score(y, p))


def confusion(y: ArrayLike, p: ArrayLike, threshold: float) -> dict[str, int]:
    """Counts of true/false positives/negatives, predicting PNEUMONIA when p >= threshold."""
    y, p = labels_and_probabilities(y, p)
    predicted = (p >= threshold).astype(np.int64)
    # labels=[0, 1] keeps the matrix 2x2 when the labels or the predictions hold one class only.
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    return {"tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)}


def accuracy(y: ArrayLike, p: ArrayLike, threshold: float = 0.5) -> float:
    """Share of all cases classified correctly."""
    c = confusion(y, p, threshold)
    return (c["tp"] + c["tn"]) / sum(c.values())


def sensitivity(y: ArrayLike, p: ArrayLike, threshold: float = 0.5) -> float:
    """Recall of PNEUMONIA: the share of sick patients the model flags."""
    require_classes(labels_and_probabilities(y, p)[0], "sensitivity", labels=(1,))
    c = confusion(y, p, threshold)
    return c["tp"] / (c["tp"] + c["fn"])


def specificity(y: ArrayLike, p: ArrayLike, threshold: float = 0.5) -> float:
    """Recall of NORMAL: the share of healthy patients the model leaves alone."""
    require_classes(labels_and_probabilities(y, p)[0], "specificity", labels=(0,))
    c = confusion(y, p, threshold)
    return c["tn"] / (c["tn"] + c["fp"])


def balanced_accuracy(y: ArrayLike, p: ArrayLike, threshold: float = 0.5) -> float:
    """Mean of sensitivity and specificity: accuracy as if both classes were equally common."""
    return (sensitivity(y, p, threshold) + specificity(y, p, threshold)) / 2


def binary_metrics(y: ArrayLike, p: ArrayLike, threshold: float) -> dict:
    """Every reported metric at one fixed threshold, plus the threshold and the number of cases."""
    y, p = labels_and_probabilities(y, p)
    values = {"auroc": auroc(y, p)}
    for name, fn in zip(METRICS[1:], (accuracy, sensitivity, specificity, balanced_accuracy)):
        values[name] = fn(y, p, threshold)
    return {**values, "threshold": float(threshold), "n": int(y.size)}


def metrics_table(values: dict, intervals: dict | None = None) -> pd.DataFrame:
    """One row per metric (threshold and n last) with its value, and, when `intervals` is given,
    the interval's low and high ends (NaN for a metric without one)."""
    names = [name for name in METRICS if name in values]
    names += [name for name in values if name not in names and name not in ("threshold", "n")]
    names += [name for name in ("threshold", "n") if name in values]
    table = pd.DataFrame({"value": [float(values[name]) for name in names]}, index=names)
    table.index.name = "metric"
    if intervals:
        nan = (float("nan"), float("nan"))
        table["low"], table["high"] = zip(*(intervals.get(name, nan) for name in names))
    return table
