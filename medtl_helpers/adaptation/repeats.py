"""Few-shot methods compared over repeated support draws, by paired differences.

One draw of the K support images and one training seed is one sample of what a method does with
K labels: another draw can reverse a "worse". So each draw r draws the support with seed r and
trains with seed r, and every method is scored on the same test images in every draw. A method
is compared with a baseline by the difference of a metric, draw by draw (paired: same draw, same
test images), averaged over the draws. Its interval comes from a bootstrap that resamples the
test set's units (whole patients on Kermany, images on PneumoniaMNIST) and the draws, the same
resample for every method, so a hard patient or a lucky draw counts for both arms of a pair.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from medtl_helpers.metrics.bootstrap import _group_index, _resample_metrics, _resample_weights
from medtl_helpers.metrics.paired import _require_enough_resamples, difference_verdict
from medtl_helpers.metrics.rates import binary_metrics, labels_and_probabilities, require_classes

Draw = Mapping[str, ArrayLike | Mapping]


def repeat_draws(run: Callable[[int], Draw], draws: int = 5) -> list[dict[str, np.ndarray]]:
    """[run(0), ..., run(draws - 1)], each as {method: test probabilities}.

    `run(r)` draws the support images with seed r, trains every method with seed r and returns
    {method: p} or {method: {"p": p, ...}} (what `adapt_with_labels` returns), p scored on the
    same test images in every draw.
    """
    if draws < 2:
        raise ValueError(f"repeat_draws needs at least 2 draws to show a spread, got {draws}")
    return [_probabilities(run(r)) for r in range(draws)]


def _probabilities(result: Draw) -> dict[str, np.ndarray]:
    """{method: p} from {method: p} or {method: {"p": p, ...}}."""
    return {
        method: np.asarray(v["p"] if isinstance(v, Mapping) else v, dtype=np.float64).reshape(-1)
        for method, v in result.items()
    }


def _check_draws(results: Sequence[Draw], baseline: str, n: int) -> list[str]:
    """The methods compared with `baseline`; an error if the draws do not all hold the same."""
    if len(results) < 2:
        raise ValueError(f"paired_over_draws needs at least 2 draws, got {len(results)}")
    methods = list(results[0])
    if baseline not in methods:
        raise ValueError(f"baseline {baseline!r} is not among the methods {methods}")
    for r, result in enumerate(results):
        if set(result) != set(methods):
            raise ValueError(f"draw {r} holds {sorted(result)}, draw 0 holds {sorted(methods)}")
        for method, p in result.items():
            if p.size != n:
                raise ValueError(
                    f"draw {r}, {method}: {p.size} probabilities for {n} test "
                    "labels; score every method of every draw on the same test images"
                )
    return [m for m in methods if m != baseline]


def paired_over_draws(
    results: Sequence[Draw],
    y: ArrayLike,
    baseline: str,
    threshold: float = 0.5,
    groups: ArrayLike | None = None,
    unit: str = "patients",
    metrics: Sequence[str] = ("auroc", "balanced_accuracy"),
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample_draws: bool = True,
) -> pd.DataFrame:
    """Each method against `baseline`, per metric, over the draws of `repeat_draws` (`results`).

    Rows (method, metric); columns: `difference`, the mean over draws of method - baseline on
    the whole test set; `low`, `high`, its percentile interval; `better_in`, the draws in which
    the method scored above the baseline, of `draws`; `min`, `max`, the per-draw differences;
    `verdict` from `difference_verdict`. Every case is predicted positive at `threshold`.
    Each bootstrap round resamples the test set by `groups` (`ImageSet.patients`, one id per
    image; whole patients come along together) and, with `resample_draws`, the draws too; every
    draw and method is scored on that same resample. `unit` (`ImageSet.unit`) names what was
    resampled in the verdict. An interval that includes 0 says the data do not settle it.
    """
    results = [_probabilities(r) for r in results]
    y, _ = labels_and_probabilities(y, np.zeros(np.asarray(y).size))
    require_classes(y, "paired_over_draws")
    methods = _check_draws(results, baseline, y.size)
    whole = [{m: binary_metrics(y, p, threshold) for m, p in r.items()} for r in results]
    per_draw = {  # method -> (draws, metrics)
        m: np.array([[s[m][k] - s[baseline][k] for k in metrics] for s in whole]) for m in methods
    }
    samples = _bootstrap_differences(
        results, y, baseline, methods, threshold, groups, metrics, n_boot, seed, resample_draws
    )
    tail = 100 * (1 - level) / 2
    what = f"{unit} and draws" if resample_draws else unit
    rows = {}
    for m in methods:
        for i, k in enumerate(metrics):
            low, high = np.percentile(samples[m][:, i], [tail, 100 - tail])
            d = per_draw[m][:, i]
            rows[(m, k)] = {
                "difference": float(d.mean()),
                "low": float(low),
                "high": float(high),
                "better_in": int((d > 0).sum()),
                "draws": len(results),
                "min": float(d.min()),
                "max": float(d.max()),
                "verdict": difference_verdict(low, high, better=m, worse=baseline, unit=what),
            }
    return pd.DataFrame(rows).T.rename_axis(["method", "metric"])


def _bootstrap_differences(
    results, y, baseline, methods, threshold, groups, metrics, n_boot, seed, resample_draws
) -> dict[str, np.ndarray]:
    """Per method, (kept resamples, metrics): the mean over (resampled) draws of the difference."""
    cluster = _group_index(groups, y.size)
    rng = np.random.default_rng(seed)
    positive, n_draws = y == 1, len(results)
    scored = [
        {m: (np.unique(p, return_inverse=True)[1], p >= threshold) for m, p in r.items()}
        for r in results
    ]
    chunk = max(1, 1_000_000 // (y.size * n_draws))
    parts: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    dropped = 0
    for start in range(0, n_boot, chunk):
        w = _resample_weights(rng, cluster, min(chunk, n_boot - start))
        both = ((w * positive).sum(1) > 0) & ((w * ~positive).sum(1) > 0)
        dropped += int((~both).sum())
        draw_rows = rng.integers(0, n_draws, size=(w.shape[0], n_draws))
        if not resample_draws:
            draw_rows = np.broadcast_to(np.arange(n_draws), draw_rows.shape)
        values = [
            {
                m: _metrics_on(w, positive, score, flagged, both, metrics)
                for m, (score, flagged) in s.items()
            }
            for s in scored
        ]  # draw -> method -> (metrics, kept rows)
        for m in methods:
            diff = np.stack([v[m] - v[baseline] for v in values])  # (draws, metrics, kept)
            picked = np.take_along_axis(diff.transpose(2, 0, 1), draw_rows[both][..., None], 1)
            parts[m].append(picked.mean(1))  # (kept, metrics)
    _require_enough_resamples(dropped, n_boot, y)
    return {m: np.concatenate(part) for m, part in parts.items()}


def _metrics_on(w, positive, score, flagged, both, metrics) -> np.ndarray:
    """(metrics, resamples holding both classes) for one method of one draw."""
    values = _resample_metrics(w, positive, flagged, score)
    return np.stack([v if v.size == both.sum() else v[both] for v in map(values.get, metrics)])
