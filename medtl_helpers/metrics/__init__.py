"""Predictions and the metrics computed from them: AUROC and the rates at a threshold, threshold
choice, bootstrap intervals and calibration. Training's validation uses them too."""

from medtl_helpers.metrics.predict import predict_proba, run_batched
from medtl_helpers.metrics.scores import (
    METRICS,
    accuracy,
    auroc,
    balanced_accuracy,
    binary_metrics,
    bootstrap_ci,
    calibration_bins,
    choose_threshold,
    confusion,
    expected_calibration_error,
    labels_and_probabilities,
    metrics_table,
    sensitivity,
    specificity,
)

__all__ = [
    "METRICS",
    "accuracy",
    "auroc",
    "balanced_accuracy",
    "binary_metrics",
    "bootstrap_ci",
    "calibration_bins",
    "choose_threshold",
    "confusion",
    "expected_calibration_error",
    "labels_and_probabilities",
    "metrics_table",
    "predict_proba",
    "run_batched",
    "sensitivity",
    "specificity",
]
