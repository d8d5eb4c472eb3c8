"""An MNIST digit classifier trained by the same engine as the GANs (``translate-train model=classifier``).

It exists to judge the cGAN: the copy shipped in the package (``translate/assets/mnist_classifier.pt``,
made by ``scripts/train_mnist_classifier.py``) scores generated digits offline and comparably across runs
(see :mod:`translate.evaluation.digits`). Training minimises the cross-entropy of small random affine
transforms of the digits, so that it also reads digits that are drawn a little off-centre.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from translate.models.base import DataInfo, GANModel, Optimization
from translate.models.configs import ClassifierConfig


class MNISTClassifierNet(nn.Module):
    """A small CNN for digits in [-1, 1]: one (3x3 conv of stride 2, BatchNorm, ReLU) block per entry of
    ``channels``, each halving the side, then global average pooling, dropout and a linear layer.
    Strided convolutions rather than max-pooling: several times faster on CPUs.

    ``features``: ``[N, in_channels, H, W] -> [N, channels[-1]]`` (the penultimate activations);
    ``forward``: ``-> [N, num_classes]`` logits.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        channels: Sequence[int] = (32, 64, 128, 128),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            previous = width
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(previous, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def random_affine(
    images: torch.Tensor,
    max_rotation: float,
    max_translation: float,
    background: float = -1.0,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Rotate each image by up to ``max_rotation`` degrees and shift it by up to ``max_translation`` of
    its side, independently per image, filling with ``background``: ``[N, C, H, W] -> [N, C, H, W]``.
    ``generator`` (a CPU one) draws the transforms; default: the global generator."""
    n = images.size(0)
    draws = torch.rand(n, 3, generator=generator).to(images.device) * 2 - 1
    angle = draws[:, 0] * math.radians(max_rotation)
    shift = draws[:, 1:] * (2 * max_translation)  # grid coordinates span 2
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    # grid_sample fills with zeros; shift so that zero is the background.
    return F.grid_sample(images - background, grid, align_corners=False) + background


class Classifier(GANModel):
    """``C(x)``: class logits for a digit. Minimises the cross-entropy of ``C(augment(x))`` and ``y``."""

    task = "classify"
    evaluation = "classification"
    data_kinds = ("mnist",)
    optimizer_groups = {"C": ("C",)}

    cfg: ClassifierConfig

    def __init__(self, cfg: ClassifierConfig, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.netC = MNISTClassifierNet(info.input_nc, cfg.num_classes, tuple(cfg.channels), cfg.dropout)

    def training_step(self, batch: Dict[str, torch.Tensor], opt: Optimization) -> Dict[str, torch.Tensor]:
        images, labels = batch["image"], batch["label"]
        images = random_affine(images, self.cfg.max_rotation, self.cfg.max_translation)
        with opt.autocast():
            logits = self.netC(images)
        loss = F.cross_entropy(logits.float(), labels)
        opt.step("C", loss)
        return {"loss_C/ce": loss.detach(), "accuracy": (logits.argmax(1) == labels).float().mean().detach()}

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted classes ``[N]`` for digits ``[N, C, H, W]`` in [-1, 1]."""
        return self.netC(images).argmax(1)

    @torch.no_grad()
    def visuals(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """The inputs, and below them one fixed draw of the training augmentation of them (its own
        generator: drawing the grid leaves the training's random stream, and so exact resume, alone)."""
        augmented = random_affine(
            batch["image"], self.cfg.max_rotation, self.cfg.max_translation, generator=torch.Generator().manual_seed(0)
        )
        return {"input": batch["image"], "augmented": augmented}
