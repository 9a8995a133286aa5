"""AdaBN: re-estimate every BatchNorm layer's statistics on unlabelled target images.

In eval mode a BatchNorm layer normalises each channel with the running mean and variance it
collected on the training images. At another site the same layer sees other statistics (a
brighter exposure shifts the first layers' means, noise raises their variances), so every later
layer receives inputs it was not trained on. AdaBN (Li et al., 2018) keeps every weight and
replaces only those running statistics with the target's: no labels and no gradient needed.

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


@torch.no_grad()
def adapt_batchnorm(
    model: nn.Module, images: torch.Tensor, batch_size: int = 64, image_size: int | None = None
) -> nn.Module:
    """A copy of `model` whose BatchNorm statistics are re-estimated on uint8 `images`.

    Only the BatchNorm layers run in train mode (a dropout in the head stays off); the batches
    have near-equal sizes (`even_batches`), so each counts the same in the average. The weights
    are untouched and the given model is left as it was.
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
    for index in even_batches(len(images), batch_size):
        adapted(to_model_input(images[index].to(device), image_size))
    for name, layer in layers.items():
        layer.momentum = momenta[name]
    return adapted.eval()


@torch.no_grad()
def predict_with_batch_statistics(
    model: nn.Module, images: torch.Tensor, batch_size: int, image_size: int | None = None
) -> np.ndarray:
    """P(PNEUMONIA) when every batch is normalised with its own statistics (test-time BN).

    The batches are cut in the given order (`even_batches`), so sorting the images by label gives
    one-class batches. The model itself is not changed.
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
    """Per BatchNorm layer, how far the adapted statistics moved from the source's.

    mean_shift: the channels' mean |target mean - source mean|, in source standard deviations.
    sd_ratio: the channels' mean target sd / source sd (1 = unchanged spread).
    """
    rows = []
    adapted_layers = batchnorm_layers(adapted)
    for depth, (name, layer) in enumerate(batchnorm_layers(source).items()):
        other = adapted_layers[name]
        sd = (layer.running_var + layer.eps).sqrt()
        shift = (other.running_mean - layer.running_mean).abs() / sd
        ratio = (other.running_var + other.eps).sqrt() / sd
        rows.append(
            {
                "depth": depth,
                "layer": name,
                "mean_shift": float(shift.mean()),
                "sd_ratio": float(ratio.mean()),
            }
        )
    return rows
