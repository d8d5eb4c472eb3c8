"""Turning [-1, 1] image tensors into grids and PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Union

import torch
from PIL import Image
from torchvision.utils import make_grid

from translate.files import atomic_write


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], float32 on the CPU."""
    return ((images.detach().float().cpu() + 1.0) / 2.0).clamp_(0.0, 1.0)


def rows_to_grid(rows: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Stack named rows of images ([N, C, H, W] each, same N, H, W) into one [3, H', W'] grid in [0, 1];
    1-channel rows are shown as grey RGB so they can sit beside colour rows."""
    tensors = [to_unit(r).expand(-1, 3, -1, -1) if r.size(1) == 1 else to_unit(r) for r in rows.values()]
    ncol = tensors[0].size(0)
    return make_grid(torch.cat(tensors), nrow=ncol, padding=2, pad_value=1.0)


def to_pixels(image: torch.Tensor) -> torch.Tensor:
    """One [C, H, W] image in [0, 1] (C = 1 or 3) as 8-bit pixels: [H, W] (grey) or [H, W, 3]."""
    array = (image * 255.0).round().to(torch.uint8)
    return array[0] if array.size(0) == 1 else array.permute(1, 2, 0)


def save_png(image: torch.Tensor, path: Union[str, Path]) -> None:
    """Save one [C, H, W] image in [0, 1] (C = 1 or 3) as PNG, atomically."""
    atomic_write(path, lambda tmp: Image.fromarray(to_pixels(image).numpy()).save(tmp, format="PNG"))
