"""The methods x sites verdicts of notebook 08, read from a paired patient bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtl_helpers.adaptation.results import (
    against_baseline,
    chance_cells,
    paired_against_baseline,
    paired_verdicts,
    result_row,
)
from medtl_helpers.data import ImageSet


def make_part(n: int = 40) -> ImageSet:
    labels = torch.tensor([0, 1] * (n // 2))
    images = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    return ImageSet(images, labels, [f"p{i}" for i in range(n)], "synthetic")


def scores_and_rows():
    part = make_part()
    y = part.labels.numpy()
    base = np.where(y == 1, 0.8, 0.2)
    base[:10] = 1 - base[:10]  # 10 of 40 children wrong at 0.5
    better = base.copy()
    better[:6] = 1 - better[:6]  # 6 of them put right, none put wrong
    worse = 1 - better
    scores = {
        ("source model", "blur"): (base, part, 0.5),
        ("L2-SP", "blur"): (better, part, 0.5),
        ("flipped", "blur"): (worse, part, 0.5),
    }
    rows = [
        result_row(m, s, y, p, t, part.patients, 500, 0) for (m, s), (p, _, t) in scores.items()
    ]
    return scores, rows


def test_a_consistent_gain_is_better_paired_although_separate_intervals_overlap():
    scores, rows = scores_and_rows()
    unpaired = against_baseline(rows)
    assert unpaired.loc["L2-SP", "blur"] == "unclear"  # the old, separate-interval reading
    differences = paired_against_baseline(rows, scores, n_boot=500, seed=0)
    gain = differences.set_index("method").loc["L2-SP"]
    assert gain["difference"] == pytest.approx(6 / 40)  # 3 of 20 per class, both classes
    assert gain["low"] > 0 and gain["verdict"] == "better"
    table = paired_verdicts(differences)
    assert table.to_dict() == {"blur": {"L2-SP": "better", "flipped": "worse"}}


def test_both_arms_must_score_the_same_patients():
    scores, rows = scores_and_rows()
    p, part, t = scores["L2-SP", "blur"]
    other = ImageSet(part.images, part.labels, [f"q{i}" for i in range(len(part))], "synthetic")
    scores["L2-SP", "blur"] = (p, other, t)
    with pytest.raises(ValueError, match="'L2-SP' and 'source model' at 'blur': score both"):
        paired_against_baseline(rows, scores, n_boot=50)


def test_resamples_of_one_class_are_counted_not_warned_per_cell(recwarn):
    labels = torch.tensor([1, 1, 1] + [0] * 13)
    part = ImageSet(torch.zeros(16, 1, 4, 4, dtype=torch.uint8), labels,
                    [f"p{i}" for i in range(16)], "synthetic")  # fmt: skip
    base = np.where(labels.numpy() == 1, 0.7, 0.3)
    scores = {("source model", "s"): (base, part, 0.5), ("AdaBN", "s"): (base * 0.9, part, 0.5)}
    rows = [{"method": m, "site": s} for m, s in scores]
    row = paired_against_baseline(rows, scores, n_boot=400, seed=0).iloc[0]
    assert row["one_class_resamples"] > 0  # about (13/16)**16 hold no PNEUMONIA, under 10%
    assert not [w for w in recwarn if "single class" in str(w.message)]


def test_the_chance_count_leaves_out_cells_that_cannot_differ():
    scores, _ = scores_and_rows()
    base, part, _ = scores["source model", "blur"]
    better = scores["L2-SP", "blur"][0]
    shifted = np.clip(base + 0.01, 0, 1)  # other probabilities, the same flags at 0.5
    scores.update(
        {
            ("DANN", "blur"): (base.copy(), part, 0.5),  # kept step 0: the source model itself
            ("L2-SP control", "blur"): (better.copy(), part, 0.5),  # the same run as L2-SP
            ("nudged", "blur"): (shifted, part, 0.5),  # the same flags: interval [0, 0]
        }
    )
    rows = [
        result_row(m, s, part.labels.numpy(), p, t, part.patients, 200, 0)
        for (m, s), (p, _, t) in scores.items()
    ]
    differences = paired_against_baseline(rows, scores, n_boot=200, seed=0)
    reasons = dict(zip(differences["method"], chance_cells(differences, scores)))
    assert reasons == {
        "L2-SP": "counted",
        "flipped": "counted",
        "DANN": "same run as the baseline",
        "L2-SP control": "same run as L2-SP",
        "nudged": "interval [0, 0]",
    }
