"""Course training runs kept under `runs/`: train once, reuse the result in later notebooks.

Heavy training in a notebook goes through `fit_or_load`. When the run folder already holds a
finished run with the same settings (architecture, weights, data, sizes, schedule, seed), it
loads the best model and its history instead of training again, and says so. A run that was
interrupted resumes from `last.pt`; a folder left by other settings is replaced, and says which
settings differ. The runs root is `$MEDTL_RUNS`, else `<repo>/runs`; `make test` points it at a
fresh temporary folder, so the tests always train.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from torch import nn

from medtl_helpers import config
from medtl_helpers.atomic import write_json
from medtl_helpers.data.records import ImageSet
from medtl_helpers.errors import MedtlError
from medtl_helpers.models.freezing import freeze
from medtl_helpers.training import fit
from medtl_helpers.training.checkpoints import load_weights, read_checkpoint
from medtl_helpers.training.runs import History

FINISHED = "finished.json"
SETTINGS = "settings.json"


def runs_root() -> Path:
    """Where course runs live: $MEDTL_RUNS, else `runs/` in the project folder."""
    setting = os.environ.get("MEDTL_RUNS", "").strip()
    return Path(setting).expanduser() if setting else config.project_root() / "runs"


def run_dir(name: str, profile: config.Profile | None = None) -> Path:
    """`runs/<profile>/<name>`: one folder per run, separate for each profile."""
    profile = profile or config.get_profile()
    return runs_root() / profile.name / name


def _plain(value: object) -> object:
    """A JSON-able stand-in for a fit() argument, stable from one session to the next."""
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__dict__"):  # e.g. BatchAugment: its settings, not its address
        return {
            "type": type(value).__name__,
            **{k: _plain(v) for k, v in vars(value).items() if not k.startswith("_")},
        }
    return type(value).__name__


def run_settings(model: nn.Module, train: ImageSet, val: ImageSet, seed: int, fit_kwargs: dict):
    """What must match for a finished run to be reused: the model, the data, seed and schedule.

    A model's `medtl_head_draw` (set by `evaluation.ensemble.build_member`, whose head is drawn
    from the seed alone) is recorded only when set, so the other runs keep the keys they had.
    """
    plain = {k: _plain(v) for k, v in fit_kwargs.items() if k not in ("device", "progress")}
    settings = {
        "arch": getattr(model, "medtl_arch", type(model).__name__),
        "weights": getattr(model, "medtl_weights", "unknown"),
        "head": getattr(model, "medtl_head", "unknown"),
        "train": train.fingerprint(),
        "val": val.fingerprint(),
        "seed": seed,
        "fit": json.loads(json.dumps(plain, default=str)),
        "caps": config.caps(),  # a capped smoke run is never reused by a full one
    }
    if hasattr(model, "medtl_head_draw"):
        settings["head_draw"] = model.medtl_head_draw
    return settings


def fit_or_load(
    name: str,
    build: Callable[[], nn.Module],
    train: ImageSet,
    val: ImageSet,
    *,
    profile: config.Profile | None = None,
    seed: int = 0,
    retrain: bool = False,
    **fit_kwargs: object,
) -> tuple[nn.Module, History]:
    """Train `build()` with `fit` in `run_dir(name)`, or load the same run finished earlier.

    Returns the model holding the best weights and the run's history.
    """
    profile = profile or config.get_profile()
    folder = run_dir(name, profile)
    model = build()
    settings = run_settings(model, train, val, seed, fit_kwargs)
    finished = _read_json(folder / FINISHED)
    if not retrain and finished is not None and finished["settings"] == settings:
        load_weights(model, read_checkpoint(folder / "best.pt"), folder / "best.pt")
        stages = fit_kwargs.get("stages") or [None]  # frozen as training left it: its last stage
        freeze(model, stages[-1].freeze if stages[-1] else fit_kwargs.get("freeze", "none"))
        history = History()
        history.load_state(finished["history"])
        device = config.get_device(str(fit_kwargs["device"]) if "device" in fit_kwargs else None)
        print(
            f"Loaded the finished run in {folder} (best val AUROC {history.best_auroc:.4f}, "
            f"epoch {history.best_epoch}) instead of training again. Delete that folder, or "
            "pass retrain=True, to train from scratch."
        )
        return model.to(device), history
    previous = _read_json(folder / SETTINGS)
    if retrain or (previous is not None and previous != settings):
        why = (
            "retrain=True"
            if retrain
            else f"its settings differ ({_differences(previous, settings)})"
        )
        print(f"Replacing the run in {folder}: {why}.")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / SETTINGS, settings)
    resume = (folder / "last.pt").exists()  # an interrupted run carries on; else a fresh one
    history = fit(
        model, train, val, profile=profile, seed=seed, out_dir=folder,
        resume=resume, overwrite=not resume, **fit_kwargs,
    )  # fmt: skip
    write_json(folder / FINISHED, {"settings": settings, "history": history.state()})
    return model, history


def _differences(old: dict, new: dict) -> str:
    keys = [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    return ", ".join(keys)


def _read_json(path: Path) -> dict | None:
    """The file's JSON; None when it does not exist; an error naming it when it is unreadable."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise MedtlError(
            f"{path} is unreadable ({err}), so this run folder cannot be trusted. Delete "
            f"{path.parent} (or pass retrain=True) to train this run again."
        ) from err
