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
default), against how much the maps of two random draws differ by chance. Maps that barely change
describe the architecture or the image, not what the model learned.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn
from torchcam.methods import GradCAM, GradCAMpp, LayerCAM

from medtl_helpers.data.augment import to_model_input
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
            scores, column = target_scores(model(x), target)
            cam = extractor(class_idx=column, scores=scores)[0]
            maps.append(upsample(cam.detach().float(), images.shape[-2:]).cpu())
    return torch.cat(maps) if maps else torch.zeros(0, *images.shape[-2:])


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


# An image's rank correlation above this is closer to the re-run's 1 than to an unrelated map's 0.
SURVIVES = 0.5


def randomization_reading(row: dict) -> str:
    """What one row of `randomization_check` says about the check, read against chance.

    A correlation with the trained map of 1 is the same ranking of regions, 0 an unrelated one,
    and a negative value a partly reversed one. Above `SURVIVES`, closer to 1 than to 0, an
    image's map survived the randomisation. On a map of a few cells unrelated maps also cross
    `SURVIVES` by chance, so `survived` (the share of maps above it) is read against `chance`, the
    same share between the maps of two random networks of the step (same images). The check
    FAILS at a step where most maps survived, or more of them than chance gives (by over twice
    the gap's standard error: a rough test, as the same images recur in every draw); it passes
    where they survived no more often than chance.
    """
    if np.isnan(row["mean spearman"]):
        return "undefined: every map was flat (no positive evidence), so nothing to compare"
    survived, chance, maps, pairs = row["survived"], row["chance"], row["maps"], row["pairs"]
    if not pairs:
        return "no chance baseline: fewer than two random networks gave a map to compare"
    pooled = (survived * maps + chance * pairs) / (maps + pairs)
    margin = 2 * np.sqrt(pooled * (1 - pooled) * (1 / maps + 1 / pairs))
    shares = f"{survived:.0%} of maps survived, {chance:.0%} between two random networks"
    if survived > 0.5:
        return f"most maps survived ({shares}): the check FAILS here"
    if survived - chance > margin:
        return f"more maps survived than chance gives ({shares}, margin {margin:.0%}): FAILS here"
    return f"maps survived no more often than chance ({shares}): the check passes here"


def _share(values: np.ndarray) -> tuple[float, int]:
    """The share of defined (not NaN) values above `SURVIVES`, and how many are defined."""
    defined = values[~np.isnan(values)]
    return (float((defined > SURVIVES).mean()) if defined.size else float("nan")), defined.size


def _check_row(name: str, draws: list[np.ndarray], chance: list[np.ndarray] = ()) -> dict:
    """One row of `randomization_check` from each draw's correlations (NaN for a flat map) and
    those between the maps of two draws (`chance`)."""
    values = np.concatenate(draws)
    defined = values[~np.isnan(values)]
    means = [d[~np.isnan(d)].mean() for d in draws if (~np.isnan(d)).any()]
    nan = float("nan")
    survived, maps = _share(values)
    chance_share, pairs = _share(np.concatenate(chance)) if len(chance) else (nan, 0)
    return {
        "randomized": name,
        "mean spearman": float(defined.mean()) if defined.size else nan,
        "lowest": float(defined.min()) if defined.size else nan,
        "highest": float(defined.max()) if defined.size else nan,
        "survived": survived,
        "chance": chance_share,
        "draws": len(draws),
        "lowest draw mean": float(min(means)) if means else nan,
        "highest draw mean": float(max(means)) if means else nan,
        "flat maps": int(np.isnan(values).sum()),
        "maps": maps,
        "pairs": pairs,
    }


def randomization_check(
    model: nn.Module,
    images: torch.Tensor,
    cascade: Sequence[str] = ("fc", "layer4", "layer3"),
    layer: str = "layer4",
    method: str = "gradcam",
    image_size: int | None = None,
    seeds: Sequence[int] = range(5),
    target: str | int = LOG_ODDS,
) -> list[dict]:
    """Cascading randomisation (Adebayo et al. 2018): one row per step, from the top down.

    The first row re-runs the trained model: the value an unchanged model gets (1, as the maps
    are deterministic). Step k randomises cascade[:k + 1] once per seed of `seeds` (one random
    network per seed, nested from step to step: see `randomize_layers`) and correlates each
    image's map from the trained model with its map from each random network (Spearman). A row
    gives the mean over every image and draw, the lowest and highest single value (the spread a
    mean over few images hides), the share of maps above `SURVIVES` ("survived", out of "maps"
    defined), the same share between the maps of every two random networks of the step
    ("chance", out of "pairs": what unrelated maps give on this grid), the lowest and highest
    mean of one draw, and the number of flat maps over all draws. `randomization_reading` says
    what a row means. Two seeds at least: the chance baseline compares draws with each other.
    """
    if len(seeds) < 2:
        raise ValueError(
            f"seeds={list(seeds)}: pass two or more, the chance baseline compares random networks"
        )
    options = dict(layer=layer, method=method, target=target, image_size=image_size)
    reference = class_activation_maps(model, images, **options)

    def correlations(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
        return np.array([rank_correlation(x, y) for x, y in zip(a, b)])

    rerun = class_activation_maps(model, images, **options)
    rows = [_check_row("nothing (re-run)", [correlations(reference, rerun)])]
    for k in range(len(cascade)):
        stages = cascade[: k + 1]
        maps = [
            class_activation_maps(randomize_layers(model, stages, seed), images, **options)
            for seed in seeds
        ]
        draws = [correlations(reference, m) for m in maps]
        chance = [correlations(a, b) for a, b in itertools.combinations(maps, 2)]
        rows.append(_check_row(" + ".join(stages), draws, chance))
    return rows
