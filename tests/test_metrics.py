"""AUROC, the rates, threshold choice and predictions on hand-computed examples (the arithmetic
is in the comments), cross-checked against scikit-learn and against the definitions by brute force.

The bootstrap and calibration have their own test files.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import random_scores
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    recall_score,
    roc_auc_score,
)
from torch import nn

import medtl_helpers.metrics
from medtl_helpers.data.augment import to_model_input
from medtl_helpers.metrics import (
    METRICS,
    accuracy,
    auroc,
    balanced_accuracy,
    binary_metrics,
    choose_threshold,
    confusion,
    labels_and_probabilities,
    metrics_table,
    predict_proba,
    sensitivity,
    specificity,
)

# Six NORMAL then four PNEUMONIA cases. At threshold 0.5 (p >= 0.5 is positive):
# negatives 0.1 0.2 0.3 0.45 -> tn = 4; negatives 0.5 0.7 -> fp = 2 (0.5 counts as positive);
# positives 0.5 0.6 0.9 -> tp = 3; positive 0.2 -> fn = 1.
Y10 = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
P10 = [0.1, 0.2, 0.3, 0.45, 0.5, 0.7, 0.5, 0.6, 0.9, 0.2]


def test_auroc_hand_example():
    # Pairs (positive, negative): 0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes, 0.8>0.4 yes -> 3/4.
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auroc(torch.tensor([0, 0, 1, 1]), torch.tensor([0.1, 0.4, 0.35, 0.8])) == 0.75


def test_auroc_counts_ties_as_half():
    assert auroc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]) == 0.5
    # Positive 0.6: beats 0.2 (1) and ties 0.6 (1/2); positive 0.9 beats both (2) -> 3.5/4.
    assert auroc([0, 0, 1, 1], [0.2, 0.6, 0.6, 0.9]) == pytest.approx(0.875)


def test_auroc_matches_sklearn_on_random_data():
    for seed in range(3):
        y, p = random_scores(500, seed)
        assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_auroc_is_the_share_of_pairs_won_with_ties_as_half():
    for seed in range(3):
        y, p = random_scores(60, seed)
        pos, neg = p[y == 1][:, None], p[y == 0][None, :]
        wins = (pos > neg).sum() + 0.5 * (pos == neg).sum()
        assert (pos == neg).any()  # the rounding in random_scores makes tied pairs
        assert auroc(y, p) == pytest.approx(wins / (pos.size * neg.size), abs=1e-12)


def test_single_class_and_bad_input_errors():
    with pytest.raises(ValueError, match="AUROC needs both classes; the split has only NORMAL"):
        auroc([0, 0, 0], [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="the split has only PNEUMONIA images"):
        auroc([1, 1], [0.1, 0.9])
    with pytest.raises(ValueError, match="sensitivity needs PNEUMONIA images"):
        sensitivity([0, 0], [0.1, 0.9])
    with pytest.raises(ValueError, match="3 labels but p has 2"):
        confusion([0, 1, 1], [0.1, 0.9], 0.5)
    with pytest.raises(ValueError, match="labels must be 0"):
        accuracy([0, 0.5], [0.1, 0.9])


def test_confusion_and_threshold_metrics():
    assert confusion(Y10, P10, 0.5) == {"tp": 3, "fp": 2, "tn": 4, "fn": 1}
    assert accuracy(Y10, P10, 0.5) == pytest.approx(0.7)  # (3 + 4) / 10
    assert sensitivity(Y10, P10, 0.5) == pytest.approx(0.75)  # 3 / (3 + 1)
    assert specificity(Y10, P10, 0.5) == pytest.approx(4 / 6)  # 4 / (4 + 2)
    assert balanced_accuracy(Y10, P10, 0.5) == pytest.approx((0.75 + 4 / 6) / 2)
    # Above every score nothing is flagged: all four positives are missed.
    assert confusion(Y10, P10, 0.95) == {"tp": 0, "fp": 0, "tn": 6, "fn": 4}


def test_confusion_and_rates_match_sklearn():
    for seed in range(3):
        y, p = random_scores(200, seed)
        for threshold in (0.2, 0.35, 0.5, float(p[0])):  # p[0] puts a tie on the threshold
            pred = (p >= threshold).astype(int)
            (tn, fp), (fn, tp) = confusion_matrix(y, pred, labels=[0, 1])
            assert confusion(y, p, threshold) == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
            assert accuracy(y, p, threshold) == pytest.approx(accuracy_score(y, pred))
            assert sensitivity(y, p, threshold) == pytest.approx(recall_score(y, pred, pos_label=1))
            assert specificity(y, p, threshold) == pytest.approx(recall_score(y, pred, pos_label=0))
            assert balanced_accuracy(y, p, threshold) == pytest.approx(
                balanced_accuracy_score(y, pred)
            )


def test_binary_metrics_keys_and_values():
    values = binary_metrics(Y10, P10, 0.5)
    assert list(values) == [*METRICS, "threshold", "n"]
    assert values["n"] == 10 and values["threshold"] == 0.5
    assert values["balanced_accuracy"] == pytest.approx(0.7083333, abs=1e-6)


def test_youden_threshold_hand_example():
    # y = 0 0 0 1 1 1, p = .1 .3 .6 | .4 .7 .8. J = sens + spec - 1 at each unique score:
    # .1: 1 + 0 - 1 = 0; .3: 1 + 1/3 - 1 = 1/3; .4: 1 + 2/3 - 1 = 2/3; .6: 2/3 + 2/3 - 1 = 1/3;
    # .7: 2/3 + 1 - 1 = 2/3; .8: 1/3 + 1 - 1 = 1/3. Tie .4 vs .7; .4 is closer to 0.5.
    assert choose_threshold([0, 0, 0, 1, 1, 1], [0.1, 0.3, 0.6, 0.4, 0.7, 0.8]) == 0.4
    # Perfect separation: J = 1 only at 0.4.
    assert choose_threshold([0, 0, 0, 1, 1, 1], [0.1, 0.3, 0.35, 0.4, 0.7, 0.8]) == 0.4
    # y = 0 1 0 1, p = .1 .4 .5 .6: J at .1 = 0; .4: 1 + 1/2 - 1 = 1/2; .5: 1/2 + 1/2 - 1 = 0;
    # .6: 1/2 + 1 - 1 = 1/2. Tie .4 vs .6, both 0.1 from 0.5, so the higher one wins.
    assert choose_threshold([0, 1, 0, 1], [0.1, 0.4, 0.5, 0.6]) == 0.6


def test_sensitivity_target_threshold():
    y, p = [0, 0, 0, 1, 1, 1, 1], [0.1, 0.2, 0.5, 0.15, 0.3, 0.6, 0.9]
    # Catching all 4 positives needs t <= 0.15; catching 3 of 4 (0.75) needs t <= 0.3.
    assert choose_threshold(y, p, rule="sensitivity", target=0.95) == 0.15
    assert choose_threshold(y, p, rule="sensitivity", target=0.75) == 0.3
    assert sensitivity(y, p, 0.3) >= 0.75 > sensitivity(y, p, 0.5)
    with pytest.raises(ValueError, match="unknown rule 'best'"):
        choose_threshold(y, p, rule="best")
    with pytest.raises(ValueError, match="target sensitivity"):
        choose_threshold(y, p, rule="sensitivity", target=1.5)


def test_sensitivity_target_met_exactly_counts():
    # 5 PNEUMONIA cases; at 0.7 one of five is caught: sensitivity 1/5 is "at least 0.2". Worked
    # out as 1 - 4/5 it would round to 0.19999999999999996 and 0.7 would be passed over.
    y, p = [0, 0, 1, 1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert choose_threshold(y, p, rule="sensitivity", target=0.2) == 0.7
    assert choose_threshold(y, p, rule="sensitivity", target=0.4) == 0.6


def chosen_by_brute_force(y, p, rule, target=0.95):
    """The documented rules applied to exact fractions, one candidate score at a time."""
    rows = []
    for t in np.unique(p):
        c = confusion(y, p, t)
        sens = Fraction(c["tp"], c["tp"] + c["fn"])
        rows.append((t, sens, sens + Fraction(c["tn"], c["tn"] + c["fp"]) - 1))
    if rule == "sensitivity":
        # The target is typed as a float (0.8 is a hair above 4/5), so compare the rounded fraction.
        return max(t for t, sens, _ in rows if float(sens) >= target)
    best = max(j for *_, j in rows)
    tied = [t for t, _, j in rows if j == best]
    closest = min(abs(Fraction(t) - Fraction(1, 2)) for t in tied)
    return max(t for t in tied if abs(Fraction(t) - Fraction(1, 2)) == closest)


def test_choose_threshold_follows_its_documented_rules():
    for seed in range(6):
        y, p = random_scores(int(np.random.default_rng(seed).integers(10, 120)), seed)
        assert choose_threshold(y, p) == chosen_by_brute_force(y, p, "youden")
        for target in (0.5, 0.8, 0.95, 1.0):
            got = choose_threshold(y, p, rule="sensitivity", target=target)
            assert got == chosen_by_brute_force(y, p, "sensitivity", target), (seed, target)


def test_labels_and_probabilities_flatten_and_check():
    y, p = labels_and_probabilities(torch.tensor([[1], [0]]), [[0.7], [0.2]])
    assert y.dtype == np.int64 and p.dtype == np.float64
    assert y.tolist() == [1, 0] and p.tolist() == [0.7, 0.2]
    with pytest.raises(ValueError, match="y has 2 labels but p has 3 probabilities"):
        labels_and_probabilities([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"labels must be 0 \(NORMAL\) or 1 \(PNEUMONIA\)"):
        labels_and_probabilities([0, 2], [0.1, 0.2])


def test_metrics_table_is_a_data_frame_one_metric_per_row():
    values = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.5)
    intervals = {name: (0.5, 1.0) for name in METRICS}
    table = metrics_table(values, intervals)
    assert list(table.index) == [*METRICS, "threshold", "n"] and table.index.name == "metric"
    assert list(table.columns) == ["value", "low", "high"]
    assert table.loc["auroc"].tolist() == [0.75, 0.5, 1.0]
    assert table.loc["accuracy", "value"] == 0.75 and table.loc["n", "value"] == 4
    assert table.loc["threshold", "value"] == 0.5 and np.isnan(table.loc["threshold", "low"])
    plain = metrics_table(values, None)
    assert list(plain.columns) == ["value"] and plain["value"].tolist() == table["value"].tolist()


def test_package_exports_every_public_name():
    assert sorted(medtl_helpers.metrics.__all__) == [
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
        "operating_point",
        "operating_table",
        "paired_difference",
        "ppv_floor_threshold",
        "predict_proba",
        "predictive_values",
        "run_batched",
        "sensitivity",
        "specificity",
        "threshold_marks",
        "threshold_spread",
    ]
    for name in medtl_helpers.metrics.__all__:
        assert getattr(medtl_helpers.metrics, name) is not None, name


def test_predict_proba_on_tiny_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2), nn.BatchNorm1d(2))
    model.train()
    model[2].eval()  # as freezing.train_mode leaves a frozen BatchNorm
    images = torch.randint(0, 256, (5, 1, 16, 16), dtype=torch.uint8)
    probs = predict_proba(model, images, batch_size=2, image_size=8)
    assert probs.shape == (5,) and probs.dtype == np.float64
    assert ((probs >= 0) & (probs <= 1)).all()
    assert model.training and model[1].training and not model[2].training
    model.eval()
    with torch.no_grad():
        expected = model(to_model_input(images, 8)).softmax(dim=1)[:, 1].double().numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-6)
    assert not model.training  # eval mode is restored as well


def test_nan_probabilities_are_refused_not_scored():
    from medtl_helpers.metrics import auroc

    with pytest.raises(ValueError, match="2 of 4 probabilities are NaN or infinite.*diverged"):
        auroc([0, 1, 0, 1], [0.1, float("nan"), 0.2, float("inf")])
