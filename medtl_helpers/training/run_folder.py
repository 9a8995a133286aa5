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
    """What `folder` holds from an earlier run ("3 epochs, best val AUROC 0.9810 at epoch 2"),
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


def start_over(folder: Path) -> None:
    """Remove the run files an `overwrite=True` run replaces, saying what they held."""
    held = held_run(folder)
    if held is None:
        return
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)
    print(f"Starting over in {folder}: the previous run ({held}) was removed.")


def prepare_folder(folder, resume: bool, overwrite: bool, writes: bool = True) -> None:
    """Before training: a held run is carried on (`resume`), replaced (`overwrite`), or refused."""
    if folder is None or resume:
        return
    if not overwrite:
        refuse_held_run(folder)
    elif writes:
        start_over(Path(folder))
