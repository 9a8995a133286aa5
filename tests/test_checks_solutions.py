"""Every checker passes the instructor's own solution, read from the notebook as it is now.

A checker made stricter must still accept the answer the course gives. Each solution cell runs as
a notebook cell would (module __main__), with the names the notebook defines before it; for a
function or a class only its definitions run, not the demo lines that need the notebook's data.
"""

from __future__ import annotations

import ast
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import solutions
from torch import nn

from medtl_helpers.course import checks
from medtl_helpers.data.records import ImageSet
from medtl_helpers.metrics import choose_threshold, confusion
from medtl_helpers.models import GROUPS
from medtl_helpers.training.stages import Stage, discriminative_lrs


def small_split(labels: list[int]) -> ImageSet:
    n = len(labels)
    return ImageSet(
        images=torch.zeros((n, 1, 4, 4), dtype=torch.uint8),
        labels=torch.tensor(labels),
        patients=[f"person{i}" for i in range(n)],
        source="synthetic",
    )


SPLITS = {"train": small_split([1, 1, 1, 0]), "val": small_split([1, 0]), "test": small_split([1])}
ROWS = [
    {"arch": "resnet18", "latency_b1_ms": 4.0},
    {"arch": "resnet34", "latency_b1_ms": 7.5},
    {"arch": "resnet50", "latency_b1_ms": 11.0},
]
PARTIAL_SETUP = "def conv(c_in, c_out, k=3):\n    return k * k * c_in * c_out\n\n\n"
PARTIAL_SETUP += "def batchnorm(channels):\n    return 2 * channels\n"

# (notebook, text that finds the solution cell, checker, the name it defines, whole cell?, names
# the notebook defines before it, further arguments of the checker)
EXERCISES = [
    ("00_setup_and_data", "def leaked_patients", "check_leaked_patients", "leaked_patients",
     False, {}, ()),
    ("00_setup_and_data", "shares = ", "check_pneumonia_shares", "shares", True,
     {"splits": SPLITS}, (SPLITS,)),
    ("01_residual_blocks", "class MyBasicBlock", "check_basic_block", "MyBasicBlock", False, {},
     ()),
    ("01_residual_blocks", "bottleneck_params = ", "check_bottleneck_params", "bottleneck_params",
     True, {"in_channels": 256, "width": 64, "expansion": 4}, ()),
    ("02_resnet_depth_selection", "def conv_params", "check_conv_params", "conv_params", False,
     {}, ()),
    ("02_resnet_depth_selection", "def deepest_within", "check_deepest_within", "deepest_within",
     False, {}, (ROWS,)),
    ("03_freezing_strategies", "def freeze_groups", "check_freeze_groups", "freeze_groups", False,
     {"FIRST_COMPONENT_TO_GROUP": {"conv1": "stem", "bn1": "stem", "fc": "head"}}, ()),
    ("03_freezing_strategies", "resnet34_partial = ", "check_partial_count", "resnet34_partial",
     True, {"setup": PARTIAL_SETUP}, ()),
    ("04_pneumonia_training_gpu", "def balanced_weights", "check_class_weights",
     "balanced_weights", False, {}, ()),
    ("04_pneumonia_training_gpu", "def threshold_and_rates", "check_val_threshold",
     "threshold_and_rates", False, {}, ()),
    ("05_progressive_fine_tuning", "def group_lrs", "check_group_lrs", "group_lrs", False, {}, ()),
    ("05_progressive_fine_tuning", "my_stages = ", "check_stage_plan", "my_stages", True, {}, ()),
    ("06_ensembling_and_cam", "def my_soft_vote", "check_soft_vote", "my_soft_vote", False, {}, ()),
    ("06_ensembling_and_cam", "def my_hard_vote", "check_hard_vote", "my_hard_vote", False, {}, ()),
    ("06_ensembling_and_cam", "TARGET_LAYER = ", "check_target_layer", "TARGET_LAYER", True, {},
     ()),
    ("07_data_efficiency", "def my_passes_needed", "check_passes_needed", "my_passes_needed",
     False, {}, ()),
    ("07_data_efficiency", "def summarise_seeds", "check_seed_summary", "summarise_seeds", False,
     {}, ()),
    ("08_domain_shift_and_adaptation", "def reset_statistics", "check_batchnorm_reset",
     "reset_statistics", False, {}, ()),
    ("08_domain_shift_and_adaptation", "def most_drifted", "check_most_drifted", "most_drifted",
     False, {}, ()),
    ("08_domain_shift_and_adaptation", "def coral", "check_coral_distance", "coral", False, {}, ()),
    ("09_few_shot_and_meta_learning", "def classify", "check_prototype_classifier", "classify",
     False, {}, ()),
    ("09_few_shot_and_meta_learning", "def shared_patients", "check_episode_leak",
     "shared_patients", False, {}, ()),
    ("09_few_shot_and_meta_learning", "def tied_best", "check_tied_best", "tied_best", False, {},
     ()),
]  # fmt: skip


def definitions(source: str) -> str:
    """The imports, functions and classes of a cell: its demo lines need the notebook's data."""
    kept = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)
    tree = ast.parse(source)
    return ast.unparse([node for node in tree.body if isinstance(node, kept)])


def test_every_checker_has_a_solution_here():
    assert sorted(e[2] for e in EXERCISES) == sorted(
        name for name in checks.__all__ if name.startswith("check_")
    )


@pytest.mark.parametrize(
    ("stem", "marker", "checker", "name", "whole", "before", "args"),
    EXERCISES,
    ids=[e[2] for e in EXERCISES],
)
def test_the_instructors_solution_passes(stem, marker, checker, name, whole, before, args, capsys):
    source = next(s for s in solutions(stem).values() if marker in s)
    namespace = {
        "__name__": "__main__", "math": math, "np": np, "pd": pd, "torch": torch, "nn": nn,
        "F": F, "ImageSet": ImageSet, "choose_threshold": choose_threshold,
        "confusion": confusion, "GROUPS": GROUPS, "Stage": Stage,
        "discriminative_lrs": discriminative_lrs,
    }  # fmt: skip
    before = dict(before)
    exec(before.pop("setup", ""), namespace)
    namespace.update(before)
    exec(source if whole else definitions(source), namespace)
    getattr(checks, checker)(namespace[name], *args)
    assert capsys.readouterr().out.splitlines()[-1].startswith(("Correct", "Well done"))
