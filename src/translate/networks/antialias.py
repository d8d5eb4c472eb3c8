"""Anti-aliased resampling (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again"): a fixed
binomial blur before subsampling, and after zero-insertion upsampling, so that a one-pixel shift of the input
shifts the output instead of changing it. CUT's authors build their default ResNet generator and PatchGAN
with these layers (their ``--no_antialias`` / ``--no_antialias_up`` turn them off); each layer here computes
what theirs computes, and keeps its filter in a buffer called ``filt`` as theirs does, so their state dicts
load.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Rows of Pascal's triangle: the 1-D binomial filters, by length.
_BINOMIAL = {1: [1.0], 2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}


def binomial_filter(size: int) -> torch.Tensor:
    """The ``[size, size]`` binomial blur (outer product of a row of Pascal's triangle), summing to 1."""
    if size not in _BINOMIAL:
        raise ValueError(f"filter size {size} is not supported; use one of {', '.join(map(str, _BINOMIAL))}")
    row = torch.tensor(_BINOMIAL[size])
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class BlurDownsample(nn.Module):
    """Blur with a ``filter_size`` binomial filter, then keep every second pixel: the anti-aliased
    replacement of a stride-2 step. Reflection padding keeps the border (3 -> 1 pixel on each side).

    Shapes: ``[N, channels, H, W] -> [N, channels, ceil(H / 2), ceil(W / 2)]``.
    """

    filt: torch.Tensor

    def __init__(self, channels: int, filter_size: int = 3) -> None:
        super().__init__()
        self.channels = channels
        self.pad = nn.ReflectionPad2d(((filter_size - 1) // 2, filter_size // 2) * 2)
        # One copy of the filter per channel: a depthwise convolution blurs each channel on its own.
        self.register_buffer("filt", binomial_filter(filter_size)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=self.channels)


class BlurUpsample(nn.Module):
    """Insert zeros between pixels and blur with a ``filter_size`` (even) binomial filter scaled by 4: the
    anti-aliased replacement of a stride-2 transposed convolution with a learned filter. Replication
    padding of one pixel keeps the border's values; the crop after the transposed convolution leaves
    exactly twice the input size.

    Shapes: ``[N, channels, H, W] -> [N, channels, 2H, 2W]``.
    """

    filt: torch.Tensor

    def __init__(self, channels: int, filter_size: int = 4) -> None:
        super().__init__()
        if filter_size % 2:
            raise ValueError(f"filter size {filter_size} is odd; BlurUpsample needs an even one, e.g. 4")
        self.channels = channels
        self.padding = 1 + (filter_size - 1) // 2
        # x4: zero insertion leaves one pixel in four, so the blur must sum to 4 to keep the mean.
        self.register_buffer("filt", (binomial_filter(filter_size) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.conv_transpose2d(_replicate_pad1(x), self.filt, stride=2, padding=self.padding, groups=self.channels)
        # The padded border widens the output by one pixel on each side of the 2x grid: drop it.
        return up[:, :, 1:-1, 1:-1]


def _replicate_pad1(x: torch.Tensor) -> torch.Tensor:
    """``nn.ReplicationPad2d(1)``: each border row and column repeated once. Written with concatenations
    because torch.compile (inductor, torch 2.14 on the CPU) miscompiles the backward of the replication-pad
    op before this transposed convolution (its stride check fails at the first backward); the values and
    gradients are the op's."""
    x = torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)
    return torch.cat([x[:, :, :, :1], x, x[:, :, :, -1:]], dim=3)
