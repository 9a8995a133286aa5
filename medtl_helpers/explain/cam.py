"""Class activation maps with torchcam, and the randomisation test that they mean something.

`class_activation_maps` runs Grad-CAM (or Grad-CAM++ / LayerCAM) on uint8 X-rays. The torchcam
extractor is used as a context manager, so its hooks are removed even when something fails; the
target layer is named explicitly ("layer4" is the last stage of a ResNet whose output is still a
spatial map); and the forward pass runs with autograd on, because Grad-CAM is built from the
gradient of the class score with respect to that layer. The maps are upsampled to the size of the
stored images, ready to be laid over them (see `cam_plots`).

`randomization_check` is the sanity check of Adebayo et al. (2018): randomise the weights from the
top of the network down and measure how much the maps change. Maps that barely change describe
the architecture or the image, not what the model learned.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchcam.methods import GradCAM, GradCAMpp, LayerCAM

from medtl_helpers.data.augment import to_model_input
from medtl_helpers.models import eval_mode, model_device

METHODS = {"gradcam": GradCAM, "gradcam++": GradCAMpp, "layercam": LayerCAM}
PNEUMONIA = 1


def check_layer(model: nn.Module, layer: str) -> None:
    """Raise ValueError naming the model's stages when `layer` is not one of its modules."""
    names = dict(model.named_modules())
    if layer not in names or layer == "":
        stages = [name for name, _ in model.named_children()]
        raise ValueError(
            f"{layer!r} is not a module of this model. Name the target layer explicitly, e.g. "
            f"'layer4' (the last stage that still outputs a spatial map); its top-level modules "
            f"are {', '.join(stages)}."
        )


def class_activation_maps(
    model: nn.Module,
    images: torch.Tensor,
    layer: str = "layer4",
    method: str = "gradcam",
    class_idx: int = PNEUMONIA,
    image_size: int | None = None,
    batch_size: int = 16,
) -> torch.Tensor:
    """Maps in [0, 1] of shape (N, H, W) for uint8 images (N, 1, H, W), at the images' own size.

    `image_size` is the model's input size when it differs from the stored images. Call it with
    autograd enabled: under `torch.no_grad()` there is no gradient to weight the activations with.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown CAM method {method!r}: use one of {', '.join(METHODS)}")
    if not torch.is_grad_enabled() or torch.is_inference_mode_enabled():
        raise RuntimeError(
            "Grad-CAM needs gradients, but this runs under torch.no_grad() or "
            "torch.inference_mode(). Call class_activation_maps outside those blocks."
        )
    check_layer(model, layer)
    device = model_device(model)
    maps = []
    # eval: BatchNorm with its running statistics, as at prediction time
    with eval_mode(model), METHODS[method](model, target_layer=layer) as extractor:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            # the input asks for gradients, so they flow even through a frozen backbone
            x = to_model_input(batch, image_size).requires_grad_(True)
            scores = model(x)
            cam = extractor(class_idx=class_idx, scores=scores)[0]
            maps.append(upsample(cam.detach().float(), images.shape[-2:]).cpu())
    return torch.cat(maps) if maps else torch.zeros(0, *images.shape[-2:])


def upsample(cams: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(N, h, w) maps -> (N, H, W), bilinear, each rescaled to [0, 1] (a flat map stays 0)."""
    up = F.interpolate(cams.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False)
    up = up.squeeze(1)
    low = up.amin(dim=(1, 2), keepdim=True)
    span = up.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (up - low) / span.clamp(min=1e-12), torch.zeros_like(up))


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1, ties sharing their average rank (as Spearman's formula needs)."""
    order = values.argsort(kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(values.size)
    _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(group, weights=ranks) / counts)[group]


def rank_correlation(a, b) -> float:
    """Spearman rank correlation of two maps (any shape, same size); NaN when one is flat."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"maps differ in size: {a.size} and {b.size} values")
    ra, rb = _ranks(a) - (a.size - 1) / 2, _ranks(b) - (b.size - 1) / 2
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def randomize_layers(model: nn.Module, layers: Sequence[str], seed: int = 0) -> nn.Module:
    """A copy of `model` with the named submodules re-initialised (fresh random weights)."""
    randomized = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(seed)
        for name in layers:
            check_layer(randomized, name)
            for module in randomized.get_submodule(name).modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
                if hasattr(module, "reset_running_stats"):
                    module.reset_running_stats()
    return randomized


def randomization_check(
    model: nn.Module,
    images: torch.Tensor,
    cascade: Sequence[str] = ("fc", "layer4", "layer3"),
    layer: str = "layer4",
    method: str = "gradcam",
    image_size: int | None = None,
    seed: int = 0,
) -> list[dict]:
    """Cascading randomisation (Adebayo et al. 2018): one row per step, from the top down.

    Step k randomises cascade[:k + 1] and reports the mean Spearman correlation between each
    image's map from the trained model and from the randomised one. Near 1: the maps ignore what
    the model learned. Near 0 (or negative): they depend on it, as an explanation should.
    """
    reference = class_activation_maps(model, images, layer, method, image_size=image_size)
    rows = []
    for k in range(len(cascade)):
        randomized = randomize_layers(model, cascade[: k + 1], seed)
        maps = class_activation_maps(randomized, images, layer, method, image_size=image_size)
        values = np.array([rank_correlation(a, b) for a, b in zip(reference, maps)])
        defined = values[~np.isnan(values)]
        rows.append(
            {
                "randomized": " + ".join(cascade[: k + 1]),
                "mean spearman": float(defined.mean()) if defined.size else float("nan"),
                "flat maps": int(np.isnan(values).sum()),
            }
        )
    return rows
