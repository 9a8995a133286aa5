"""Reading a learning curve (07): the gain of ImageNet weights paired by seed, and the long run.

Each seed of `learning_curve` trains both initialisations on the same subset with the same batch
order, so the two runs of a seed are paired. Whether the two min-max bands overlap is then the
wrong test: they can overlap while every seed shows the same gain. `paired_gains` gives the gain
per seed's pair and its spread. `schedule_gaps` and `catch_up_verdict` read the check of section
7, where both initialisations are trained longer at the full fraction, so that the gap after the
curve's schedule and after the long one differ in the schedule only.
"""

from __future__ import annotations

import pandas as pd

from medtl_helpers.evaluation.data_efficiency import INITS

GAIN_COLUMNS = ("seeds", "mean", "sd", "min", "max", "verdict")


def _sign_verdict(gains: pd.Series) -> str:
    n = len(gains)
    if n < 2:
        return "one seed: no spread to judge"
    if (gains > 0).all():
        return f"ImageNet ahead in all {n} seeds"
    if (gains < 0).all():
        return f"random init ahead in all {n} seeds"
    return "signs differ: no consistent difference"


def paired_gains(results: pd.DataFrame) -> pd.DataFrame:
    """Per fraction, test AUROC of ImageNet weights minus random init, paired by seed.

    Columns `GAIN_COLUMNS`: the seeds with both runs, the mean, sd, min and max of their gains, and
    `verdict`, whether every seed's gain has the same sign. Empty when an initialisation is
    missing (no pretrained weights): there is then nothing to pair.
    """
    if not set(INITS) <= set(results.init):
        return pd.DataFrame(columns=list(GAIN_COLUMNS))
    paired = results.pivot_table(index=["fraction", "seed"], columns="init", values="test_auroc")
    gain = (paired["imagenet"] - paired["random"]).dropna()
    grouped = gain.groupby(level="fraction")
    table = grouped.agg(["count", "mean", "std", "min", "max"])
    table = table.rename(columns={"count": "seeds", "std": "sd"})
    table["verdict"] = grouped.apply(_sign_verdict)
    return table


def schedule_gaps(short: pd.DataFrame, long: pd.DataFrame) -> pd.DataFrame:
    """Test AUROC at 100 % per init, after the curve's schedule ("short") and the long one.

    `short` is the curve, `long` the same kind of rows trained longer; only the seeds of `long`
    are read from `short`, so each row holds the same seeds. Columns: the epochs trained, one
    per initialisation, and `gap` (ImageNet minus random init) when both ran.
    """
    seeds = set(long.seed)
    rows = []
    for name, part in (("short", short), ("long", long)):
        part = part[(part.fraction == 1.0) & part.seed.isin(seeds)]
        if part.empty:
            raise ValueError(f"schedule_gaps: no {name} run at 100% for seed(s) {sorted(seeds)}")
        row = {"schedule": name, "epochs": int(part.epochs.max())}
        rows.append({**row, **part.groupby("init").test_auroc.mean().to_dict()})
    table = pd.DataFrame(rows).set_index("schedule")
    if set(INITS) <= set(table.columns):
        table["gap"] = table["imagenet"] - table["random"]
    return table


def catch_up_verdict(table: pd.DataFrame, spread: float) -> str:
    """Whether random init caught up once both trained longer, from `schedule_gaps`' table.

    `spread` is the sd over seeds of the paired gain at 100 % after the curve's schedule (nan with
    one seed). A gap counts as clear when it is larger than twice that: a rough yardstick for one
    seed's gain, not a test.
    """
    short, long = table.loc["short"], table.loc["long"]
    epochs, long_epochs = int(short.epochs), int(long.epochs)
    if long_epochs <= epochs:
        return (
            f"The long runs trained {long_epochs} epoch(s), no more than the curve's {epochs} "
            "(MEDTL_MAX_EPOCHS caps both): there is no longer schedule to compare."
        )
    if "gap" not in table:
        return (
            f"No pretrained run, so no gap to close: random init went from {short.random:.3f} "
            f"after {epochs} epoch(s) to {long.random:.3f} after {long_epochs}, which shows "
            "only what the longer schedule did for random init."
        )
    change = (
        f"The gap (ImageNet minus random init) went from {short.gap:+.3f} after {epochs} "
        f"epoch(s) to {long.gap:+.3f} after {long_epochs}"
    )
    if not spread > 0:
        return (
            f"{change}. With one seed there is no seed-to-seed spread to judge that against, so "
            "this run cannot say whether random init caught up (the cpu and gpu profiles use 3)."
        )
    clear = 2 * spread
    within = f"within twice the seeds' sd of the paired gain at 100 % ({clear:.3f})"
    beyond = f"by more than twice the seeds' sd of the paired gain at 100 % ({clear:.3f})"
    if abs(short.gap) <= clear:
        return f"{change}; it was already {within} on the short schedule: no clear gap to close."
    if short.gap < 0:
        return f"{change}; random init was already ahead {beyond} on the short schedule."
    if abs(long.gap) <= clear:
        return (
            f"{change}, now {within}: at this data size random init caught up once both trained "
            "longer, so the short schedule, not the start, made the gap."
        )
    if long.gap > 0:
        return (
            f"{change}: ImageNet weights stay ahead {beyond}, so at this data size random init "
            f"has not caught up after {long_epochs} epochs."
        )
    return f"{change}: random init ends ahead {beyond} once both trained longer."
