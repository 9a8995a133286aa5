"""Few-shot methods scored over many episodes (notebook 09): the K x method table and its verdict.

A few-shot method is a function `method(support, labels, query)` of the support features, their
episode labels and the query features, returning (n_query, 2) probabilities of the episode's
labels. Every method is scored on the same episodes. Per episode: the accuracy on the query
(its classes are balanced, so chance is 0.5) and the AUROC of P(PNEUMONIA), read through the
episode's permutation. Over the episodes: the mean with a 95% interval, mean ± 1.96 standard
errors, as the few-shot literature reports. The interval says how much the mean would move with
other episodes drawn from the same pool, not how it would move at another hospital: the pool's
patients are fixed, and episodes reuse them.

Every method sees the same episodes, so two methods are compared by their **paired** per-episode
differences (`paired_difference`): an episode that is hard for one is hard for the other, and
the spread of the differences is smaller than what two unpaired intervals suggest. The verdict
`winners(..., paired=True)` calls two methods apart only where the interval of their
differences leaves 0 out.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression

from medtl_helpers.adaptation.episodes import Episode, FeaturePool, sample_episodes
from medtl_helpers.adaptation.heads import one_thread
from medtl_helpers.adaptation.results import with_interval
from medtl_helpers.metrics import auroc

Method = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
SCORES = ("accuracy", "auroc")


def logistic_regression(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor):
    """A few-shot method: scikit-learn's L2-regularised logistic regression fit on the support."""
    model = LogisticRegression(max_iter=1000).fit(support.numpy(), labels.numpy())
    return torch.as_tensor(model.predict_proba(query.numpy()), dtype=torch.float32)


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
    """One method over the episodes: each score's mean and interval, and ms per episode."""
    scores: dict[str, list[float]] = {name: [] for name in SCORES}
    start = time.perf_counter()
    for episode in episodes:
        support, labels, query = episode.tensors(pool)
        for name, value in score_episode(method(support, labels, query), episode).items():
            scores[name].append(value)
    row: dict[str, object] = {"episodes": len(episodes), "episode_key": episode_key(episodes)}
    row["ms_per_episode"] = 1000 * (time.perf_counter() - start) / len(episodes)
    for name, values in scores.items():
        mean, low, high = mean_interval(values)
        row.update({name: mean, f"{name}_low": low, f"{name}_high": high})
        row[f"{name}_per_episode"] = np.asarray(values, dtype=np.float64)
    return row


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


def paired_tied_best(rows: list[dict], setting: str, k: int, metric: str = "accuracy") -> list:
    """The best mean at (setting, K) and every method whose paired difference from it has an
    interval that reaches 0: those cannot be told apart from the best. Best first."""
    part = [r for r in rows if (r["setting"], r["K"]) == (setting, k)]
    if not part:
        raise ValueError(f"no rows for setting {setting!r} and K={k}")
    part = sorted(part, key=lambda r: -r[metric])
    best = part[0]["method"]
    return [best] + [
        r["method"]
        for r in part[1:]
        if paired_difference(rows, r["method"], best, setting, k, metric)[2] >= 0
    ]


def paired_against(rows: list[dict], pairs, metric: str = "accuracy") -> pd.DataFrame:
    """For each (method, control) pair and each setting and K: the paired difference
    "mean [low, high]" and "better", "worse" or "unclear" (the interval holds 0)."""
    out = {}
    for method, control in pairs:
        for setting, k in dict.fromkeys((r["setting"], r["K"]) for r in rows):
            mean, low, high = paired_difference(rows, method, control, setting, k, metric)
            verdict = "better" if low > 0 else "worse" if high < 0 else "unclear"
            cell = f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] {verdict}"
            out.setdefault(f"{method} - {control}", {})[(setting, k)] = cell
    return pd.DataFrame(out).T


def compare_few_shot(
    methods: dict[str, Method],
    pools: dict[str, FeaturePool],
    ks: tuple[int, ...],
    n_query: int,
    n_episodes: int,
    seed: int = 0,
) -> list[dict]:
    """Every method at every K on every pool (named by its setting), on the same episodes.

    The test episodes keep the true labels (no shuffle): that is the task a hospital has.
    """
    rows = []
    for setting, pool in pools.items():
        for k in ks:
            episodes = sample_episodes(pool, k, n_query, n_episodes, seed + k, shuffle=False)
            for name, method in methods.items():
                row = score_method(method, pool, episodes)
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
    """The methods that cannot be told apart from the best at (setting, K), best mean first:
    the best, and every method whose interval reaches the best's lower bound."""
    frame = pd.DataFrame(rows)
    part = frame[(frame["setting"] == setting) & (frame["K"] == k)]
    if part.empty:
        raise ValueError(f"no rows for setting {setting!r} and K={k}")
    part = part.sort_values(metric, ascending=False, kind="stable")
    low = part.iloc[0][f"{metric}_low"]
    return part[part[f"{metric}_high"] >= low]["method"].tolist()


def winners(rows: list[dict], metric: str = "accuracy", paired: bool = False) -> pd.DataFrame:
    """Per setting and K: the best method and its mean `metric`, and the methods `tied_best`
    (or, with `paired`, `paired_tied_best`) cannot tell from it.

    One method "wins" only when no other method reaches it; otherwise the verdict names the
    methods it cannot be told apart from on this evidence. `top` holds them all, best first.
    """
    frame = pd.DataFrame(rows)
    rule = paired_tied_best if paired else tied_best
    out = []
    for setting, k in dict.fromkeys(zip(frame["setting"], frame["K"])):
        top = rule(rows, setting, k, metric)
        best = frame[(frame["setting"] == setting) & (frame["K"] == k)][metric].max()
        verdict = "wins" if len(top) == 1 else "tied with " + ", ".join(top[1:])
        row = {"setting": setting, "K": k, "best": top[0], "mean": best, "verdict": verdict}
        out.append({**row, "top": tuple(top)})
    return pd.DataFrame(out)
