"""ResNets for the course: the residual blocks, `build_model`, layer groups, freezing and modes.

Cost profiling (notebook 02) is in `models.profiling`.
"""

from medtl_helpers.models.blocks import BasicBlock, Bottleneck
from medtl_helpers.models.build import ARCHS, HEADS, build_model, weights_file
from medtl_helpers.models.freezing import (
    STRATEGIES,
    count_parameters,
    freeze,
    trainable_summary,
)
from medtl_helpers.models.groups import GROUPS, group_of, split_backbone_head
from medtl_helpers.models.modes import eval_mode, model_device, train_mode

__all__ = [
    "ARCHS",
    "GROUPS",
    "HEADS",
    "STRATEGIES",
    "BasicBlock",
    "Bottleneck",
    "build_model",
    "count_parameters",
    "eval_mode",
    "freeze",
    "group_of",
    "model_device",
    "split_backbone_head",
    "train_mode",
    "trainable_summary",
    "weights_file",
]
