"""metrics.operating_point: the counts, rates and predictive values behind the explorers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medtl_helpers.metrics import choose_threshold
from medtl_helpers.metrics.operating_point import (
    COLUMNS,
    operating_point,
    operating_table,
    ppv_floor_threshold,
    predictive_values,
    threshold_marks,
)

# 4 NORMAL, 6 PNEUMONIA; at 0.5: tn 3, fp 1 (0.6), fn 2 (0.2, 0.45), tp 4
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
P = np.array([0.1, 0.3, 0.4, 0.6, 0.2, 0.45, 0.55, 0.7, 0.8, 0.9])


def test_the_counts_and_rates_at_a_threshold():
    point = operating_point(Y, P, 0.5)
    assert {k: point[k] for k in ("tn", "fp", "fn", "tp")} == {"tn": 3, "fp": 1, "fn": 2, "tp": 4}
    assert point["sensitivity"] == pytest.approx(4 / 6)
    assert point["specificity"] == pytest.approx(3 / 4)
    assert point["fpr"] == pytest.approx(1 / 4)
    # at the set's own prevalence the predictive values are the counts' own shares
    assert point["prevalence"] == pytest.approx(0.6)
    assert point["ppv"] == pytest.approx(4 / 5) and point["npv"] == pytest.approx(3 / 5)


def test_a_score_equal_to_the_threshold_is_flagged():
    assert operating_point(Y, P, 0.55)["tp"] == 4 and operating_point(Y, P, 0.5501)["tp"] == 3


def test_predictive_values_follow_bayes_rule_at_another_prevalence():
    # sensitivity 0.9, specificity 0.8 at 5%: PPV = 0.045 / (0.045 + 0.19) = 0.1915
    values = predictive_values(0.9, 0.8, 0.05)
    assert values["ppv"] == pytest.approx(0.045 / 0.235)
    assert values["npv"] == pytest.approx(0.76 / 0.765)
    point = operating_point(Y, P, 0.5, prevalence=0.05)  # the rates do not move, PPV does
    assert point["sensitivity"] == pytest.approx(4 / 6)
    assert point["ppv"] == pytest.approx((4 / 6 * 0.05) / (4 / 6 * 0.05 + 0.25 * 0.95))


def test_an_undefined_predictive_value_is_nan_and_bad_inputs_are_refused():
    assert math.isnan(predictive_values(0.0, 1.0, 0.3)["ppv"])  # nobody flagged
    assert math.isnan(predictive_values(1.0, 0.0, 0.3)["npv"])  # nobody cleared
    with pytest.raises(ValueError, match="prevalence must lie strictly between 0 and 1, got 1"):
        predictive_values(0.9, 0.8, 1)
    with pytest.raises(ValueError, match="specificity must lie in"):
        predictive_values(0.9, 1.2, 0.5)
    with pytest.raises(ValueError, match="needs both classes"):
        operating_point([1, 1], [0.2, 0.9], 0.5)


def test_the_table_has_one_row_per_set_in_its_columns():
    table = operating_table({"validation": (Y, P), "test": (Y[2:], P[2:])}, 0.5, 0.05)
    assert list(table.columns) == list(COLUMNS)
    assert list(table["set"]) == ["validation", "test"]
    assert table["tp"].tolist() == [4, 4] and table["prevalence"].tolist() == [0.05, 0.05]
    with pytest.raises(ValueError, match="only PNEUMONIA"):
        operating_table({"test": (Y[4:], P[4:])}, 0.5, 0.05)  # a set needs both classes


def test_the_marks_are_the_thresholds_choose_threshold_picks():
    marks = threshold_marks(Y, P, 0.8)
    assert marks == {
        "Youden's J": choose_threshold(Y, P),
        "sensitivity >= 0.8": choose_threshold(Y, P, rule="sensitivity", target=0.8),
    }
    assert operating_point(Y, P, marks["sensitivity >= 0.8"])["sensitivity"] >= 0.8


def test_the_ppv_floor_is_the_lowest_threshold_that_keeps_ppv():
    # at the set's own prevalence (0.6): 0.4 flags 5 of 6 and 2 NORMAL of 4 (PPV 0.714), 0.3 a
    # third NORMAL (0.625), 0.2 the last PNEUMONIA (0.667), 0.1 everyone (0.6)
    assert ppv_floor_threshold(Y, P, 0.6, min_ppv=0.7) == 0.4
    assert ppv_floor_threshold(Y, P, 0.6, min_ppv=0.5) == 0.1  # everyone flagged: PPV = 0.6
    # at 5% the one NORMAL at 0.6 already drags PPV far below 0.5
    assert operating_point(Y, P, 0.6, prevalence=0.05)["ppv"] < 0.5
    assert ppv_floor_threshold(Y, P, 0.05) == 0.7
    assert ppv_floor_threshold(Y[::-1], P, 0.05) is None  # no threshold reaches 0.5


def test_the_ppv_floor_looks_past_a_dip_near_the_top():
    y = np.array([1, 0, 1, 1, 1, 1, 0, 0, 0, 0])  # a NORMAL image scored second highest
    p = np.linspace(0.9, 0.1, 10)
    ppv = {t: operating_point(y, p, t, prevalence=0.3)["ppv"] for t in p}
    assert ppv[p[1]] < 0.5 and ppv[p[5]] >= 0.5  # the dip, then PPV back above 0.5
    assert ppv_floor_threshold(y, p, 0.3) == min(t for t, v in ppv.items() if v >= 0.5)
