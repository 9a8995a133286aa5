"""The two files of a training run folder: `best.pt` (for use) and `last.pt` (for resuming).

`best.pt` holds the weights with the best validation AUROC and the threshold chosen with them.
`last.pt` holds the latest weights plus everything needed to carry on: optimizer, scheduler and
scaler state, the history, the shuffling generator and where in the stages the run stopped.
Both are written atomically after every epoch, so an interrupted run loses at most one epoch.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from medtl_helpers.checkpoint import checkpoint_meta, read_checkpoint, save_checkpoint
from medtl_helpers.errors import MedtlError
from medtl_helpers.history import History


class RunFolder:
    """Writes and reads best.pt / last.pt; with `folder=None` it writes nothing."""

    def __init__(self, folder: str | Path | None, meta: dict):
        self.folder = None if folder is None else Path(folder)
        self.meta = meta

    def save(self, name: str, model: nn.Module, history: History, training: dict | None = None):
        if self.folder is None:
            return
        meta = checkpoint_meta(
            model,
            threshold=history.threshold,
            best_epoch=history.best_epoch,
            val_auroc=history.best_auroc,
            **self.meta,
        )
        save_checkpoint(self.folder / name, model, meta, training)

    def describe_best(self) -> str:
        return f"{self.folder / 'best.pt'}" if self.folder else "memory (no out_dir given)"

    def restore(self, model: nn.Module, history: History, stages: list[dict]) -> dict | None:
        """Load last.pt into `model` and `history`; return its training state (None: fresh run).

        The returned dict also carries `best_state`, the weights of best.pt, when it exists.
        """
        last = None if self.folder is None else self.folder / "last.pt"
        if last is None or not last.exists():
            return None
        payload = read_checkpoint(last)
        training = payload.get("training")
        if training is None or training["stages"] != stages:
            raise MedtlError(
                f"{last} was written by a run with other stages or settings, so it cannot be "
                "resumed with these. Use another --out folder, or delete the old one."
            )
        model.load_state_dict(payload["state_dict"])
        history.load_state(training["history"])
        best = self.folder / "best.pt"
        training["best_state"] = read_checkpoint(best)["state_dict"] if best.exists() else None
        print(f"Resuming from {last}: {len(history.rows)} epochs done.")
        return training
