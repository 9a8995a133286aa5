"""The residual blocks notebook 01 builds step by step, in the course's own readable form.

`BasicBlock` and `Bottleneck` use torchvision's parameter names, so torchvision's weights load
into them and the two can be compared output for output.
"""

from __future__ import annotations

import torch
from torch import nn


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """1x1 conv + BN so the shortcut matches the residual's shape; None when it already does."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN layers plus a shortcut: the block of ResNet-18 and ResNet-34.

    The first conv carries the stride. The shortcut is the identity, or a 1x1 conv (with the
    same stride) + BN when the spatial size or channel count changes. It is called
    `downsample`, as in torchvision, so state dicts are interchangeable.
    """

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(F(x) + shortcut(x)) for x of shape (B, in, H, W) -> (B, out, H/stride, W/stride).

        The addition gives the gradient a path around F: d(F(x) + x)/dx = dF/dx + I. In this
        post-activation block the final ReLU comes after the addition, so it masks the gradient
        of both paths wherever the sum is negative: the shortcut is not a clean identity path
        (notebook 01 measures it). Pre-activation blocks (He et al. 2016, "Identity Mappings in
        Deep Residual Networks") add x last, and only there is it one.
        """
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 (to `width`) -> 3x3 (stride) -> 1x1 (expand to width*expansion), plus shortcut.

    The block of ResNet-50/101/152: the expensive 3x3 conv runs on `width` channels, a quarter
    of the block's output, which is how ResNet-50 is deeper than ResNet-34 at similar cost. The
    stride sits on the 3x3 conv, as in torchvision ("ResNet v1.5").
    """

    def __init__(self, in_channels: int, width: int, stride: int = 1, expansion: int = 4) -> None:
        super().__init__()
        out_channels = width * expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(F(x) + shortcut(x)): (B, in, H, W) -> (B, width*expansion, H/stride, W/stride)."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)
