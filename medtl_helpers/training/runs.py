"""A training run's bookkeeping: its history, its two checkpoints, and resuming it.

A run folder holds `best.pt`, the weights with the best validation AUROC and the threshold chosen
with them, and `last.pt`, the latest weights plus everything needed to carry on: optimizer,
scheduler and scaler state, the history, the shuffling generator, where in the stages the run
is (an early stop counts as the end of its stage), and the settings it was trained with.

After every epoch `last.pt` is written first and `best.pt` second, each atomically, so Ctrl-C or
a crash loses at most one epoch (`run_folder.py`: a folder holding a run is never trained into
by accident). If the crash falls between the two writes, `last.pt` already holds the new best
weights, and resuming repairs `best.pt` from it. A failed write (a full disk) stops training with
a WriteError naming the last epoch `last.pt` holds, and how to resume. Under torchrun every process
keeps a RunState and reads `last.pt` to resume, and rank 0 alone writes (`writes=False` elsewhere).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from medtl_helpers.errors import MedtlError, WriteError, in_terms
from medtl_helpers.metrics import choose_threshold
from medtl_helpers.training.checkpoints import checkpoint_meta, read_checkpoint, save_checkpoint
from medtl_helpers.training.run_folder import resumable_after, stage_changes

# What resuming must not change, and the command-line flag that sets each.
RESUME_SETTINGS = {
    "arch": "--arch",
    "head": "--head",
    "image_size": "--image-size",
    "batch_size": "--batch-size",
    "data_source": "--data",
    "data": "--data",
    "seed": "--seed",
    "world_size": "number of processes (torchrun --nproc-per-node x --nnodes)",
}
RESUME_DEFAULTS = {"world_size": 1}  # what a last.pt written before the setting existed used


def _keyword(key: str) -> str:
    """How a notebook or script sets what RESUME_SETTINGS names: fit's keyword, or the data."""
    if key in ("data", "data_source"):
        return "training set"
    return RESUME_SETTINGS[key] if key == "world_size" else key


@dataclass
class History:
    """One row per epoch plus the best epoch.

    A row holds the stage, losses, val AUROC, lr, `seconds` (the whole epoch, validation
    included) and `images_per_s` (training images per second of the training loop alone).
    """

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
            f"{row['seconds']:.1f} s  {row['images_per_s']:.0f} train img/s"
        )

    def table(self) -> str:
        return "\n".join(self.line(row) for row in self.rows)

    def state(self) -> dict:
        keys = ("rows", "best_epoch", "best_auroc", "threshold")
        return {key: getattr(self, key) for key in keys}

    def load_state(self, state: dict) -> None:
        self.rows = [dict(row) for row in state["rows"]]
        self.best_epoch, self.best_auroc = state["best_epoch"], state["best_auroc"]
        self.threshold = state["threshold"]

    def plot(self, title: str = "", axes=None):
        from medtl_helpers.plots import plot_history

        return plot_history(self.rows, title, axes)


class RunState:
    """Where a run stands: history, best weights, patience count, and its two files.

    `position` is (stage index, epochs done in that stage). `settings` are the values resuming
    must find unchanged (see RESUME_SETTINGS). With `folder=None` nothing is written and the best
    weights are kept in memory only; with `writes=False` (processes other than rank 0) neither.
    """

    def __init__(
        self, folder, stages: list, meta: dict, settings: dict, writes=True, replacing=False
    ):
        self.folder = None if folder is None else Path(folder)
        self.writes = writes
        self.replacing = replacing  # an overwrite: the old best.pt goes at the first save
        self.stages, self.meta, self.settings = stages, meta, settings
        self.history = History()
        self.best_state: dict | None = None
        self.best_is_new = False
        self.position = (0, 0)
        self.bad_epochs = 0
        self.unfinished: dict | None = None  # saved states of the stage last.pt stopped inside

    def record(self, model: nn.Module, row: dict, val_labels, val_probs) -> bool:
        """Count `row` towards patience; if it is the best epoch, keep its weights and the
        threshold chosen on its validation probabilities."""
        self.best_is_new = row["val_auroc"] > self.history.best_auroc
        if self.best_is_new:
            threshold = choose_threshold(val_labels, val_probs)
            self.history.mark_best(row["epoch"], row["val_auroc"], threshold)
            self.best_state = copy.deepcopy(model.state_dict())
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return self.best_is_new

    def save(self, model: nn.Module, position: tuple[int, int], states: dict) -> None:
        """Write last.pt (weights, `states`, bookkeeping), then best.pt if this epoch is best."""
        self.position = position
        training = {
            **states,
            "bad_epochs": self.bad_epochs,
            "position": list(position),
            "history": self.history.state(),
            "stages": [stage.as_dict() for stage in self.stages],
            "settings": self.settings,
        }
        if self.replacing:  # never a new last.pt beside the old run's best.pt
            (self.folder / "best.pt").unlink(missing_ok=True)
            self.replacing = False
        try:
            self._write("last.pt", model, training)
            if self.best_is_new:
                self._write("best.pt", model)
        except WriteError as err:
            held = resumable_after(self.folder, len(self.history.rows), err.path)
            raise WriteError(f"{err} {held}", err.path, err.errno) from err

    def _write(self, name: str, model: nn.Module, training: dict | None = None) -> None:
        if self.folder is None or not self.writes:
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

    def resume(self, model: nn.Module) -> dict | None:
        """Load last.pt into `model` and this state; return its training dict (None: fresh run)."""
        last = None if self.folder is None else self.folder / "last.pt"
        if last is None or not last.exists():
            where = "no out_dir was given" if last is None else f"{last} does not exist"
            print(f"Nothing to resume ({where}): starting a fresh run.")
            return None
        payload = read_checkpoint(last)
        training = payload.get("training")
        if training is None or training["stages"] != self._stage_dicts():
            raise MedtlError(
                f"{last} was written by a run with other stages or settings (changed: "
                f"{stage_changes(training['stages'] if training else [], self._stage_dicts())}), "
                "so it cannot be resumed with these. "
                + in_terms(
                    "Give another out_dir, or pass overwrite=True, not resume=True, to replace it.",
                    "Use another --out folder, or --overwrite instead of --resume to replace it.",
                )
            )
        self._check_settings(last, training.get("settings"))
        model.load_state_dict(payload["state_dict"])
        self.history.load_state(training["history"])
        self.position = tuple(training["position"])
        self.bad_epochs = training["bad_epochs"]
        self.best_state = self._best_weights(model, payload)
        index, done = self.position
        self.unfinished = training if done < self.stages[index].epochs else None
        print(f"Resuming from {last}: {len(self.history.rows)} epoch(s) done.")
        return training

    def _stage_dicts(self) -> list[dict]:
        return [stage.as_dict() for stage in self.stages]

    def _check_settings(self, last: Path, saved: dict | None) -> None:
        if saved is None:
            print(
                f"{last} predates the settings check: arch, sizes, data and seed are not checked."
            )
            return
        for key, flag in RESUME_SETTINGS.items():
            old = saved.get(key, RESUME_DEFAULTS.get(key))
            new = self.settings.get(key, RESUME_DEFAULTS.get(key))
            if old != new:
                raise MedtlError(
                    f"{last} was trained with {key}={old!r}, but this run has {key}={new!r}. "
                    + in_terms(
                        f"Resume with the same {_keyword(key)} as before, or train into another "
                        "out_dir (or pass overwrite=True instead of resume=True to start again).",
                        f"Resume with the same {flag} as before, or train into another --out "
                        "folder (or --overwrite instead of --resume to start again).",
                    )
                )

    def _best_weights(self, model: nn.Module, last: dict) -> dict | None:
        """best.pt's weights; repaired from last.pt when a crash came between the two writes."""
        if self.history.best_epoch == 0:
            return None
        best = self.folder / "best.pt"
        saved = read_checkpoint(best) if best.exists() else None
        if saved is not None and saved["meta"]["best_epoch"] == self.history.best_epoch:
            return saved["state_dict"]
        if self.history.best_epoch != len(self.history.rows):
            return None if saved is None else saved["state_dict"]
        print(f"{best} was behind last.pt (a crash between the two writes): rewritten from it.")
        self.best_is_new = True
        self._write("best.pt", model)
        self.best_is_new = False
        return copy.deepcopy(last["state_dict"])

    def finished(self) -> bool:
        index, done = self.position
        return index == len(self.stages) - 1 and done >= self.stages[index].epochs

    def remaining(self):
        """(index, stage, first epoch, saved states or None) for each stage still to train."""
        first_index, done = self.position
        for index in range(first_index, len(self.stages)):
            saved = self.unfinished if index == first_index else None
            if saved is None:
                self.bad_epochs = 0  # patience counts within a stage
            yield index, self.stages[index], done if index == first_index else 0, saved

    def describe_finished(self) -> str:
        return (
            f"{self.folder} holds a finished run ({len(self.history.rows)} epoch(s), best val "
            f"AUROC {self.history.best_auroc:.4f} at epoch {self.history.best_epoch}): nothing "
            "was trained and nothing changed. "
            + in_terms(
                "To train again from the start, pass overwrite=True (and resume=False), or give "
                "another out_dir.",
                "To train again from the start, use --overwrite instead of --resume, or another "
                "--out folder.",
            )
        )

    def interrupted(self) -> str:
        """What Ctrl-C leaves behind, in the words of the interface that was interrupted."""
        epochs = len(self.history.rows)
        if epochs == 0:
            return (
                "\nInterrupted in the first epoch, before any epoch had finished: nothing was "
                "saved, so there is nothing to resume. "
                + in_terms("Call fit again to start.", "Run the same command again to start.")
            )
        if self.folder is None:  # (under torchrun only rank 0's words are printed)
            return (
                f"\nInterrupted after {epochs} epoch(s). No out_dir was given, so nothing was "
                f"saved; the model holds its latest weights (the best had val AUROC "
                f"{self.history.best_auroc:.3f})."
            )
        return (
            f"\nInterrupted after {epochs} epoch(s). The best model so far (val AUROC "
            f"{self.history.best_auroc:.3f}) is in {self.folder / 'best.pt'}; "
            + in_terms(
                "carry on with fit(..., resume=True) and the same out_dir.",
                "carry on with the same command and --resume.",
            )
        )

    def finish(self, model: nn.Module) -> History:
        """Put the best weights back into `model` and return the history."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return self.history
