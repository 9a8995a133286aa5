"""Class activation maps with torchcam, and the randomisation test that they mean something.

`class_activation_maps` runs Grad-CAM (or Grad-CAM++ / LayerCAM) on uint8 X-rays. The torchcam
extractor is used as a context manager, so its hooks are removed even when something fails; the
target layer is named explicitly ("layer4" is the last stage of a ResNet whose output is still a
spatial map); and the forward pass runs with autograd on, because Grad-CAM is built from the
gradient of the target score with respect to that layer. The maps are upsampled to the size of the
stored images, ready to be laid over them (see `overlays`).

The target score is the log-odds, logit(PNEUMONIA) - logit(NORMAL), by default. With a two-logit
softmax head trained by cross-entropy, the gradients on the two logits are opposite, so the two
rows of the head's weights move by opposite amounts and their sum w0 + w1 keeps its random initial
value. The PNEUMONIA logit alone is scored through w1 = (w1 - w0) / 2 + (w1 + w0) / 2, so every
channel's Grad-CAM weight carries a term of that untrained random sum (a split of the weight
vector into two parts, not half of the channels). The log-odds is scored through w1 - w0 only:
the only part of the head that the prediction uses and that training moves. It is not free of
the initialisation either: a new head starts random, so w1 - w0 is its random initial difference
plus what training added, and after a short training it can still be mostly the former. But the
backbone was trained against that whole difference, so the log-odds map explains the prediction
the model makes; the sum plays no part in it.

`randomization_check` is the sanity check of Adebayo et al. (2018): randomise the weights from the
top of the network down and measure how much the maps change, over several random draws (five by
default), against maps unrelated to the trained ones by construction (each random map with its
cells shuffled; see `randomization_stats`). Maps that barely change describe the architecture or
the image, not what the model learned.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn
from torchcam.methods import GradCAM, GradCAMpp, LayerCAM

from medtl_helpers.data.augment import to_model_input
from medtl_helpers.explain.randomization_stats import SURVIVES, check_row, rank_correlations
from medtl_helpers.explain.randomization_stats import (
    randomization_reading as randomization_reading,  # re-exported: read a row of the check
)
from medtl_helpers.models import eval_mode, model_device

METHODS = {"gradcam": GradCAM, "gradcam++": GradCAMpp, "layercam": LayerCAM}
PNEUMONIA = 1
LOG_ODDS = "log_odds"


def target_scores(logits: torch.Tensor, target: str | int = LOG_ODDS) -> tuple[torch.Tensor, int]:
    """The scores and the column torchcam differentiates: (logits, target) for a class index, or
    a one-column (N, 1) logit(PNEUMONIA) - logit(NORMAL) and column 0 for `target="log_odds"`."""
    if target == LOG_ODDS:
        if logits.shape[1] != 2:
            raise ValueError(
                f"target='log_odds' needs a two-logit head, this one has {logits.shape[1]} "
                "outputs: pass a class index as target instead."
            )
        return logits[:, PNEUMONIA : PNEUMONIA + 1] - logits[:, :PNEUMONIA], 0
    if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < logits.shape[1]:
        return logits, target
    raise ValueError(
        f"Unknown CAM target {target!r}: use 'log_odds' or a class index below {logits.shape[1]}"
    )


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
    target: str | int = LOG_ODDS,
    image_size: int | None = None,
    batch_size: int = 16,
) -> torch.Tensor:
    """Maps in [0, 1] of shape (N, H, W) for uint8 images (N, 1, H, W), at the images' own size.

    `target` is "log_odds" (logit 1 - logit 0, see the module's docstring) or a class index.
    `image_size` is the model's input size when it differs from the stored images. Call it with
    autograd enabled: under `torch.no_grad()` there is no gradient to weight the activations with.
    """
    grids = cam_grids(model, images, layer, method, target, image_size, batch_size)
    return upsample(grids, images.shape[-2:]) if len(grids) else torch.zeros(0, *images.shape[-2:])


def cam_grids(
    model: nn.Module,
    images: torch.Tensor,
    layer: str = "layer4",
    method: str = "gradcam",
    target: str | int = LOG_ODDS,
    image_size: int | None = None,
    batch_size: int = 16,
) -> torch.Tensor:
    """The maps of `class_activation_maps` before upsampling: (N, h, w) on the layer's own grid
    of cells (h x w, e.g. 2x2 for `layer4` of a ResNet at 64 px), on the CPU, not rescaled."""
    if method not in METHODS:
        raise ValueError(f"Unknown CAM method {method!r}: use one of {', '.join(METHODS)}")
    if not torch.is_grad_enabled() or torch.is_inference_mode_enabled():
        raise RuntimeError(
            "Grad-CAM needs gradients, but this runs under torch.no_grad() or "
            "torch.inference_mode(). Call class_activation_maps outside those blocks."
        )
    check_layer(model, layer)
    device = model_device(model)
    grids = []
    # eval: BatchNorm with its running statistics, as at prediction time
    with eval_mode(model), METHODS[method](model, target_layer=layer) as extractor:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            # the input asks for gradients, so they flow even through a frozen backbone
            x = to_model_input(batch, image_size).requires_grad_(True)
            scores, column = target_scores(model(x), target)
            grids.append(extractor(class_idx=column, scores=scores)[0].detach().float().cpu())
    return torch.cat(grids) if grids else torch.zeros(0, 1, 1)


def upsample(cams: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(N, h, w) maps -> (N, H, W), bilinear, each rescaled to [0, 1] (a flat map stays 0)."""
    up = F.interpolate(cams.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False)
    up = up.squeeze(1)
    low = up.amin(dim=(1, 2), keepdim=True)
    span = up.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (up - low) / span.clamp(min=1e-12), torch.zeros_like(up))


def rank_correlation(a, b) -> float:
    """Spearman rank correlation of two maps (any shape, same size); NaN when one is flat.

    A flat map (all values equal, as an all-zero CAM) has no ranking to correlate: scipy would
    return NaN too, with a ConstantInputWarning, so the case is answered before it is asked.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"maps differ in size: {a.size} and {b.size} values")
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b)[0])


def randomize_layers(model: nn.Module, layers: Sequence[str], seed: int = 0) -> nn.Module:
    """A copy of `model` whose named submodules get new random weights, drawn from `seed`.

    The layers are redrawn in the order given, from one generator: with the same seed, a longer
    list keeps the draws of a shorter one and adds its own (the nested cascade of Adebayo et al.).
    The draw happens on the CPU, so it is the same on every device, and the caller's random
    state, CPU and GPU, is left as it was.

    Each module's own `reset_parameters()` draws them: PyTorch's default for convolutions and
    linear layers, uniform within +-1/sqrt(fan_in) (standard deviation 1/sqrt(3 fan_in)). That is
    not the initialisation a torchvision ResNet gives its convolutions when it is built (Kaiming
    normal over fan_out, standard deviation sqrt(2 / fan_out)): the new weights are random but
    smaller, 2.4 times for a 3x3 convolution with as many input as output channels. A new course
    head gets the same default as here. BatchNorm layers get weight 1 and bias 0, *and* their
    running mean 0 and variance 1, as when built, so in eval mode they pass activations through
    unchanged: the trained statistics describe the old convolutions' outputs and would be wrong
    for the new ones.
    """
    device = model_device(model)
    randomized = copy.deepcopy(model).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # torch.manual_seed would re-seed CUDA too
        for name in layers:
            check_layer(randomized, name)
            for module in randomized.get_submodule(name).modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
                if hasattr(module, "reset_running_stats"):
                    module.reset_running_stats()
    return randomized.to(device)


def _shuffled_chance(
    reference: torch.Tensor, grids: torch.Tensor, size: Sequence[int], shuffles: int, seed: int
) -> np.ndarray:
    """For each image, the share of `shuffles` cell-shuffles of its random map (grids: N, h, w)
    whose upsampled map correlates with the trained map (reference: N, H, W) above `SURVIVES`;
    NaN where the random map is flat."""
    gen = torch.Generator().manual_seed(seed)
    shares = []
    for ref, grid in zip(reference, grids):
        cells = grid.flatten()
        order = torch.stack([torch.randperm(cells.numel(), generator=gen) for _ in range(shuffles)])
        shuffled = upsample(cells[order].reshape(shuffles, *grid.shape), size)
        r = rank_correlations(ref.numpy(), shuffled.numpy())
        shares.append(np.nan if np.isnan(r).all() else float((r[~np.isnan(r)] > SURVIVES).mean()))
    return np.array(shares)


def randomization_check(
    model: nn.Module,
    images: torch.Tensor,
    cascade: Sequence[str] = ("fc", "layer4", "layer3"),
    layer: str = "layer4",
    method: str = "gradcam",
    image_size: int | None = None,
    seeds: Sequence[int] = range(5),
    target: str | int = LOG_ODDS,
    shuffles: int = 20,
) -> list[dict]:
    """Cascading randomisation (Adebayo et al. 2018): one row per step, from the top down.

    The first row re-runs the trained model: the value an unchanged model gets (1, as the maps
    are deterministic). Step k randomises cascade[:k + 1] once per seed of `seeds` (one random
    network per seed, nested from step to step: see `randomize_layers`) and correlates each
    image's map from the trained model with its map from each random network (Spearman). A row
    gives the mean over every image and draw, the lowest and highest single value (the spread a
    mean over few images hides), the share of maps above `SURVIVES` ("survived", out of "maps"
    defined), the same share for each random map with its cells shuffled `shuffles` times
    ("chance": maps unrelated to the trained ones by construction, on this grid), a 95 % bootstrap
    interval of the gap survived - chance over images and random networks ("gap low", "gap
    high"), the lowest and highest mean of one draw, the number of flat maps over all draws, and
    the grid of cells the maps are computed on. `randomization_reading` says what a row means.
    Two seeds at least: with one, the interval could not resample the random networks.
    """
    if len(seeds) < 2:
        raise ValueError(
            f"seeds={list(seeds)}: pass two or more, the interval resamples the random networks"
        )
    options = dict(layer=layer, method=method, target=target, image_size=image_size)
    size = images.shape[-2:]
    reference_grids = cam_grids(model, images, **options)
    reference = upsample(reference_grids, size)
    grid = "x".join(str(n) for n in reference_grids.shape[1:])

    def correlations(maps: torch.Tensor) -> np.ndarray:
        return np.array([rank_correlation(x, y) for x, y in zip(reference, maps)])

    rerun = class_activation_maps(model, images, **options)
    rows = [check_row("nothing (re-run)", [correlations(rerun)])]
    for k in range(len(cascade)):
        stages = cascade[: k + 1]
        draws, chance = [], []
        for seed in seeds:
            grids = cam_grids(randomize_layers(model, stages, seed), images, **options)
            draws.append(correlations(upsample(grids, size)))
            chance.append(_shuffled_chance(reference, grids, size, shuffles, seed))
        rows.append(check_row(" + ".join(stages), draws, np.array(chance)))
    return [{**row, "grid": grid} for row in rows]
