"""The results of notebook 08: one row per method and site, the tables and plots made of them.

Every row holds AUROC, sensitivity, specificity and balanced accuracy at a fixed threshold, each
with a 95% bootstrap interval that resamples whole patients (`evaluation_report`).
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medtl_helpers.evaluation import evaluation_report
from medtl_helpers.metrics.paired import SingleClassResamples, paired_difference

REPORTED = ("auroc", "sensitivity", "specificity", "balanced_accuracy")


def result_row(
    method: str, site: str, y, p, threshold: float, patients, n_boot: int = 1000, seed: int = 0
) -> dict[str, object]:
    """One cell of the results table: the reported metrics with their 95% intervals.

    On a small site some resamples hold one class only and are left out of the class-dependent
    metrics; instead of a warning per cell, the row counts them (`one_class_resamples`).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = evaluation_report(y, p, threshold, n_boot=n_boot, seed=seed, groups=patients)
    skipped = 0
    for warning in caught:
        text = str(warning.message)
        if "held a single class" in text:
            skipped += int(text.split()[0])
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    row: dict[str, object] = {"method": method, "site": site, "n": report["n"]}
    row["one_class_resamples"] = skipped
    for name in REPORTED:
        low, high = report["ci95"][name]
        row.update({name: report[name], f"{name}_low": low, f"{name}_high": high})
    return row


def with_interval(row: pd.Series | dict, metric: str = "auroc", digits: int = 2) -> str:
    """ "0.83 [0.78, 0.88]": the value and its 95% interval, to `digits` decimals."""
    low, high = row[f"{metric}_low"], row[f"{metric}_high"]
    return f"{row[metric]:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def methods_table(rows: list[dict] | pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """Methods as rows, sites as columns, each cell the value with its interval."""
    frame = pd.DataFrame(rows)
    frame["cell"] = frame.apply(with_interval, axis=1, metric=metric)
    table = frame.pivot(index="method", columns="site", values="cell")
    methods = list(dict.fromkeys(frame["method"]))
    sites = list(dict.fromkeys(frame["site"]))
    return table.loc[methods, sites].fillna("")


def compare_methods(
    rows: list[dict] | pd.DataFrame,
    methods: list[str],
    metrics: tuple[str, ...] = ("auroc", "sensitivity", "specificity"),
) -> pd.DataFrame:
    """Sites as rows; for each metric, one column per method (values only, for reading across)."""
    frame = pd.DataFrame(rows)
    frame = frame[frame["method"].isin(methods)]
    wide = frame.pivot(index="site", columns="method", values=list(metrics))
    wide = wide.reindex(columns=pd.MultiIndex.from_product([list(metrics), methods]))
    return wide.loc[list(dict.fromkeys(frame["site"]))].round(3)


def plot_by_site(rows: list[dict] | pd.DataFrame, metrics=REPORTED[:3], axes=None):
    """One panel per metric: each site's value with its interval, one colour per method."""
    frame = pd.DataFrame(rows)
    sites = list(dict.fromkeys(frame["site"]))
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.45 * len(sites) + 1))
    methods = list(dict.fromkeys(frame["method"]))
    for ax, metric in zip(axes, metrics):
        for j, method in enumerate(methods):
            part = frame[frame["method"] == method].set_index("site").reindex(sites)
            y = [i + 0.15 * (j - (len(methods) - 1) / 2) for i in range(len(sites))]
            errors = [part[metric] - part[f"{metric}_low"], part[f"{metric}_high"] - part[metric]]
            ax.errorbar(part[metric], y, xerr=errors, fmt="o", ms=4, capsize=2, label=method)
        ax.set(yticks=range(len(sites)), yticklabels=sites if ax is axes[0] else [], title=metric)
        ax.invert_yaxis()
        ax.set_xlim(min(0.5, float(frame[f"{metric}_low"].min())) - 0.03, 1.03)
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return axes


def plot_against_k(
    rows: list[dict] | pd.DataFrame, baselines: dict[str, float], metric: str = "auroc", ax=None
):
    """`metric` against K (log axis) per method, with intervals; baselines as dashed lines.

    K is the count asked of `k_support`, which draws whole patients, so a support set holds about
    K images, not exactly K.
    """
    frame = pd.DataFrame(rows)
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for method, part in frame.groupby("method", sort=False):
        part = part.sort_values("K")
        errors = [part[metric] - part[f"{metric}_low"], part[f"{metric}_high"] - part[metric]]
        ax.errorbar(part["K"], part[metric], yerr=errors, marker="o", capsize=3, label=method)
    for i, (name, value) in enumerate(baselines.items()):
        ax.axhline(value, color=f"C{len(frame['method'].unique()) + i}", ls="--", label=name)
    ax.set_xscale("log")
    ax.minorticks_off()
    ks = sorted(frame["K"].unique())
    xlabel = "K: about K labelled target images, drawn as whole patients"
    ax.set(xticks=ks, xticklabels=[str(k) for k in ks], xlabel=xlabel)
    ax.set(ylabel=metric)
    ax.legend(fontsize=8)
    return ax


def against_baseline(
    rows: list[dict] | pd.DataFrame,
    metric: str = "balanced_accuracy",
    baseline: str = "source model",
) -> pd.DataFrame:
    """Methods x sites: "better" or "worse" where the method's interval lies wholly above or
    below the baseline's at that site, else "unclear".

    A conservative reading: both are scored on the same test patients, so a paired comparison
    could find differences that separate intervals miss.
    """
    frame = pd.DataFrame(rows)
    base = frame[frame["method"] == baseline].set_index("site")
    verdicts: dict[str, dict[str, str]] = {}
    for _, row in frame[frame["method"] != baseline].iterrows():
        if row["site"] not in base.index:
            continue
        ref = base.loc[row["site"]]
        verdict = "unclear"
        if row[f"{metric}_low"] > ref[f"{metric}_high"]:
            verdict = "better"
        elif row[f"{metric}_high"] < ref[f"{metric}_low"]:
            verdict = "worse"
        verdicts.setdefault(row["method"], {})[row["site"]] = verdict
    table = pd.DataFrame(verdicts).T
    return table[[s for s in dict.fromkeys(frame["site"]) if s in table.columns]].fillna("")


def paired_against_baseline(
    rows: list[dict] | pd.DataFrame,
    scores: dict[tuple[str, str], tuple],
    metric: str = "balanced_accuracy",
    baseline: str = "source model",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per method and site of `rows`: method − baseline on the same test patients, paired.

    `scores[(method, site)]` is (p, part, threshold): the test probabilities, the `ImageSet`
    they score and the threshold. Each bootstrap round resamples the site's test patients once
    and scores both arms on that draw (`metrics.paired_difference`), so a hard patient counts
    for both. Rows: method, site, difference, low, high and `verdict`, "better" or "worse" where
    the 95% interval of the difference excludes 0, else "unclear". As in `result_row`, the
    resamples left out for drawing one class are counted (`one_class_resamples`), not warned
    about per cell; a warning that says not to read the interval is still raised.
    """
    frame = pd.DataFrame(rows)
    out = []
    for method, site in frame.loc[frame["method"] != baseline, ["method", "site"]].itertuples(
        index=False
    ):
        if (baseline, site) not in scores:
            continue
        (p_base, part, t_base), (p, other, t) = scores[baseline, site], scores[method, site]
        if list(part.patients) != list(other.patients):
            raise ValueError(f"{method!r} and {baseline!r} at {site!r}: score both on one set")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            d, low, high = paired_difference(
                part.labels, p_base, p, t_base, t, n_boot, seed, groups=part.patients
            )[metric]
        verdict = "better" if low > 0 else "worse" if high < 0 else "unclear"
        out.append(
            {"method": method, "site": site, "difference": d, "low": low, "high": high,
             "verdict": verdict, "one_class_resamples": _one_class(caught)}
        )  # fmt: skip
    return pd.DataFrame(out)


def _one_class(caught) -> int:
    """The resamples `paired_difference` left out, from its warnings; re-raise the others and
    the one that says the interval should not be read."""
    skipped = 0
    for warning in caught:
        message = warning.message
        if isinstance(message, SingleClassResamples) and message.readable:
            skipped += message.dropped
        else:
            warnings.warn_explicit(message, warning.category, warning.filename, warning.lineno)
    return skipped


def paired_verdicts(differences: pd.DataFrame, sites: list[str] | None = None) -> pd.DataFrame:
    """Methods x sites of `paired_against_baseline`'s verdicts, in the order they came."""
    table = differences.pivot(index="method", columns="site", values="verdict")
    methods = list(dict.fromkeys(differences["method"]))
    sites = sites or list(dict.fromkeys(differences["site"]))
    return table.reindex(index=methods, columns=sites).fillna("")


def chance_cells(
    differences: pd.DataFrame, scores: dict[tuple[str, str], tuple], baseline: str = "source model"
) -> pd.Series:
    """Per row of `paired_against_baseline`: "counted" where its difference can be non-zero.

    A cell cannot be a false positive, and does not belong in a count of cells that could land
    outside 0 by chance, where its arm scores the test patients exactly as the baseline does
    ("same run as the baseline": a method that kept step 0, say), where its interval is [0, 0],
    or where an earlier row at the same site is the same run ("same run as <method>": a control
    whose λ = 0 was chosen). The cells counted still share test patients and the baseline, so
    they are not independent.
    """
    reasons = []
    for row in differences.itertuples(index=False):
        p = np.asarray(scores[row.method, row.site][0])
        earlier = [
            m
            for m in differences.loc[differences["site"] == row.site, "method"]
            if m == row.method or np.array_equal(np.asarray(scores[m, row.site][0]), p)
        ]
        if np.array_equal(np.asarray(scores[baseline, row.site][0]), p):
            reasons.append("same run as the baseline")
        elif row.low == 0 and row.high == 0:
            reasons.append("interval [0, 0]")
        elif earlier[0] != row.method:
            reasons.append(f"same run as {earlier[0]}")
        else:
            reasons.append("counted")
    return pd.Series(reasons, index=differences.index, name="chance count")
