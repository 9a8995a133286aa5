"""Batch augmentation on uint8 tensors, run on whatever device the batch is on.

One random affine matrix per image (small rotation, zoom and shift) is applied to the whole batch
in a single `grid_sample`, followed by brightness/contrast jitter and ImageNet normalisation. On a
GPU this costs almost nothing, where per-image PIL transforms in DataLoader workers are often the
bottleneck.

Horizontal flips are off by default: on a chest X-ray the heart sits on the patient's left, so a
flipped image is anatomically wrong (dextrocardia). Pneumonia labels survive a flip, and some
papers flip anyway; `hflip=True` is there for that experiment.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Grey float (B, 1, H, W) in [0, 1] -> (B, 3, H, W) with ImageNet mean and std.

    ImageNet-pretrained filters expect three channels with those statistics; a grey X-ray is
    repeated into all three rather than changing the first convolution.
    """
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x.expand(-1, 3, -1, -1) - mean) / std


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Float images (B, C, H, W) -> (B, C, size, size), bilinear with antialiasing.

    The one resize of the course: the tensor cache, PneumoniaMNIST and the model input all use
    it. Antialiasing makes a shrunk image average the pixels it covers instead of sampling a few
    of them, which would alias the fine rib edges of a 1,000 px X-ray into noise.
    """
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images (B, C, H, W) resized with `resize` and rounded back to uint8."""
    if images.shape[-2:] == (size, size):
        return images
    return resize(images.float(), size).round_().clamp_(0, 255).to(torch.uint8)


def to_model_input(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 (B, 1, H, W) -> normalised float (B, 3, S, S), with no augmentation (evaluation)."""
    x = images.float().div_(255.0)
    if size is not None:
        x = resize(x, size)
    return normalize(x)


class BatchAugment:
    """Random affine + intensity jitter on a batch; call it on uint8 (B, 1, H, W) tensors."""

    def __init__(
        self,
        # Sizes of a plausible change in positioning and exposure, small enough that the lungs
        # stay in the frame and readable:
        degrees: float = 10.0,  # a child held a little off upright
        scale: tuple[float, float] = (0.9, 1.1),  # body size and distance to the detector
        translate: float = 0.06,  # off-centre framing, as a share of the image width
        brightness: float = 0.1,  # exposure, added on the 0-1 intensity scale
        contrast: float = 0.1,  # contrast gain drawn from 1 - contrast to 1 + contrast
        hflip: bool = False,
        generator: torch.Generator | None = None,
    ):
        self.degrees, self.scale, self.translate = degrees, scale, translate
        self.brightness, self.contrast, self.hflip = brightness, contrast, hflip
        self.generator = generator

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=self.generator) * (high - low) + low

    def affine_matrices(self, n: int) -> torch.Tensor:
        """(n, 2, 3) matrices for `F.affine_grid`, drawn on the CPU so seeds are device-free."""
        angle = self._uniform(n, -self.degrees, self.degrees) * math.pi / 180
        zoom = self._uniform(n, *self.scale)
        shift = self._uniform(2 * n, -self.translate, self.translate).view(n, 2) * 2
        flip = torch.ones(n)
        if self.hflip:
            flip = torch.where(torch.rand(n, generator=self.generator) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        return torch.stack(
            [
                torch.stack([cos * flip, -sin, shift[:, 0]], dim=1),
                torch.stack([sin * flip, cos, shift[:, 1]], dim=1),
            ],
            dim=1,
        )

    def __call__(self, images: torch.Tensor, size: int | None = None) -> torch.Tensor:
        n = images.shape[0]
        # The same antialiased resize as evaluation (to_model_input), then the random affine at
        # that size: train and eval see the image at the same scale and sharpness.
        x = resize(images.float().div_(255.0), size or images.shape[-1])
        theta = self.affine_matrices(n).to(x.device)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        gain = self._uniform(n, 1 - self.contrast, 1 + self.contrast).to(x.device).view(n, 1, 1, 1)
        bias = self._uniform(n, -self.brightness, self.brightness).to(x.device).view(n, 1, 1, 1)
        mean = x.mean(dim=(2, 3), keepdim=True)
        return normalize(((x - mean) * gain + mean + bias).clamp_(0.0, 1.0))
