"""Few-shot methods scored over many episodes (notebook 09): the K x method table and its verdict.

A few-shot method is a function `method(support, labels, query)` of the support features, their
episode labels and the query features, returning (n_query, 2) probabilities of the episode's
labels. Per episode: the query accuracy (balanced classes: chance is 0.5) and the AUROC of
P(PNEUMONIA), read through the episode's permutation. Over the episodes: the mean ± 1.96 standard
errors, as the few-shot literature reports: how the mean would move with other episodes from the
same pool, not with another sample of patients (`pool_bootstrap` resamples the pool's units).

Every method sees the same episodes, so two methods are compared by their **paired** per-episode
differences (`paired_difference`). Where their scores are positively correlated across episodes
(an episode hard for one is hard for the other), the paired interval is narrower than two unpaired
intervals suggest; with uncorrelated or negatively correlated scores it is not. `winners(...,
paired=True)` calls two methods apart only where that interval (with `n_boot`, the pool-bootstrap
one too) leaves 0 out. `score_twins` averages each episode with its swapped twin (`swap_labels`):
a method and its mirror image (the two labels' outputs exchanged) get the same mean, so the sign of
a lean towards one label order does not count. Not every effect of a lean cancels: a gain on one
twin equals the loss on the other only for a start that ignores the support set (θ before its inner
steps).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from medtl_helpers.adaptation.episodes import Episode, FeaturePool, sample_episodes, swap_labels
from medtl_helpers.adaptation.heads import one_thread
from medtl_helpers.adaptation.pool_bootstrap import pool_difference
from medtl_helpers.adaptation.results import with_interval
from medtl_helpers.metrics import auroc
from medtl_helpers.metrics.bootstrap import _group_index

Method = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
SCORES = ("accuracy", "auroc")


def score_episode(probabilities: torch.Tensor, episode: Episode) -> dict[str, float]:
    """Query accuracy (in the episode's labels) and AUROC of P(true PNEUMONIA)."""
    p = np.asarray(probabilities, dtype=np.float64)
    accuracy = float((p.argmax(axis=1) == episode.query_labels).mean())
    pneumonia = p[:, episode.permutation[1]]
    return {"accuracy": accuracy, "auroc": auroc(episode.true_query_labels(), pneumonia)}


def mean_interval(values) -> tuple[float, float, float]:
    """(mean, low, high): the mean with mean ± 1.96 standard errors (ddof=1)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        raise ValueError(f"an interval needs at least 2 episodes, got {len(values)}")
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / np.sqrt(len(values))
    return mean, mean - half, mean + half


@one_thread()
def score_method(method: Method, pool: FeaturePool, episodes: list[Episode]) -> dict:
    """One method over the episodes: each score's mean and interval, and ms per episode.

    The row also keeps, per episode and query image, the true label (`query_truth`), P(PNEUMONIA)
    (`query_p`), whether the answer was right (`query_correct`) and the index of the image's unit
    among the pool's `pool_units` (`query_unit`), for `pool_bootstrap` (None where query sizes
    differ)."""
    scores: dict[str, list[float]] = {name: [] for name in SCORES}
    queries: list[tuple] = []
    start = time.perf_counter()
    for episode in episodes:
        support, labels, query = episode.tensors(pool)
        p = np.asarray(method(support, labels, query), dtype=np.float64)
        for name, value in score_episode(p, episode).items():
            scores[name].append(value)
        right = p.argmax(axis=1) == episode.query_labels
        queries.append((episode.true_query_labels(), p[:, episode.permutation[1]], right))
    row: dict[str, object] = {"episodes": len(episodes), "episode_key": episode_key(episodes)}
    row["ms_per_episode"] = 1000 * (time.perf_counter() - start) / len(episodes)
    for name, values in scores.items():
        mean, low, high = mean_interval(values)
        row.update({name: mean, f"{name}_low": low, f"{name}_high": high})
        row[f"{name}_per_episode"] = np.asarray(values, dtype=np.float64)
    return row | _query_results(pool, episodes, queries)


def score_twins(method: Method, pool: FeaturePool, episodes: list[Episode]) -> dict:
    """`score_method` on each episode and its swapped twin (`swap_labels`), averaged per episode.

    A method that reads only the support set scores the same on both. For one whose weights
    favour a label order, the mean does not depend on which order they favour (its mirror image
    gets the same two scores, exchanged); the gain on one twin equals the loss on the other only
    for a start that ignores the support set, such as θ before its inner steps. The per-query
    results hold the episodes, then their twins, so `pool_bootstrap` rescores the twin mean."""
    row = score_method(method, pool, [*episodes, *(swap_labels(e) for e in episodes)])
    n = len(episodes)
    for name in SCORES:
        twin = (row[f"{name}_per_episode"][:n] + row[f"{name}_per_episode"][n:]) / 2
        mean, low, high = mean_interval(twin)
        row.update({name: mean, f"{name}_low": low, f"{name}_high": high})
        row[f"{name}_per_episode"] = twin
    return row | {"episodes": n}


def _query_results(pool: FeaturePool, episodes: list[Episode], queries: list[tuple]) -> dict:
    """The per-(episode, query image) arrays of `score_method`'s row, and the pool's unit."""
    out: dict[str, object] = {"unit": pool.unit, "pool_units": len(set(pool.patients))}
    names = ("query_truth", "query_p", "query_correct", "query_unit")
    if len({len(e.query) for e in episodes}) != 1:
        return out | dict.fromkeys(names)
    unit = _group_index(pool.patients, len(pool))
    arrays = [np.stack(part) for part in zip(*queries)]
    arrays.append(np.stack([unit[e.query] for e in episodes]))
    return out | dict(zip(names, arrays))


def episode_key(episodes: list[Episode]) -> int:
    """A checksum of the episodes' pools, images and labels: equal keys, same episodes."""
    key = 0
    for e in episodes:
        for part in (e.support, e.support_labels, e.query, e.query_labels, e.permutation):
            key = zlib.crc32(np.asarray(part, dtype=np.int64).tobytes(), key)
        key = zlib.crc32(e.pool.encode(), key)
    return key


def _cell(rows: list[dict], setting: str, k: int, method: str) -> dict:
    found = [r for r in rows if (r["setting"], r["K"], r["method"]) == (setting, k, method)]
    if len(found) != 1:
        raise ValueError(f"expected one row for {method!r} at {setting!r}, K={k}; got {len(found)}")
    return found[0]


def paired_difference(
    rows: list[dict], method: str, control: str, setting: str, k: int, metric: str = "accuracy"
) -> tuple[float, float, float]:
    """(mean, low, high) of `method` minus `control`, episode by episode, at (setting, K).

    Both rows must hold the per-episode scores of the same episodes (`score_method`'s).
    """
    a, b = _cell(rows, setting, k, method), _cell(rows, setting, k, control)
    if a["episode_key"] != b["episode_key"]:
        raise ValueError(f"{method!r} and {control!r} were not scored on the same episodes")
    return mean_interval(a[f"{metric}_per_episode"] - b[f"{metric}_per_episode"])


def paired_verdict(
    rows: list[dict],
    method: str,
    control: str,
    setting: str,
    k: int,
    metric: str = "accuracy",
    n_boot: int = 0,
    seed: int = 0,
) -> dict:
    """`method` - `control` at (setting, K): "mean", the per-episode interval ("episodes") and,
    with `n_boot` resamples, the pool-bootstrap one ("pool"); "reaches 0": which of them hold 0;
    "verdict": "better" or "worse" where every interval leaves 0 out on that side, else "unclear".
    """
    mean, low, high = paired_difference(rows, method, control, setting, k, metric)
    out = {"mean": mean, "episodes": (low, high), "pool": None}
    if n_boot:
        a, b = _cell(rows, setting, k, method), _cell(rows, setting, k, control)
        out["pool"] = pool_difference(a, b, metric, n_boot, seed)[1:]
    found = [out[name] for name in ("episodes", "pool") if out[name]]
    held = [n for n in ("episodes", "pool") if out[n] and out[n][0] <= 0 <= out[n][1]]
    out["reaches 0"] = " and ".join(held)
    better, worse = min(f[0] for f in found) > 0, max(f[1] for f in found) < 0
    out["verdict"] = "better" if better else "worse" if worse else "unclear"
    return out


def paired_tied_best(
    rows: list[dict], setting: str, k: int, metric: str = "accuracy", n_boot: int = 0, seed: int = 0
) -> list:
    """The best mean at (setting, K) and every method that cannot be told apart from it, best
    first: those whose paired difference from the best has a per-episode interval that reaches
    0 or, with `n_boot` resamples, a pool-bootstrap interval (`pool_bootstrap`) that does."""
    return [method for method, _ in _ties(rows, setting, k, metric, n_boot, seed)]


def _ties(rows, setting, k, metric, n_boot, seed) -> list[tuple[str, str]]:
    """(method, which interval reaches 0) for the best and the methods tied with it (`winners`
    says what to mind: the winner's curse, and many comparisons)."""
    part = [r for r in rows if (r["setting"], r["K"]) == (setting, k)]
    if not part:
        raise ValueError(f"no rows for setting {setting!r} and K={k}")
    part = sorted(part, key=lambda r: -r[metric])
    best = part[0]["method"]
    out = [(best, "")]
    for r in part[1:]:
        held = paired_verdict(rows, r["method"], best, setting, k, metric, n_boot, seed)
        if held["reaches 0"]:
            out.append((r["method"], held["reaches 0"]))
    return out


def paired_against(
    rows: list[dict], pairs, metric: str = "accuracy", n_boot: int = 0, seed: int = 0
) -> pd.DataFrame:
    """For each (method, control) pair and each setting and K: the paired difference
    "mean [low, high]" and "better", "worse" or "unclear" (the interval holds 0).

    With `n_boot` resamples the cell adds the pool-bootstrap interval, "better" or "worse" needs
    both intervals to leave 0 out on the same side, and "unclear" names the interval(s) that
    hold 0: "episodes", "pool" or both.
    """
    out = {}
    for method, control in pairs:
        for setting, k in dict.fromkeys((r["setting"], r["K"]) for r in rows):
            d = paired_verdict(rows, method, control, setting, k, metric, n_boot, seed)
            spans = [f"[{d[n][0]:+.3f}, {d[n][1]:+.3f}]" for n in ("episodes", "pool") if d[n]]
            why = f" ({d['reaches 0']})" if n_boot and d["reaches 0"] else ""
            cell = f"{d['mean']:+.3f} {' '.join(spans)} {d['verdict']}{why}"
            out.setdefault(f"{method} - {control}", {})[(setting, k)] = cell
    return pd.DataFrame(out).T


def compare_few_shot(
    methods: dict[str, Method],
    pools: dict[str, FeaturePool],
    ks: tuple[int, ...],
    n_query: int,
    n_episodes: int,
    seed: int = 0,
    twin: bool = False,
) -> list[dict]:
    """Every method at every K on every pool (named by its setting), on the same episodes.

    The test episodes keep the true labels (no shuffle): that is the task a hospital has. With
    `twin`, each is scored with its swapped twin too and the two averaged (`score_twins`).
    """
    rows, score = [], score_twins if twin else score_method
    for setting, pool in pools.items():
        for k in ks:
            episodes = sample_episodes(pool, k, n_query, n_episodes, seed + k, shuffle=False)
            for name, method in methods.items():
                row = score(method, pool, episodes)
                rows.append({"setting": setting, "K": k, "method": name, **row})
    return rows


def k_table(rows: list[dict], metric: str = "accuracy") -> pd.DataFrame:
    """Methods as rows; per setting, one column per K holding "mean [low, high]"."""
    frame = pd.DataFrame(rows)
    frame["cell"] = frame.apply(with_interval, axis=1, metric=metric)
    table = frame.pivot(index="method", columns=["setting", "K"], values="cell")
    columns = list(dict.fromkeys(zip(frame["setting"], frame["K"])))
    return table.loc[list(dict.fromkeys(frame["method"])), columns]


def tied_best(rows: list[dict], setting: str, k: int, metric: str = "accuracy") -> list[str]:
    """The best mean at (setting, K) and every method whose own interval reaches the best's
    lower bound, best mean first: the reading of unpaired bars.

    A gap between two intervals separates the means; an overlap does not show the methods equal,
    nor that the interval of their difference holds 0 (`paired_tied_best` asks that directly)."""
    frame = pd.DataFrame(rows)
    part = frame[(frame["setting"] == setting) & (frame["K"] == k)]
    if part.empty:
        raise ValueError(f"no rows for setting {setting!r} and K={k}")
    part = part.sort_values(metric, ascending=False, kind="stable")
    low = part.iloc[0][f"{metric}_low"]
    return part[part[f"{metric}_high"] >= low]["method"].tolist()


def winners(
    rows: list[dict], metric: str = "accuracy", paired: bool = False, n_boot: int = 0, seed: int = 0
) -> pd.DataFrame:
    """Per setting and K: the best method and its mean `metric`, and the methods the rule does
    not separate from it. `top` holds them all, best first; "wins" where there are none.

    Without `paired`: the unpaired intervals that reach the best's lower bound (`tied_best`),
    which shows no more than that the bars overlap. With `paired`: the methods whose paired
    difference from the best has an interval holding 0 (`paired_tied_best`), those this run
    cannot tell apart from it; with `n_boot` resamples either interval (per episode, or over the
    pool's units) holding 0 ties, and the verdict names which. A tie is no evidence of equality.

    The best mean is the largest of several noisy ones, so it is biased upwards (the winner's
    curse), and each cell compares every other method with it at 95%, over many cells: some
    separations come from chance alone (multiplicity), a weaker claim than one interval makes.
    """
    frame = pd.DataFrame(rows)
    out = []
    for setting, k in dict.fromkeys(zip(frame["setting"], frame["K"])):
        if paired:
            ties = _ties(rows, setting, k, metric, n_boot, seed)
        else:
            ties = [(method, "") for method in tied_best(rows, setting, k, metric)]
        top = [method for method, _ in ties]
        best = frame[(frame["setting"] == setting) & (frame["K"] == k)][metric].max()
        named = [f"{m} ({why})" if n_boot and paired else m for m, why in ties[1:]]
        verdict = "wins" if len(top) == 1 else "tied with " + ", ".join(named)
        row = {"setting": setting, "K": k, "best": top[0], "mean": best, "verdict": verdict}
        out.append({**row, "top": tuple(top)})
    return pd.DataFrame(out)
