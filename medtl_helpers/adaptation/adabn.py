"""AdaBN: re-estimate every BatchNorm layer's statistics on unlabelled target images.

In eval mode a BatchNorm layer normalises each channel with the running mean and variance it
collected on the training images. At another site the same layer sees other statistics (a
brighter exposure shifts the first layers' means, noise raises their variances), so every later
layer receives inputs it was not trained on. AdaBN (Li, Wang, Shi, Hou & Liu, 2018, measured on
the Office-31 and Caltech-Bing natural-image benchmarks) keeps every weight and replaces only
those running statistics with the target's: no labels and no gradient needed. The target images
are shuffled before they are batched, as stored sets are sorted by class (`adapt_batchnorm`).

How far each layer's input moves at the target is measured on the unadapted model
(`batchnorm_input_drift`): comparing the adapted statistics (`batchnorm_drift`) would read each
layer behind earlier layers already re-normalised to the target.

It also fails in ways worth knowing. The statistics describe the images *and* their class mix,
so at a site with another pneumonia share they move for a reason that has nothing to do with the
acquisition. Test-time variants that normalise each batch with its own statistics
(`predict_with_batch_statistics`) make one image's prediction depend on the rest of its batch:
small or one-class batches change the answers.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from medtl_helpers.data.augment import to_model_input
from medtl_helpers.models import model_device


def batchnorm_layers(model: nn.Module) -> dict[str, _BatchNorm]:
    """Every BatchNorm layer of `model` by its module name, in network order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, _BatchNorm)}


def reset_batchnorm_statistics(model: nn.Module) -> int:
    """Forget every BatchNorm layer's running statistics; keep its weight and bias.

    `momentum=None` makes the next estimate a plain average over the batches that follow, where
    the default 0.1 would weight the last batches most. Returns the number of layers reset.
    """
    layers = batchnorm_layers(model)
    for layer in layers.values():
        layer.reset_running_stats()  # mean 0, variance 1, no batch seen; reset_parameters would
        layer.momentum = None  # also reset the learned weight and bias, which AdaBN keeps
    return len(layers)


def even_batches(n: int, batch_size: int) -> list[np.ndarray]:
    """Indices 0..n-1, in order, in n // batch_size batches whose sizes differ by at most one.

    Every batch holds at least `batch_size` images (all n when n is smaller), so there is never a
    batch of one, which BatchNorm in train mode cannot normalise after a 1 x 1 layer.
    """
    return np.array_split(np.arange(n), max(1, n // batch_size))


def one_class_share(labels: ArrayLike, batch_size: int) -> float:
    """The share of the batches of `even_batches` that hold images of one class only.

    `labels` are in the order the images are batched. Sorting by label makes every batch one
    class only where a batch is no larger than the smaller class's count; above that, the batch
    at the boundary (or the only batch) holds both classes, and the share falls below 1.
    """
    labels = np.asarray(labels).reshape(-1)
    batches = even_batches(len(labels), batch_size)
    return float(np.mean([len(np.unique(labels[index])) == 1 for index in batches]))


@torch.no_grad()
def adapt_batchnorm(
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int = 64,
    image_size: int | None = None,
    seed: int = 0,
) -> nn.Module:
    """A copy of `model` whose BatchNorm statistics are re-estimated on uint8 `images`.

    The images are shuffled with a permutation seeded by `seed` before they are cut into batches.
    Stored order is no order to batch in: every Kermany set is sorted by class, so batches cut in
    it hold one class each, and with `momentum=None` the running variance becomes the mean of the
    within-class variances: the spread between NORMAL and PNEUMONIA images is missing from it.
    Mixed batches average to close to the statistics of the whole set: the mean up to the unequal
    weight of batches whose sizes differ by one, and the variance as the mean of within-batch
    variances, which misses the spread between the batch means (small when every batch is a
    shuffled mix). Only the BatchNorm layers run in train mode (a dropout in the head stays off);
    the batches have near-equal sizes (`even_batches`), so each counts about the same in the
    average. The weights are untouched and the given model is left as it was.
    """
    if len(images) == 0:
        raise ValueError("adapt_batchnorm got no images: pass the target site's unlabelled images")
    adapted = copy.deepcopy(model).eval()
    layers = batchnorm_layers(adapted)
    momenta = {name: layer.momentum for name, layer in layers.items()}
    reset_batchnorm_statistics(adapted)
    for layer in layers.values():
        layer.train()
    device = model_device(adapted)
    order = np.random.default_rng(seed).permutation(len(images))
    for index in even_batches(len(images), batch_size):
        adapted(to_model_input(images[order[index]].to(device), image_size))
    for name, layer in layers.items():
        layer.momentum = momenta[name]
    return adapted.eval()


@torch.no_grad()
def predict_with_batch_statistics(
    model: nn.Module, images: torch.Tensor, batch_size: int, image_size: int | None = None
) -> np.ndarray:
    """P(PNEUMONIA) when every batch is normalised with its own statistics (test-time BN).

    A demonstration of batch dependence, so nothing is shuffled: the images are cut, in the order
    given, into len(images) // batch_size batches of near-equal size (`even_batches`; sizes differ
    by at most one, each at least `batch_size` unless fewer images are given). Every BatchNorm
    layer normalises each batch with that batch's own mean and biased variance, so an image's
    probability depends on the other images in its batch: images sorted by label give one-class
    batches. The probabilities come back in the given order; the model itself is not changed.
    """
    tta = copy.deepcopy(model).eval()
    for layer in batchnorm_layers(tta).values():
        layer.running_mean, layer.running_var = None, None  # no statistics: use the batch's
    device = model_device(tta)
    chunks = []
    for index in even_batches(len(images), batch_size):
        x = to_model_input(images[index].to(device), image_size)
        chunks.append(tta(x).float().softmax(dim=1)[:, 1].cpu())
    return torch.cat(chunks).numpy().astype(np.float64)


def batchnorm_drift(source: nn.Module, adapted: nn.Module) -> list[dict[str, object]]:
    """Per BatchNorm layer, how far the adapted running statistics moved from the source's.

    mean_shift: the channels' mean |target mean - source mean|, in source standard deviations.
    sd_ratio: the channels' mean target sd / source sd (1 = unchanged spread).
    `adapted` re-estimated every layer together, so a layer's statistics were collected behind
    layers already re-normalised to the target: its drift is what is left after the earlier
    layers' repair. `batchnorm_input_drift` measures each layer's shift in the unadapted model.
    """
    stats = {
        side: {
            name: (layer.running_mean, layer.running_var)
            for name, layer in batchnorm_layers(net).items()
        }
        for side, net in (("source", source), ("target", adapted))
    }
    return drift_rows(stats["source"], stats["target"], batchnorm_layers(source))


def drift_rows(source: dict, target: dict, layers: dict[str, _BatchNorm]) -> list[dict]:
    """Rows of `batchnorm_drift` from per-layer (mean, variance) pairs of both sites.

    For several sites against one source, compute the source's `batchnorm_input_statistics`
    once and pass it with each site's; `layers` (`batchnorm_layers(model)`) give order and eps.
    """
    rows = []
    for depth, (name, layer) in enumerate(layers.items()):
        (mean, var), (other_mean, other_var) = source[name], target[name]
        sd = (var + layer.eps).sqrt()
        shift = (other_mean - mean).abs() / sd
        ratio = (other_var + layer.eps).sqrt() / sd
        rows.append(
            {
                "depth": depth,
                "layer": name,
                "mean_shift": float(shift.mean()),
                "sd_ratio": float(ratio.mean()),
            }
        )
    return rows


@torch.no_grad()
def batchnorm_input_statistics(
    model: nn.Module, images: torch.Tensor, image_size: int | None = None, batch_size: int = 256
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per BatchNorm layer, the per-channel mean and variance of its input over all `images`.

    Forward hooks read each layer's input while the model runs in eval mode with its own stored
    statistics, so nothing is re-estimated and the order of the images does not matter: the sums
    run over every image and position (float64). The model's modes are restored afterwards.
    """
    layers = batchnorm_layers(model)
    sums: dict[str, list] = {}

    def hook(name: str):
        def record(module, inputs, output):
            x = inputs[0].double()
            dims = [0, *range(2, x.ndim)]
            total = sums.setdefault(name, [0.0, 0.0, 0])
            total[0] = total[0] + x.sum(dims)
            total[1] = total[1] + x.pow(2).sum(dims)
            total[2] += x.numel() // x.shape[1]

        return record

    modes = {module: module.training for module in model.modules()}
    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers.items()]
    device = model_device(model)
    try:
        model.eval()
        for start in range(0, len(images), batch_size):
            model(to_model_input(images[start : start + batch_size].to(device), image_size))
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes.items():
            module.train(mode)
    stats = {}
    for name, (total, squares, n) in sums.items():
        mean = total / n
        stats[name] = (mean.float().cpu(), (squares / n - mean**2).clamp(min=0).float().cpu())
    return stats


def batchnorm_input_drift(
    model: nn.Module,
    source_images: torch.Tensor,
    target_images: torch.Tensor,
    image_size: int | None = None,
) -> list[dict[str, object]]:
    """Per BatchNorm layer, how far the target moves its input in the unadapted `model`.

    One pass over the source images and one over the target's (`batchnorm_input_statistics`),
    both through the model as trained: every earlier layer still normalises with the source's
    statistics, so a layer's drift is the shift that reaches it, not what is left after earlier
    layers were re-normalised (as in `batchnorm_drift` of an adapted copy). Same columns as
    `batchnorm_drift`, in the source images' own standard deviations.
    """
    if len(source_images) == 0 or len(target_images) == 0:
        raise ValueError("batchnorm_input_drift needs source and target images")
    source = batchnorm_input_statistics(model, source_images, image_size)
    target = batchnorm_input_statistics(model, target_images, image_size)
    return drift_rows(source, target, batchnorm_layers(model))
