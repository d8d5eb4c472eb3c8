"""A generator with its run's preprocessing baked in, for export: 8-bit pixels in, 8-bit pixels out, any size.

Shapes: ``forward(image [H, W, C_in] uint8) -> [H, W, C_out] uint8``. Inside: scaled to [-1, 1] as
:class:`translate.inference.translator.Translator` scales, padded at the bottom and right to the generator's
multiple by reflection, translated, cropped back and rounded to 8 bits (half to even, as ``g(image)``), so
an exported file gives the pixels ``g(image)`` gives, up to the runtime's kernels (docs/export.md; reflection
needs each side longer than its padding: at least ``multiple`` pixels). Every size is computed from the
input's shape, so an exported program (``torch.export`` with free height and width) takes any image size.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from translate.inference.translator import from_unit_range, to_unit_range
from translate.networks.generators import generator_input_multiple


class BakedGenerator(nn.Module):
    """``net`` (an image-to-image generator in eval mode) wrapped to take and give uint8 ``[H, W, C]`` images."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.multiple = generator_input_multiple(net)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[0], image.shape[1]
        x = to_unit_range(image.permute(2, 0, 1)[None].float(), 255)
        x = F.pad(
            x,
            (0, (self.multiple - w % self.multiple) % self.multiple, 0, (self.multiple - h % self.multiple) % self.multiple),
            mode="reflect",
        )
        y = self.net(x)[0, :, :h, :w]
        return from_unit_range(y, 255).to(torch.uint8).permute(1, 2, 0)
