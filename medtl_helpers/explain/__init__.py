"""Looking inside a trained model: Grad-CAM with torchcam, overlays on X-rays, layer ablation."""

from medtl_helpers.explain.ablation import Ablation, ablation_importance, identity_blocks
from medtl_helpers.explain.cam import (
    METHODS,
    check_layer,
    class_activation_maps,
    randomization_check,
    randomization_reading,
    randomize_layers,
    rank_correlation,
    upsample,
)
from medtl_helpers.explain.overlays import (
    outcome_indices,
    overlay_cam,
    plot_cam_row,
    plot_outcome_grid,
)

__all__ = [
    "METHODS",
    "Ablation",
    "ablation_importance",
    "check_layer",
    "class_activation_maps",
    "identity_blocks",
    "outcome_indices",
    "overlay_cam",
    "plot_cam_row",
    "plot_outcome_grid",
    "randomization_check",
    "randomization_reading",
    "randomize_layers",
    "rank_correlation",
    "upsample",
]
