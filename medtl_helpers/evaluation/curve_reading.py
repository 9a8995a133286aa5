"""Reading a learning curve (07): the gain of ImageNet weights paired by seed, and the long run.

Each seed of `learning_curve` trains both initialisations on the same subset with the same batch
order, so the two runs of a seed are paired. Whether the two min-max bands overlap is then the
wrong test: they can overlap while every seed shows the same gain. `paired_gains` gives the gain
per seed's pair and its spread. `schedule_gaps` and `catch_up_verdict` read the check of section
7, where both initialisations are trained longer at the smallest fraction and at the full one:
the gap after the curve's schedule and after the long one differ in the schedule and in the
number of epochs validation picks the best from, not in the start or the data.
"""

from __future__ import annotations

import pandas as pd

from medtl_helpers.evaluation.data_efficiency import INITS

GAIN_COLUMNS = ("seeds", "mean", "sd", "min", "max", "verdict")


def _sign_verdict(gains: pd.Series) -> str:
    n = len(gains)
    if n < 2:
        return "one seed: no spread to judge"
    ahead, behind = int((gains > 0).sum()), int((gains < 0).sum())
    if ahead == n:
        return f"ImageNet ahead in all {n} seeds"
    if behind == n:
        return f"random init ahead in all {n} seeds"
    # a gain of exactly 0 is a tie: neither a gain nor a loss, so it breaks a shared sign
    ties = n - ahead - behind
    if ties == 0:
        return "signs differ: no consistent difference"
    return (
        f"no consistent difference: ImageNet ahead in {ahead}, random init ahead in {behind}, "
        f"tied (gain 0) in {ties} of {n} seeds"
    )


def paired_gains(results: pd.DataFrame) -> pd.DataFrame:
    """Per fraction, test AUROC of ImageNet weights minus random init, paired by seed.

    Columns `GAIN_COLUMNS`: the seeds with both runs, the mean, sd, min and max of their gains, and
    `verdict`, whether every seed's gain has the same sign (a gain of exactly 0 is a tie, which
    no side wins). Empty when an initialisation is
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


def schedule_gaps(short: pd.DataFrame, long: pd.DataFrame, fraction: float = 1.0) -> pd.DataFrame:
    """Test AUROC at `fraction` per init, after the curve's schedule ("short") and the long one.

    `short` is the curve, `long` the same kind of rows trained longer; only the seeds of `long`
    are read from `short`, so each row holds the same seeds. Columns: the fraction, the epochs
    and the optimizer steps trained, one per initialisation, and `gap` (ImageNet minus random
    init) when both ran.
    """
    seeds = set(long.seed)
    rows = []
    for name, part in (("short", short), ("long", long)):
        part = part[(part.fraction == fraction) & part.seed.isin(seeds)]
        if part.empty:
            raise ValueError(
                f"schedule_gaps: no {name} run at {fraction:.0%} for seed(s) {sorted(seeds)}"
            )
        row = {"schedule": name, "fraction": fraction, "epochs": int(part.epochs.max())}
        row["steps"] = int(part.steps.max())
        rows.append({**row, **part.groupby("init").test_auroc.mean().to_dict()})
    table = pd.DataFrame(rows).set_index("schedule")
    if set(INITS) <= set(table.columns):
        table["gap"] = table["imagenet"] - table["random"]
    return table


def _side(gap: float, clear: float) -> str:
    """Who is ahead by more than `clear`: "imagenet", "random", or "" (within it)."""
    return "imagenet" if gap > clear else "random" if gap < -clear else ""


def _long_reading(side: str, long_epochs: int) -> str:
    if side == "imagenet":
        return f"ImageNet weights end ahead by more than that after {long_epochs} epochs"
    if side == "random":
        return f"random init ends ahead by more than that after {long_epochs} epochs"
    return f"the gap is within it after {long_epochs} epochs too"


def _gap_reading(short: pd.Series, long: pd.Series, clear: float, long_epochs: int) -> str:
    """The sentence after the gaps: which schedule shows a clear gap, and which arm moved."""
    yardstick = (
        f"twice the seeds' sd of the paired gain at {100 * short.fraction:g} % ({clear:.3f})"
    )
    before, after = _side(short.gap, clear), _side(long.gap, clear)
    if before == "":
        if after == "":
            return (
                f"; within {yardstick} on both schedules: no clear gap on either schedule at this "
                "data size (one seed), so nothing for random init to catch up."
            )
        return (
            f"; within {yardstick} on the short schedule, but {_long_reading(after, long_epochs)}."
        )
    if before == "random":
        return (
            f"; random init was already ahead by more than {yardstick} on the short schedule, "
            f"so there was nothing to catch up; {_long_reading(after, long_epochs)}."
        )
    if after == "imagenet":
        return (
            f": ImageNet weights stay ahead by more than {yardstick}, so at this data size "
            f"random init has not caught up after {long_epochs} epochs"
            f"{_shrink_reading(short, long, clear)}."
        )
    return _closing_reading(short, long, clear, yardstick, after)


def _shrink_reading(short: pd.Series, long: pd.Series, clear: float) -> str:
    """A clear ImageNet lead that stays: how much of it closed, and whether random init rose.

    Both gaps are single-seed runs, so a closing no larger than `clear` (the yardstick) is given
    no cause. A larger one is split between random init's rise and the ImageNet run's drop, with
    the same half-of-the-closing rule as `_closing_reading`; each arm's change is one run's, with
    no yardstick of its own, so the split is a reading of this pair, not read to the percent.
    """
    closed, rise = short.gap - long.gap, long.random - short.random
    if closed <= 0:
        return (
            f"; the gap did not shrink ({short.gap:+.3f} -> {long.gap:+.3f}), so the short "
            "schedule did not make it: it points to the start, up to this budget"
        )
    if closed <= clear:
        return (
            f"; the gap shrank by {closed:.3f}, within that yardstick: no measurable part of it "
            "was the short schedule's, and it points to the start, up to this budget"
        )
    shrank = f"the gap shrank by {closed:.3f}, more than that yardstick,"
    stays = f"the {long.gap:+.3f} that stays points to the start, up to this budget"
    if rise <= 0:
        return (
            f"; {shrank} but random init did not improve ({short.random:.3f} -> "
            f"{long.random:.3f}): the ImageNet run got worse, which is not under-training of "
            f"random init; {stays}"
        )
    if rise < closed / 2:
        return (
            f"; {shrank} but random init rose by only {rise:.3f}: in this one pair of runs it "
            "shrank mostly because the ImageNet run got worse, which is not under-training of "
            f"random init; {stays}"
        )
    part = "all" if rise >= closed else "at least half"
    return (
        f", but {shrank} while random init rose by {rise:.3f}: in this one pair of runs {part} "
        f"of the closing was the short schedule's (random init under-trained), and {stays}"
    )


def _closing_reading(
    short: pd.Series, long: pd.Series, clear: float, yardstick: str, after: str
) -> str:
    """A clear ImageNet lead that closed: a catch-up if random init's rise made at least half.

    A closing no larger than `clear` (the yardstick) is given no cause, as in `_shrink_reading`.
    """
    rise, closed = long.random - short.random, short.gap - long.gap
    where = "now within" if after == "" else "random init ends ahead by more than"
    if closed <= clear:  # only possible when the gap ends within the yardstick
        return (
            f", {where} {yardstick}, but it closed by only {closed:.3f}, itself within that "
            "yardstick: the short gap was barely clear, and this pair cannot say whether random "
            "init caught up."
        )
    if rise <= 0:
        cause = "random init did not improve: the gap closed because the ImageNet run got worse"
    elif rise < closed / 2:
        cause = (
            f"random init rose by only {rise:.3f} of the {closed:.3f} the gap closed: it closed "
            "mostly because the ImageNet run got worse"
        )
    elif after == "random":
        return f": random init ends ahead by more than {yardstick} once both trained longer."
    else:
        return (
            f", now within {yardstick}, and random init's rise made at least half of the "
            "closing: at this data size it caught up once both trained longer, which points to "
            "the short schedule rather than the start as the cause of the gap (one seed and one "
            "longer schedule: evidence, not proof)."
        )
    what = "catching up" if after == "" else "overtaking"
    return f", {where} {yardstick}, but {cause}, which is not random init {what}."


def catch_up_verdict(table: pd.DataFrame, spread: float) -> str:
    """Whether random init caught up once both trained longer, from `schedule_gaps`' table.

    `spread` is the sd over seeds of the paired gain at the table's fraction after the curve's
    schedule (nan with one seed). A gap counts as clear when it is larger than twice that: a
    rough yardstick for one seed's gain, not a test. A clear ImageNet lead that closes counts as
    catching up only when it closed by more than the yardstick and random init's own test AUROC
    rose by at least half the closing: a gap that closes because the ImageNet run got worse is
    not a catch-up. A clear lead that stays and closed by more than the yardstick is read in two
    parts: how much of the closing random init's rise made (the short schedule's part), against
    what stays (which points to the start, up to the long budget). Whether the lead closes or
    stays, a closing within the yardstick is given no cause, and the split of a larger one comes
    from single runs of each arm (a reading of this pair, not read to the percent). The sentence
    gives both arms' AUROCs, the steps of both schedules, and reads the gap on both.
    """
    short, long = table.loc["short"], table.loc["long"]
    epochs, long_epochs = int(short.epochs), int(long.epochs)
    at, steps = f" at {100 * short.fraction:g} %", f"{short.steps:.0f} -> {long.steps:.0f} steps"
    if long_epochs <= epochs:
        return (
            f"The long runs trained {long_epochs} epoch(s), no more than the curve's {epochs} "
            "(MEDTL_MAX_EPOCHS caps both): there is no longer schedule to compare."
        )
    if "gap" not in table:
        return (
            f"No pretrained run, so no gap to close{at}: random init went from "
            f"{short.random:.3f} after {epochs} epoch(s) to {long.random:.3f} after {long_epochs} "
            f"({steps}), which shows only what the longer schedule did for random init."
        )
    change = (
        f"The gap (ImageNet minus random init){at} went from {short.gap:+.3f} after {epochs} "
        f"epoch(s) to {long.gap:+.3f} after {long_epochs} ({steps}; random init "
        f"{short.random:.3f} -> {long.random:.3f}, ImageNet weights {short.imagenet:.3f} -> "
        f"{long.imagenet:.3f})"
    )
    if not spread > 0:
        return (
            f"{change}. With one seed there is no seed-to-seed spread to judge that against, so "
            "this run cannot say whether random init caught up (the cpu and gpu profiles use 3)."
        )
    return change + _gap_reading(short, long, 2 * spread, long_epochs)
