"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The discriminator of a GAN trained on little data memorises the training images; augmenting only the real
images would teach the generator to produce augmented images. DiffAugment applies the same random,
differentiable transformations to every image the discriminator sees, real and fake, in the discriminator's
step and in the generator's, so the generator's gradient flows back through the augmentation.

Policies (``model.diffaugment``, comma-separated, applied in this order whatever order they are given in):

- ``color``: per sample, brightness + U(-0.5, 0.5), saturation x U(0, 2) about the per-pixel channel mean,
  contrast x U(0.5, 1.5) about the image mean (images in [-1, 1]);
- ``translation``: per sample, a shift of up to 1/8 of each side in each direction, vacated pixels zero;
- ``cutout``: per sample, a square of half the side (clipped at the borders) set to zero.

Randomness comes from torch's global RNG (the generator of the images' device), which the training engine
saves and restores, so a resumed run draws the same augmentations.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from translate.errors import ConfigError

#: Shift of ``translation`` and side of ``cutout``, as fractions of the image side (the paper's values).
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _uniform(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """One U(low, high) factor per sample, shaped [N, 1, 1, 1] to broadcast over an image batch. Drawn in
    float32 whatever the images' dtype (bf16 draws are coarse), then cast to it."""
    return (torch.rand(x.size(0), 1, 1, 1, device=x.device) * (high - low) + low).to(x.dtype)


def _groups(x: torch.Tensor, groups: Optional[Sequence[int]]) -> Tuple[torch.Tensor, ...]:
    return (x,) if groups is None else torch.split(x, list(groups), dim=1)


def brightness(x: torch.Tensor, groups: Optional[Sequence[int]] = None) -> torch.Tensor:
    return x + _uniform(x, -0.5, 0.5)


def saturation(x: torch.Tensor, groups: Optional[Sequence[int]] = None) -> torch.Tensor:
    # Each image of a channel-concatenated pair is desaturated towards its own grey, with the pair's one factor.
    factor = _uniform(x, 0.0, 2.0)
    parts = [(p - p.mean(dim=1, keepdim=True)) * factor + p.mean(dim=1, keepdim=True) for p in _groups(x, groups)]
    return torch.cat(parts, dim=1)


def contrast(x: torch.Tensor, groups: Optional[Sequence[int]] = None) -> torch.Tensor:
    factor = _uniform(x, 0.5, 1.5)
    parts = [(p - p.mean(dim=(1, 2, 3), keepdim=True)) * factor + p.mean(dim=(1, 2, 3), keepdim=True) for p in _groups(x, groups)]
    return torch.cat(parts, dim=1)


def translation(x: torch.Tensor, groups: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Shift each sample by its own (dy, dx), |dy| <= H/8 and |dx| <= W/8 (rounded), filling with zeros."""
    n, c, h, w = x.shape
    sy, sx = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    # Output pixel (i, j) reads input pixel (i - dy, j - dx), or zero where that falls outside the image. A
    # gather (not a roll or a loop over samples) keeps it one differentiable op for the whole batch.
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(n, 1, h * w).expand(n, c, h * w)
    moved = x.reshape(n, c, h * w).gather(2, index).view(n, c, h, w)
    return moved * inside.unsqueeze(1).to(x.dtype)


def cutout(x: torch.Tensor, groups: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Zero a (ch x cw) = half-side square per sample, its centre anywhere in the image (so it may be clipped)."""
    n, _, h, w = x.shape
    ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    # The paper's range of centres: an odd-sided square may not be centred on the last row/column + 1.
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    top, left = cy - ch // 2, cx - cw // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    cut = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~cut).unsqueeze(1).to(x.dtype)


#: Policy name -> its transformations, in the order the paper applies them.
POLICIES: Dict[str, Tuple[Callable[..., torch.Tensor], ...]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


def parse_policy(policy: str, key: str = "model.diffaugment") -> Tuple[str, ...]:
    """The policy names in ``policy`` ("color,translation,cutout"; "" for none), in the paper's order.
    An unknown name raises ConfigError naming ``key`` and the valid names."""
    names = {part.strip() for part in str(policy or "").split(",") if part.strip()}
    unknown = sorted(names - POLICIES.keys())
    if unknown:
        raise ConfigError(
            f"{key}={policy}: unknown DiffAugment policy {', '.join(map(repr, unknown))}; "
            f"use a comma-separated list of {', '.join(POLICIES)} (or an empty string for none)"
        )
    return tuple(name for name in POLICIES if name in names)


class DiffAugment:
    """Differentiable augmentation of a batch of images ``[N, C, H, W]`` (any dtype, device, memory format).

    ``DiffAugment("color,translation,cutout")(x)`` returns the augmented batch, each sample with its own
    random parameters; ``DiffAugment("")`` returns ``x`` itself and draws nothing from the RNG.

    ``groups``: channel counts of images concatenated along channels (pix2pix's (A, B) pair, ``(3, 3)``).
    The whole stack is augmented together, with one draw per sample, so the images stay aligned; colour
    statistics (the grey of saturation, the mean of contrast) are taken per image, not across the pair.
    """

    def __init__(self, policy: str = "") -> None:
        self.policy = parse_policy(policy)

    def __bool__(self) -> bool:
        return bool(self.policy)

    def __call__(self, x: torch.Tensor, groups: Optional[Sequence[int]] = None) -> torch.Tensor:
        for name in self.policy:
            for transform in POLICIES[name]:
                x = transform(x, groups)
        return x
