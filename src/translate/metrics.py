"""Paired image metrics (L1, PSNR, SSIM) on batches in [-1, 1], one value per image.

Per-image values let callers average over a whole split, whatever the batch size.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

# Images in [-1, 1] span a range of 2.
DATA_RANGE = 2.0


def _check_pair(fake: torch.Tensor, real: torch.Tensor) -> None:
    if fake.dim() != 4 or fake.shape != real.shape:
        raise ValueError(
            "paired metrics need two [N, C, H, W] batches of the same shape, "
            f"got {tuple(fake.shape)} and {tuple(real.shape)}"
        )


def _difference(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    _check_pair(fake, real)
    return (fake.float() - real.float()).flatten(1)


def l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image: ``[N, C, H, W] x 2 -> [N]``."""
    return _difference(fake, real).abs().mean(1)


def psnr(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, data range 2: ``[N, C, H, W] x 2 -> [N]``; +inf when equal."""
    mse = _difference(fake, real).square().mean(1)
    return 10.0 * torch.log10(DATA_RANGE**2 / mse)


def ssim(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (Gaussian 11x11 window, on images rescaled to [0, 1]):
    ``[N, C, H, W] x 2 -> [N]``; 1 when equal."""
    _check_pair(fake, real)
    return structural_similarity_index_measure(
        (fake.float() + 1) / 2, (real.float() + 1) / 2, data_range=1.0, reduction="none"
    )
