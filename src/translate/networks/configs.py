"""Typed schemas of the networks' settings (``model.generator``, ``model.discriminator``); no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from translate.config import Choice, InitType, Norm


class Upsample(Choice):
    """How a generator doubles the side of its feature maps (``model.generator.upsample``)."""

    # the papers' stride-2 transposed convolutions (the default: published weights load)
    transposed = "transposed"
    # nearest-neighbour resize then a 3 x 3 convolution (Odena et al. 2016): no checkerboard by construction
    resize_conv = "resize_conv"


@dataclass
class GeneratorConfig:
    """An image-to-image generator (see ``translate.networks.generators``)."""

    # resnet_9blocks | resnet_6blocks | resnet (depth = n_blocks) | unet_256 (8 downsamplings) | unet_128 (7) |
    # unet (depth = num_downs)
    arch: str = "unet_256"
    ngf: int = 64
    norm: Norm = Norm.batch
    dropout: bool = False
    # The depth; null: the arch's (resnet_9blocks and resnet: 9, unet_256 and unet: 8, unet_128: 7). A number set
    # here wins over the arch's.
    n_blocks: Optional[int] = None
    num_downs: Optional[int] = None
    # reflect | replicate | zero
    padding_type: str = "reflect"
    # transposed (the papers') | resize_conv (nearest resize + 3 x 3 conv, free of checkerboard artifacts)
    upsample: Upsample = Upsample.transposed
    init_type: InitType = InitType.normal
    init_gain: float = 0.02


@dataclass
class DiscriminatorConfig:
    """A PatchGAN discriminator (see ``translate.networks.discriminators``)."""

    # basic (70x70, n_layers 3) | n_layers (0 = 1x1 pixel, 1 = 16x16, 3 = 70x70, 5 = 286x286) | pixel
    arch: str = "basic"
    ndf: int = 64
    # null: the arch's (basic and n_layers: 3, pixel: 0); a number set here wins over the arch's.
    n_layers: Optional[int] = None
    norm: Norm = Norm.batch
    # Spectral normalisation (Miyato et al. 2018) of every convolution; usually paired with norm=none.
    spectral_norm: bool = False
    init_type: InitType = InitType.normal
    init_gain: float = 0.02
