"""`fit`: the one training loop every notebook uses, readable on one screen.

Each epoch trains on every batch, scores validation AUROC, keeps the weights when that improved,
writes `last.pt` (and `best.pt`) to resume from, and ends the stage after `patience` epochs
without improvement. The work inside an epoch is in `steps.py`; the run's files and bookkeeping
in `runs.py`; the stages (progressive fine-tuning, each with a fresh optimizer and scheduler) in
`stages.py`. A stage that freezes the whole backbone computes its features once and trains the
head on them (`features.py`). Under torchrun the same loop runs in every process, each on its
slice of every batch (`distributed.py`); alone, nothing of that happens.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from medtl_helpers import config
from medtl_helpers.data.augment import BatchAugment
from medtl_helpers.data.records import ImageSet
from medtl_helpers.data.split import too_small_to_validate
from medtl_helpers.errors import MedtlError, in_terms
from medtl_helpers.metrics import auroc
from medtl_helpers.training import distributed
from medtl_helpers.training.features import FrozenFeatures, backbone_is_frozen
from medtl_helpers.training.run_folder import prepare_folder
from medtl_helpers.training.runs import History, RunState
from medtl_helpers.training.stages import Stage, make_optimizer, make_scheduler
from medtl_helpers.training.steps import BatchTrainer, steps_per_epoch

SHARED_OUT = (
    "Every process must read the same --out folder: on several nodes put it on a filesystem they "
    "share, or copy last.pt to the same path on each node."
)


def fit(
    model: nn.Module,
    train: ImageSet,
    val: ImageSet,
    *,
    epochs: int | None = None,
    lr: float = 1e-3,
    freeze: str | list[str] = "none",
    stages: list[Stage] | None = None,
    profile: config.Profile | None = None,
    batch_size: int | None = None,
    image_size: int | None = None,
    device: torch.device | str | None = None,
    amp: str = "auto",
    channels_last: bool = True,
    weighted_loss: bool = True,
    augment: BatchAugment | None = None,
    patience: int = 3,
    eval_batch_size: int = 256,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    seed: int = 0,
    progress: bool = True,
    sync_batchnorm: bool = False,
    **meta: object,
) -> History:
    """Train `model` on `train`, select by validation AUROC, and return the history.

    On return the model holds the best weights. `out_dir` receives `best.pt` and `last.pt`; one
    already holding a run is carried on (`resume`), replaced (`overwrite`) or refused. `stages`
    replaces (epochs, lr, freeze) with phases; `augment=None` is a default `BatchAugment`,
    `False` none. Under torchrun `batch_size` is each process's (`sync_batchnorm`: BatchNorm
    over the global batch, GPUs). Extra keyword arguments go into the checkpoints' metadata.
    """
    profile = profile or config.get_profile()
    stages = _capped(stages or [Stage("train", epochs or profile.epochs, freeze, lr)])
    world = distributed.start(config.get_device(str(device) if device is not None else None))
    replacing = prepare_folder(out_dir, resume, overwrite, world.is_main)  # held run: refused?
    options = dict(amp=amp, channels_last=channels_last, weighted_loss=weighted_loss, world=world)
    options.update(augment=augment, eval_batch_size=eval_batch_size, seed=seed, progress=progress)
    with distributed.session(world, model, sync_batchnorm):  # one process: nothing to set up
        batches = _batch_trainer(model, train, val, profile, batch_size, image_size, options)
        settings = _settings(model, train, batches, seed)
        record = _meta(train, batches, profile, seed, meta)
        run = RunState(out_dir, stages, record, settings, world.is_main, replacing)
        saved = run.resume(model) if resume else None
        world.check_same((len(run.history.rows), run.position), f"{out_dir}/last.pt", SHARED_OUT)
        if saved is not None:
            batches.load_generators(saved)
            if run.finished():
                print(run.describe_finished())
                return run.finish(model)
        _announce(val, batches, patience)
        try:
            train_stages(model, train, val, batches, run, patience)
        except KeyboardInterrupt:
            print(run.interrupted())  # what was saved, and how to carry on
            raise
        return run.finish(model)


def train_stages(model, train, val, batches: BatchTrainer, run: RunState, patience: int) -> None:
    """The epoch loop: train every batch, validate, keep the best, stop early, save."""
    for index, stage, first_epoch, saved in run.remaining():
        optimizer = make_optimizer(model, stage)
        frozen = backbone_is_frozen(model)
        trainer = FrozenFeatures(model, train, val, batches) if frozen else batches
        trainer.distribute()  # under torchrun: DDP over what this stage trains
        steps = steps_per_epoch(len(train), batches.global_batch)
        scheduler = make_scheduler(optimizer, stage, steps)
        if saved is not None:
            batches.load_states(optimizer, scheduler, saved)
        for epoch in range(first_epoch, stage.epochs):
            start = time.perf_counter()
            desc = f"{stage.name} {epoch + 1}/{stage.epochs}"
            loss = trainer.train_epoch(optimizer, scheduler, desc)
            training = time.perf_counter() - start  # the images/s of training alone
            probs = trainer.val_probabilities().double()
            seconds = time.perf_counter() - start  # the whole epoch, validation included
            row = run.history.add(
                stage=stage.name,
                train_loss=loss,
                **val_scores(val, probs, stage, optimizer),
                lr=optimizer.param_groups[-1]["lr"],
                seconds=seconds,
                images_per_s=steps * batches.global_batch / max(training, 1e-9),
            )
            improved = run.record(model, row, val.labels, probs)
            stop = run.bad_epochs >= patience
            position = (index, stage.epochs if stop else epoch + 1)  # an early stop ends the stage
            run.save(model, position, batches.states(optimizer, scheduler))
            if batches.progress:
                print(History.line(row) + ("  *best" if improved else ""))
            if stop:
                break


def val_scores(val: ImageSet, probs: torch.Tensor, stage: Stage, optimizer) -> dict[str, float]:
    """Validation loss (binary cross-entropy of the probabilities) and AUROC."""
    if not torch.isfinite(probs).all():
        lr = optimizer.param_groups[-1]["lr"]
        raise MedtlError(
            f"Training diverged in stage '{stage.name}': the model's validation outputs are not "
            f"numbers (NaN), so its loss exploded. Train again with a smaller learning rate "
            f"(lr={stage.lr / 10:g} instead of {stage.lr:g}; the last step used {lr:.3g}), or "
            "in fp32 with amp='off' (--amp off). The best model so far is kept."
        )
    y = val.labels.double()
    loss = nn.functional.binary_cross_entropy(probs.clamp(1e-6, 1 - 1e-6), y)
    return {"val_loss": float(loss), "val_auroc": auroc(y, probs)}


def _capped(stages: list[Stage]) -> list[Stage]:
    """The stages, each cut to MEDTL_MAX_EPOCHS epochs when that cap is set."""
    if (cap := config.caps().get("epochs")) is not None:
        stages = [replace(stage, epochs=min(stage.epochs, cap)) for stage in stages]
        print(f"MEDTL_MAX_EPOCHS={cap}: every stage trains at most {cap} epoch(s).")
    return stages


def _announce(val: ImageSet, batches: BatchTrainer, patience: int) -> None:
    """A validation split too small to choose with, then the precision and the patience."""
    if (problem := too_small_to_validate(val)) is not None:
        warnings.warn(
            f"The validation split {problem}. Use more data, or a larger validation share ("
            + in_terms("load_folder(..., val_fraction=0.3)", "--val-fraction 0.3")
            + ").",
            stacklevel=3,
        )
    if batches.progress:
        print(f"Precision: {batches.precision}.")
        print(f"Early stopping: a stage ends after {patience} epoch(s) without a better val AUROC.")


def _meta(train: ImageSet, batches: BatchTrainer, profile, seed: int, extra: dict) -> dict:
    """What every checkpoint of the run records besides the model: sizes, data, profile, seed."""
    return {
        "image_size": batches.image_size,
        "data_source": train.source,
        "train_fingerprint": train.fingerprint(),
        "train_patients": sorted(set(train.patients)),
        "profile": profile.name,
        "seed": seed,
        **extra,
    }


def _settings(model: nn.Module, train: ImageSet, batches: BatchTrainer, seed: int) -> dict:
    """What resuming must find unchanged (runs.RESUME_SETTINGS)."""
    return {
        "arch": getattr(model, "medtl_arch", type(model).__name__),
        "head": getattr(model, "medtl_head", None),
        "image_size": batches.image_size,
        "batch_size": batches.batch_size,
        "world_size": batches.world.size,
        "data_source": train.source,
        "data": train.fingerprint(),
        "seed": seed,
    }


def _batch_trainer(model, train, val, profile, batch_size, image_size, options):
    """The profile's defaults filled in, the model moved to the device in the chosen layout."""
    device = options["world"].device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every batch has the same shape: tune once
    memory = torch.channels_last if options["channels_last"] else torch.contiguous_format
    model.to(device, memory_format=memory)
    augment = options["augment"]
    options["augment"] = BatchAugment() if augment is None else augment or None
    batch_size = batch_size or profile.batch_size
    image_size = image_size or train.image_size
    return BatchTrainer(
        model, train, val, device=device, batch_size=batch_size, image_size=image_size, **options
    )
