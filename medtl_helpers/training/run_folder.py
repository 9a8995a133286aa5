"""A run folder that already holds a run: what it holds, and never training into it by accident.

Rerunning a training command without `--resume` is the first slip after a Ctrl-C. `fit` stops
before writing anything when its `out_dir` holds `best.pt` or `last.pt`, unless it was told to
carry on (`resume=True`, `--resume`) or to start over (`overwrite=True`, `--overwrite`), as the
Hugging Face Trainer and Lightning do.
"""

from __future__ import annotations

from pathlib import Path

from medtl_helpers.errors import MedtlError, in_terms
from medtl_helpers.training.checkpoints import read_checkpoint

RUN_FILES = ("last.pt", "best.pt")


def held_run(folder: str | Path | None) -> str | None:
    """What `folder` holds from an earlier run ("best val AUROC 0.9810 at epoch 2, in last.pt"),
    or None when it holds no checkpoint."""
    if folder is None or not any((Path(folder) / name).exists() for name in RUN_FILES):
        return None
    for name in RUN_FILES:
        path = Path(folder) / name
        try:
            meta = read_checkpoint(path)["meta"]
        except MedtlError:
            continue
        return f"best val AUROC {meta['val_auroc']:.4f} at epoch {meta['best_epoch']}, in {name}"
    return "checkpoints that cannot be read"


def refuse_held_run(folder: str | Path | None) -> None:
    """Stop before training into a folder that holds a run, naming both ways on."""
    held = held_run(folder)
    if held is not None:
        raise MedtlError(
            f"{folder} already holds a training run ({held}). Nothing was written. "
            + in_terms(
                "Pass resume=True to carry on from it, or overwrite=True to start over and "
                "replace it, or give another out_dir.",
                "Add --resume to carry on from it, or --overwrite to start over and replace it, "
                "or choose another --out folder.",
            )
        )


def start_over(folder: Path) -> bool:
    """Announce that an `overwrite=True` run replaces the run in `folder`; True when there is one.

    Nothing is deleted yet: the previous run stays loadable until the new run saves its first
    epoch (RunState then removes the old best.pt before writing), so a Ctrl-C in the first epoch
    loses nothing.
    """
    held = held_run(folder)
    if held is None:
        return False
    others = sorted(p.name for p in folder.iterdir() if p.name not in RUN_FILES)
    print(
        f"Starting over in {folder}: the previous run ({held}) is replaced when this run saves "
        "its first epoch."
        + (f" Other files there ({', '.join(others)}) describe the previous run." if others else "")
    )
    return True


def prepare_folder(folder, resume: bool, overwrite: bool, writes: bool = True) -> bool:
    """Before training: a held run is carried on (`resume`), replaced (`overwrite`: returns True,
    and the run's first save removes it), or refused."""
    if folder is None or resume:
        return False
    if not overwrite:
        refuse_held_run(folder)
        return False
    return writes and start_over(Path(folder))


def stage_changes(old: list[dict], new: list[dict]) -> str:
    """What differs between a saved run's stages and these ("epochs 1 -> 3"), for messages."""
    if len(old) != len(new):
        return f"{len(old)} stage(s) -> {len(new)}"
    changes = [
        f"{key} {a.get(key)!r} -> {b.get(key)!r}"
        + (f" (stage '{b.get('name')}')" if len(new) > 1 else "")
        for a, b in zip(old, new)
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]
    return "; ".join(changes) or "none"


def resumable_after(folder: Path, epochs: int, failed: Path) -> str:
    """After a failed checkpoint write in epoch `epochs`: what the folder still holds, and how
    to carry on."""
    saved = epochs - 1 if Path(failed).name == "last.pt" else epochs
    if saved == 0:
        return "Training stopped in epoch 1, before any epoch was saved: " + in_terms(
            "call fit again once there is space, or give another out_dir.",
            "run the same command again once there is space, or choose another --out folder.",
        )
    held = f"{Path(folder) / 'last.pt'} holds the run up to epoch {saved}"
    return f"Training stopped in epoch {epochs}; {held}. Once there is space, " + in_terms(
        "carry on with fit(..., resume=True) and the same out_dir.",
        "carry on with the same command and --resume.",
    )
