"""Training: `fit`, its stages, frozen features, and the files a run keeps (checkpoints, resume).

`fit` is the loop every notebook calls (`training/fit.py`, one screen); `fit_or_load` reuses a
finished run saved by an earlier notebook; `precision_speeds` times fit's training step in each
precision (notebook 04).
"""

from medtl_helpers.training.checkpoints import (
    checkpoint_meta,
    load_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from medtl_helpers.training.features import FrozenFeatures, backbone_features
from medtl_helpers.training.fit import fit
from medtl_helpers.training.runs import History, RunState
from medtl_helpers.training.saved_runs import fit_or_load, run_dir, runs_root
from medtl_helpers.training.speed import precision_speeds
from medtl_helpers.training.stages import (
    Stage,
    discriminative_lrs,
    make_optimizer,
    make_scheduler,
    progressive_stages,
    warmup_steps,
)
from medtl_helpers.training.steps import BatchTrainer, class_weights, steps_per_epoch

__all__ = [
    "BatchTrainer",
    "FrozenFeatures",
    "History",
    "RunState",
    "Stage",
    "backbone_features",
    "checkpoint_meta",
    "class_weights",
    "discriminative_lrs",
    "fit",
    "fit_or_load",
    "load_checkpoint",
    "load_weights",
    "make_optimizer",
    "make_scheduler",
    "precision_speeds",
    "progressive_stages",
    "read_checkpoint",
    "run_dir",
    "runs_root",
    "save_checkpoint",
    "steps_per_epoch",
    "warmup_steps",
]
