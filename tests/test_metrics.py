"""Metrics on hand-computed examples; the arithmetic is in the comments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medtl_helpers.data.augment import to_model_input
from medtl_helpers.metrics import (
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
    predict_proba,
    sensitivity,
    specificity,
)

# Six NORMAL then four PNEUMONIA cases. At threshold 0.5 (p >= 0.5 is positive):
# negatives 0.1 0.2 0.3 0.45 -> tn = 4; negatives 0.5 0.7 -> fp = 2 (0.5 counts as positive);
# positives 0.5 0.6 0.9 -> tp = 3; positive 0.2 -> fn = 1.
Y10 = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
P10 = [0.1, 0.2, 0.3, 0.45, 0.5, 0.7, 0.5, 0.6, 0.9, 0.2]


def random_scores(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + rng.normal(0.35, 0.2, n), 0, 1).round(2)  # rounding makes ties
    return y, p


def test_auroc_hand_example():
    # Pairs (positive, negative): 0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes, 0.8>0.4 yes -> 3/4.
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auroc(torch.tensor([0, 0, 1, 1]), torch.tensor([0.1, 0.4, 0.35, 0.8])) == 0.75


def test_auroc_counts_ties_as_half():
    assert auroc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]) == 0.5
    # Positive 0.6: beats 0.2 (1) and ties 0.6 (1/2); positive 0.9 beats both (2) -> 3.5/4.
    assert auroc([0, 0, 1, 1], [0.2, 0.6, 0.6, 0.9]) == pytest.approx(0.875)


def test_auroc_matches_sklearn_on_random_data():
    roc_auc_score = pytest.importorskip("sklearn.metrics").roc_auc_score
    for seed in range(3):
        y, p = random_scores(500, seed)
        assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


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


def test_bootstrap_contains_estimate_and_is_deterministic():
    y, p = random_scores(300)
    point = binary_metrics(y, p, 0.5)
    ci = bootstrap_ci(y, p, 0.5, n_boot=300, seed=1)
    assert set(ci) == set(METRICS)
    for name, (low, high) in ci.items():
        assert low <= point[name] <= high, name
    assert bootstrap_ci(y, p, 0.5, n_boot=300, seed=1) == ci
    assert bootstrap_ci(y, p, 0.5, n_boot=300, seed=2) != ci


def test_bootstrap_narrows_with_more_data():
    def width(n):
        y, p = random_scores(n)
        low, high = bootstrap_ci(y, p, 0.5, n_boot=300)["auroc"]
        return high - low

    assert width(2000) < width(100) / 2  # widths shrink like 1/sqrt(n): sqrt(20) ~ 4.5


def test_bootstrap_matches_per_resample_loop():
    y, p = random_scores(40, seed=3)
    idx = np.random.default_rng(7).integers(0, 40, size=(50, 40))
    reference = {name: [] for name in METRICS}
    for rows in idx:
        values = binary_metrics(y[rows], p[rows], 0.5)
        for name in METRICS:
            reference[name].append(values[name])
    ci = bootstrap_ci(y, p, 0.5, n_boot=50, seed=7, level=0.9)
    for name in METRICS:
        assert ci[name] == pytest.approx(tuple(np.percentile(reference[name], [5, 95])))


def test_bootstrap_by_patient_resamples_whole_children():
    y, p = random_scores(100, seed=4)
    # Every child has four identical X-rays: drawing children is drawing the 100 cases.
    y4, p4 = np.repeat(y, 4), np.repeat(p, 4)
    children = np.repeat([f"person{i:03d}" for i in range(100)], 4)  # sorted = case order
    by_child = bootstrap_ci(y4, p4, 0.5, n_boot=200, seed=3, groups=children)
    per_case = bootstrap_ci(y, p, 0.5, n_boot=200, seed=3)
    for name in METRICS:
        assert by_child[name] == pytest.approx(per_case[name]), name
    # Resampling the 400 images as if independent pretends to four times the data.
    by_image = bootstrap_ci(y4, p4, 0.5, n_boot=200, seed=3)
    width = lambda ci: ci["auroc"][1] - ci["auroc"][0]  # noqa: E731
    assert width(by_image) < 0.7 * width(by_child)
    # One id per case is the same as no groups at all.
    ids = [f"x{i:03d}" for i in range(100)]
    one_each = bootstrap_ci(y, p, 0.5, n_boot=200, seed=3, groups=ids)
    assert all(one_each[name] == pytest.approx(per_case[name]) for name in METRICS)
    with pytest.raises(ValueError, match="groups has 99 ids but there are 100 cases"):
        bootstrap_ci(y, p, 0.5, n_boot=10, groups=ids[:99])


def test_bootstrap_skips_single_class_resamples():
    with pytest.warns(UserWarning, match="resamples held a single class"):
        ci = bootstrap_ci([0, 1], [0.2, 0.8], 0.5, n_boot=100)
    assert ci["auroc"] == (1.0, 1.0)


def test_expected_calibration_error():
    # Bin [0.2, 0.3): mean p 0.25, 1 of 4 positive; bin [0.7, 0.8): mean p 0.75, 3 of 4.
    y, p = [1, 0, 0, 0, 1, 1, 1, 0], [0.25] * 4 + [0.75] * 4
    assert expected_calibration_error(y, p) == pytest.approx(0.0)
    # Bins: 0.1 -> |0 - 0.1| = 0.1; 0.2 -> |1 - 0.2| = 0.8; 0.9 and 0.95 share the last bin:
    # |0.5 - 0.925| = 0.425. Weighted: 0.1/4 + 0.8/4 + 0.425*2/4 = 0.4375.
    assert expected_calibration_error([0, 1, 1, 0], [0.1, 0.2, 0.9, 0.95]) == pytest.approx(0.4375)
    assert expected_calibration_error([1], [1.0]) == 0.0  # p = 1 lands in the last bin
    with pytest.raises(ValueError, match="probabilities in"):
        expected_calibration_error([0, 1], [0.1, 1.2])


def test_calibration_bins_count_cases_probabilities_and_positives_per_bin():
    # 0.05 -> bin 0; 0.1 -> bin 1 (the lower edge belongs to the bin); 0.95 and 1.0 -> bin 9.
    bins = calibration_bins(torch.tensor([0, 1, 1, 0]), np.array([0.05, 0.1, 0.95, 1.0]))
    assert bins["count"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins["positives"].tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert bins["p_sum"][[0, 1, 9]] == pytest.approx([0.05, 0.1, 1.95])
    assert calibration_bins([1, 0], [0.3, 0.6], n_bins=2)["count"].tolist() == [1, 1]
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        calibration_bins([0], [-0.1])


def test_labels_and_probabilities_flatten_and_check():
    y, p = labels_and_probabilities(torch.tensor([[1], [0]]), [[0.7], [0.2]])
    assert y.dtype == np.int64 and p.dtype == np.float64
    assert y.tolist() == [1, 0] and p.tolist() == [0.7, 0.2]
    with pytest.raises(ValueError, match="y has 2 labels but p has 3 probabilities"):
        labels_and_probabilities([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"labels must be 0 \(NORMAL\) or 1 \(PNEUMONIA\)"):
        labels_and_probabilities([0, 2], [0.1, 0.2])


def test_metrics_table_formatting():
    values = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.5)
    intervals = {name: (0.5, 1.0) for name in METRICS}
    lines = metrics_table(values, intervals).splitlines()
    assert lines[0].split() == ["metric", "value", "interval"]
    assert lines[1].split() == ["auroc", "0.750", "[0.500,", "1.000]"]
    assert lines[-2].split() == ["threshold", "0.500"]
    assert lines[-1].split() == ["n", "4"]
    plain = metrics_table(values, None)
    assert "[" not in plain and "accuracy           0.750" in plain


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
