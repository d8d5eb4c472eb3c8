"""Typed schemas of the networks' settings (``model.generator``, ``model.discriminator``); no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from translate.config import Choice, InitType, Norm
from translate.errors import ConfigError


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
    # ResNet only: blur-pooled downsampling / blurred upsampling instead of strided (transposed) convolutions
    # (Zhang 2019; CUT's default, its --no_antialias / --no_antialias_up); each adds a layer per resampling.
    antialias: bool = False
    antialias_up: bool = False
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
    # n_layers PatchGANs: each stride-2 convolution becomes a stride-1 one followed by a blur pool (Zhang 2019;
    # CUT's default, its --no_antialias); the patches it judges keep their number and size.
    antialias: bool = False
    init_type: InitType = InitType.normal
    init_gain: float = 0.02


#: The ResNet generator's stride-2 downsamplings (so its sides are multiples of 4), and the fewest levels a
#: U-Net can have (ngf, 2ngf, 4ngf, 8ngf and the innermost block).
RESNET_DOWNSAMPLINGS = 2
UNET_MIN_DOWNS = 5

# arch -> (family, depth key, its depth): a preset's own depth, a family's (unet, resnet) default one
GENERATOR_ARCHS: dict[str, tuple[str, str, int]] = {
    "unet_256": ("unet", "num_downs", 8),
    "unet_128": ("unet", "num_downs", 7),
    "unet": ("unet", "num_downs", 8),
    "resnet_9blocks": ("resnet", "n_blocks", 9),
    "resnet_6blocks": ("resnet", "n_blocks", 6),
    "resnet": ("resnet", "n_blocks", 9),
}


def resolve_preset(section: str, presets: Mapping[str, tuple[str, str, int]], cfg: Any) -> tuple[str, int]:
    """Return ``(family, depth)`` for ``cfg.arch``; shared by the generator and discriminator factories.

    The depth key (``num_downs``, ``n_blocks``, ``n_layers``) is null unless someone set it: then the arch
    decides (``unet_128``: 7); a number set explicitly wins over the arch's, so ``arch=resnet_9blocks
    n_blocks=6`` builds 6 blocks.
    """
    arch = str(cfg.arch)
    if arch not in presets:
        raise ConfigError(f"{section}.arch={arch!r} is not known; choose one of: {', '.join(presets)}")
    family, key, depth = presets[arch]
    value = getattr(cfg, key)
    return family, depth if value is None else int(value)


def describe(section: str, presets: Mapping[str, tuple[str, str, int]], cfg: Any) -> str:
    """The network ``cfg`` builds, as a user would name it: ``unet_256``, or ``unet (num_downs=6)`` where
    the depth is not the preset's."""
    family, depth = resolve_preset(section, presets, cfg)
    arch = str(cfg.arch)
    _, key, own = presets[arch]
    return arch if arch != family and depth == own else f"{family} ({key}={depth})"


# arch -> (family, depth key, its n_layers, as resolve_preset reads it); n_layers 0 is the pixel D
DISCRIMINATOR_ARCHS: dict[str, tuple[str, str, int]] = {
    "basic": ("n_layers", "n_layers", 3),
    "n_layers": ("n_layers", "n_layers", 3),
    "pixel": ("n_layers", "n_layers", 0),
}


def resnet_encoder_layers(cfg: Any, section: str = "model.generator") -> int:
    """How many layers of the ResNet generator's ``model`` Sequential come before its upsampling (the stem,
    the downsamplings and the residual blocks): the indices ``0 .. n - 1`` that CUT's PatchNCE may tap."""
    family, n_blocks = resolve_preset(section, GENERATOR_ARCHS, cfg)
    if family != "resnet":
        raise ConfigError(f"{section}.arch={cfg.arch} has no layer sequence to tap; use a ResNet generator (resnet_9blocks)")
    # pad, conv7, norm, ReLU; per downsampling conv, norm, ReLU (+ blur pool); the residual blocks
    return 4 + RESNET_DOWNSAMPLINGS * (4 if cfg.antialias else 3) + n_blocks


def size_hint(multiple: int, size: int) -> str:
    below = size // multiple * multiple
    first = below if below else multiple
    return f"image sides must be multiples of {multiple} (e.g. {first}, {first + multiple})"


def input_multiple(cfg: GeneratorConfig, section: str = "model.generator") -> int:
    """The number every image side must be a multiple of for the generator ``cfg`` describes:
    ``2 ** num_downs`` for a U-Net, 4 for a ResNet."""
    family, depth = resolve_preset(section, GENERATOR_ARCHS, cfg)
    return 2**depth if family == "unet" else 2**RESNET_DOWNSAMPLINGS


def _fitting_unet(size: int) -> Optional[str]:
    """The generator settings of the deepest U-Net that takes sides of ``size`` (None if none does)."""
    depth = next((d for d in range(8, UNET_MIN_DOWNS - 1, -1) if size % 2**d == 0), None)
    if depth is None:
        return None
    preset = next((name for name, (family, _, own) in GENERATOR_ARCHS.items() if family == "unet" != name and own == depth), None)
    return f"model.generator.arch={preset}" if preset else f"model.generator.arch=unet model.generator.num_downs={depth}"


def check_resampling(cfg: Any, section: str = "model.generator") -> None:
    """Raise ConfigError for resampling settings an image-to-image generator ``cfg`` cannot combine: blur
    resampling on a U-Net, or two replacements of the ResNet's transposed convolutions."""
    family, _ = resolve_preset(section, GENERATOR_ARCHS, cfg)
    if family == "unet" and (cfg.antialias or cfg.antialias_up):
        raise ConfigError(
            f"{section}.antialias: anti-aliased resampling is built into the ResNet generators only; set it false for a U-Net"
        )
    if cfg.antialias_up and str(cfg.upsample) != Upsample.transposed:
        raise ConfigError(
            f"{section}.upsample={cfg.upsample} and {section}.antialias_up=true each replace the transposed convolutions; "
            f"choose one (CUT sets antialias_up=true: add {section}.antialias_up=false)"
        )


def check_image_size(cfg: Any, size: int, what: str = "crop size", section: str = "model.generator") -> None:
    """Raise ConfigError if square images of side ``size`` cannot pass through the generator ``cfg`` describes.

    Call it before training so a bad ``data.crop_size`` fails at once, naming what would fit, e.g. "crop
    size 128 does not fit unet_256: image sides must be multiples of 256 (e.g. 256, 512); for 128 use
    model.generator.arch=unet_128".
    """
    multiple = input_multiple(cfg, section)
    if size % multiple:
        fitting = _fitting_unet(size) if multiple > 2**RESNET_DOWNSAMPLINGS else None
        other = f"; for {size} use {fitting}" if fitting else ""
        raise ConfigError(f"{what} {size} does not fit {describe(section, GENERATOR_ARCHS, cfg)}: {size_hint(multiple, size)}{other}")


def check_discriminator_size(cfg: Any, size: int, what: str = "data.crop_size", section: str = "model.discriminator") -> None:
    """Raise ConfigError if ``size`` x ``size`` images leave the PatchGAN ``cfg`` describes no output.

    ``n_layers`` stride-2 convolutions then two more 4x4 convolutions need ``size >= 3 * 2**n_layers``
    (24 for the 70x70 PatchGAN) to keep at least one patch and a normalisable last hidden map.
    """
    _, n_layers = resolve_preset(section, DISCRIMINATOR_ARCHS, cfg)
    smallest = 3 * 2**n_layers if n_layers > 0 else 1
    if size < smallest:
        raise ConfigError(
            f"{what} {size} is too small for the PatchGAN ({section}.n_layers={n_layers}): "
            f"use {what} >= {smallest} or a smaller {section}.n_layers"
        )
