"""Predictions and the metrics computed from them: AUROC and the rates at a threshold, threshold
choice, bootstrap intervals and calibration. Training's validation uses them too.

`rates` holds AUROC, the confusion counts and the rates, `threshold` the threshold choice and
its bootstrap spread, `bootstrap` the intervals, `paired` the paired interval of a difference
between two models, `calibration` the calibration bins and error, `operating_point` what one
threshold does (and the predictive values at another prevalence), `predict` the model runs.
"""

from medtl_helpers.metrics.bootstrap import bootstrap_ci
from medtl_helpers.metrics.calibration import calibration_bins, expected_calibration_error
from medtl_helpers.metrics.operating_point import (
    operating_point,
    operating_table,
    ppv_floor_threshold,
    predictive_values,
    threshold_marks,
)
from medtl_helpers.metrics.paired import difference_table, difference_verdict, paired_difference
from medtl_helpers.metrics.predict import predict_proba, run_batched
from medtl_helpers.metrics.rates import (
    METRICS,
    accuracy,
    auroc,
    balanced_accuracy,
    binary_metrics,
    confusion,
    labels_and_probabilities,
    metrics_table,
    sensitivity,
    specificity,
)
from medtl_helpers.metrics.threshold import choose_threshold, threshold_spread

__all__ = [
    "threshold_marks",
    "predictive_values",
    "ppv_floor_threshold",
    "operating_table",
    "operating_point",
    "METRICS",
    "accuracy",
    "auroc",
    "balanced_accuracy",
    "binary_metrics",
    "bootstrap_ci",
    "calibration_bins",
    "choose_threshold",
    "confusion",
    "difference_table",
    "difference_verdict",
    "expected_calibration_error",
    "labels_and_probabilities",
    "metrics_table",
    "paired_difference",
    "predict_proba",
    "run_batched",
    "sensitivity",
    "specificity",
    "threshold_spread",
]
