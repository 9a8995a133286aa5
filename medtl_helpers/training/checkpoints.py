"""What a training run keeps: checkpoints that say what they are, the history, and resuming.

A run folder holds `best.pt`, the weights with the best validation AUROC and the threshold chosen
with them, and `last.pt`, the latest weights plus everything needed to carry on (optimizer,
scheduler and scaler state, history, the shuffling generator, where in the stages the run is).
Both are written atomically after every epoch (temporary file, then rename), so Ctrl-C or a
crash loses at most one epoch and never leaves a half-written file. Loading uses
`torch.load(weights_only=True)`, which refuses pickled Python objects, and rebuilds the
architecture recorded in the file, so a ResNet-50 checkpoint is never poured into a ResNet-18.
"""

from __future__ import annotations

import copy
import pickle
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision
from torch import nn

import medtl_helpers
from medtl_helpers.atomic import atomic_path
from medtl_helpers.data.augment import IMAGENET_MEAN, IMAGENET_STD
from medtl_helpers.data.records import CLASSES
from medtl_helpers.errors import CheckpointError, MedtlError
from medtl_helpers.models import build_model

FORMAT = 1


def checkpoint_meta(
    model: nn.Module,
    *,
    image_size: int,
    data_source: str,
    profile: str,
    seed: int,
    threshold: float | None = None,
    **extra: object,
) -> dict:
    """Everything needed to rebuild and use the model later, as plain Python values."""
    return {
        "arch": model.medtl_arch,
        "head": model.medtl_head,
        "dropout": model.medtl_dropout,
        "weights": model.medtl_weights,
        "classes": list(CLASSES),
        "image_size": image_size,
        "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "channels": 3},
        "threshold": threshold,
        "data_source": data_source,
        "profile": profile,
        "seed": seed,
        "versions": {
            "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__),
            "medtl_helpers": medtl_helpers.__version__,
        },
        "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        **extra,
    }


def save_checkpoint(path: Path, model: nn.Module, meta: dict, training: dict | None = None) -> Path:
    """Write model weights, metadata and (optionally) the state needed to resume, atomically."""
    payload = {"format": FORMAT, "meta": meta, "state_dict": model.state_dict()}
    if training is not None:
        payload["training"] = training
    with atomic_path(path) as partial:
        torch.save(payload, partial)
    return Path(path)


def read_checkpoint(path: Path) -> dict:
    """The raw payload, loaded safely; every way a file can be bad becomes a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}. Train first (python -m medtl_helpers train … --out "
            f"{path.parent}) or check the path."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} contains pickled Python objects, not only tensors, so it was refused "
            "(weights_only=True protects you from code hidden in checkpoints). Load only files "
            "you trust, and save with medtl_helpers.training.save_checkpoint."
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(
            f"{path} is truncated or corrupt ({type(err).__name__}). Copy it again, or use "
            "last.pt from the same run folder."
        ) from err
    if not isinstance(payload, dict) or not {"meta", "state_dict"} <= set(payload):
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path} is not a medtl checkpoint (found {found}; expected 'meta' and "
            "'state_dict'). Save checkpoints with save_checkpoint()."
        )
    return payload


def load_checkpoint(
    path: Path, arch: str | None = None, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict]:
    """Rebuild the recorded architecture and load the weights; `arch` double-checks the file."""
    payload = read_checkpoint(path)
    meta = payload["meta"]
    if arch is not None and arch != meta["arch"]:
        raise CheckpointError(
            f"{path} holds a {meta['arch']} checkpoint, not {arch}. Load it with "
            f"arch='{meta['arch']}' (or arch=None to use the recorded one)."
        )
    model = build_model(
        meta["arch"],
        len(meta["classes"]),
        pretrained="none",
        head=meta["head"],
        dropout=meta.get("dropout", 0.0),
        verbose=False,
    )
    model.medtl_weights = meta["weights"]
    load_weights(model, payload, path)
    return model.to(map_location), meta


def load_weights(model: nn.Module, payload: dict, path: Path) -> None:
    """Load a payload's state dict into `model`, refusing another architecture by name."""
    recorded, actual = payload["meta"]["arch"], getattr(model, "medtl_arch", None)
    if actual is not None and recorded != actual:
        raise CheckpointError(
            f"{path} was trained as {recorded}, but this model is {actual}: each architecture "
            f"needs its own checkpoint. Use load_checkpoint({str(path)!r}) to rebuild {recorded}."
        )
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(
            f"{path} does not fit this model ({first}). It was saved for "
            f"{recorded} with head '{payload['meta']['head']}': build the model the same way."
        ) from err


@dataclass
class History:
    """One row per epoch (stage, losses, val AUROC, lr, seconds, images/s) plus the best epoch."""

    rows: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_auroc: float = -1.0
    threshold: float | None = None

    def add(self, **values: object) -> dict:
        # plain floats, so checkpoints holding the history load with weights_only=True
        plain = {k: float(v) if hasattr(v, "item") else v for k, v in values.items()}
        row = {"epoch": len(self.rows) + 1, **plain}
        self.rows.append(row)
        return row

    def mark_best(self, epoch: int, score: float, threshold: float) -> None:
        self.best_epoch, self.best_auroc = int(epoch), float(score)
        self.threshold = float(threshold)

    def column(self, name: str) -> list:
        return [row[name] for row in self.rows]

    @staticmethod
    def line(row: dict) -> str:
        return (
            f"epoch {row['epoch']:>2} [{row['stage']}]  train loss {row['train_loss']:.4f}  "
            f"val loss {row['val_loss']:.4f}  val AUROC {row['val_auroc']:.4f}  "
            f"{row['seconds']:.1f} s  {row['images_per_s']:.0f} img/s"
        )

    def table(self) -> str:
        return "\n".join(self.line(row) for row in self.rows)

    def state(self) -> dict:
        return {
            "rows": self.rows,
            "best_epoch": self.best_epoch,
            "best_auroc": self.best_auroc,
            "threshold": self.threshold,
        }

    def load_state(self, state: dict) -> None:
        self.rows = [dict(row) for row in state["rows"]]
        self.best_epoch, self.best_auroc = state["best_epoch"], state["best_auroc"]
        self.threshold = state["threshold"]

    def plot(self, title: str = "", axes=None):
        from medtl_helpers.plots import plot_history

        return plot_history(self.rows, title, axes)


class RunState:
    """Where a run stands, and its two files: the history, the best weights, the patience count.

    `position` is (stage index, epochs done in that stage). With `folder=None` nothing is written
    and the best weights are kept in memory only.
    """

    def __init__(self, folder: str | Path | None, stages: list, meta: dict):
        self.folder = None if folder is None else Path(folder)
        self.stages, self.meta = stages, meta
        self.history = History()
        self.best_state: dict | None = None
        self.position = (0, 0)
        self.bad_epochs = 0
        self.unfinished: dict | None = None  # saved states of the stage last.pt stopped inside

    def _save(self, name: str, model: nn.Module, training: dict | None = None) -> None:
        if self.folder is None:
            return
        history = self.history
        meta = checkpoint_meta(
            model,
            threshold=history.threshold,
            best_epoch=history.best_epoch,
            val_auroc=history.best_auroc,
            **self.meta,
        )
        save_checkpoint(self.folder / name, model, meta, training)

    def keep_best(self, model: nn.Module, row: dict, threshold: float) -> None:
        """Record `row` as the best epoch so far; write best.pt and keep its weights."""
        self.history.mark_best(row["epoch"], row["val_auroc"], threshold)
        self.best_state = copy.deepcopy(model.state_dict())
        self.bad_epochs = 0
        self._save("best.pt", model)

    def save_last(self, model: nn.Module, position: tuple[int, int], **states: object) -> None:
        """Write last.pt: the weights, `states` (optimizer, scheduler, ...) and the bookkeeping."""
        self.position = position
        training = {
            **states,
            "bad_epochs": self.bad_epochs,
            "position": list(position),
            "history": self.history.state(),
            "stages": [stage.as_dict() for stage in self.stages],
        }
        self._save("last.pt", model, training)

    def resume(self, model: nn.Module) -> dict | None:
        """Load last.pt into `model` and this state; return its training dict (None: fresh run)."""
        last = None if self.folder is None else self.folder / "last.pt"
        if last is None or not last.exists():
            return None
        payload = read_checkpoint(last)
        training = payload.get("training")
        if training is None or training["stages"] != [stage.as_dict() for stage in self.stages]:
            raise MedtlError(
                f"{last} was written by a run with other stages or settings, so it cannot be "
                "resumed with these. Use another --out folder, or delete the old one."
            )
        model.load_state_dict(payload["state_dict"])
        self.history.load_state(training["history"])
        self.position = tuple(training["position"])
        self.bad_epochs = training["bad_epochs"]
        best = self.folder / "best.pt"
        self.best_state = read_checkpoint(best)["state_dict"] if best.exists() else None
        index, done = self.position
        self.unfinished = training if done < self.stages[index].epochs else None
        print(f"Resuming from {last}: {len(self.history.rows)} epochs done.")
        return training

    def remaining(self):
        """(index, stage, first epoch, saved states or None) for each stage still to train."""
        first_index, done = self.position
        for index in range(first_index, len(self.stages)):
            saved = self.unfinished if index == first_index else None
            if saved is None:
                self.bad_epochs = 0  # patience counts within a stage
            yield index, self.stages[index], done if index == first_index else 0, saved

    def interrupted(self) -> str:
        where = self.folder / "best.pt" if self.folder else "memory (no out_dir given)"
        return (
            f"\nInterrupted after {len(self.history.rows)} epochs. The best model so far "
            f"(val AUROC {self.history.best_auroc:.3f}) is in {where}; resume with "
            "fit(..., resume=True) or --resume."
        )

    def finish(self, model: nn.Module) -> History:
        """Put the best weights back into `model` and return the history."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return self.history
