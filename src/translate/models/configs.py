"""Typed schemas of the ``model`` config group, one per model; no torch, so the registry and the command
line read them without loading any model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from translate.config import GanMode, InitType, Norm, OptimType
from translate.networks.configs import DiscriminatorConfig, GeneratorConfig, Upsample


@dataclass
class NetworkOptimConfig:
    """The settings of one optimiser (``G`` or ``D``) where they differ from the shared ones; null: shared."""

    type: Optional[OptimType] = None
    lr: Optional[float] = None
    beta1: Optional[float] = None
    beta2: Optional[float] = None
    weight_decay: Optional[float] = None


@dataclass
class OptimConfig:
    # adam | rmsprop (the original WGAN's; beta1 and beta2 are Adam's and unused by it)
    type: OptimType = OptimType.adam
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0
    # Per-optimiser overrides, e.g. a slower discriminator (two time-scale update rule): D.lr=1e-4 G.lr=4e-4.
    G: NetworkOptimConfig = field(default_factory=NetworkOptimConfig)
    D: NetworkOptimConfig = field(default_factory=NetworkOptimConfig)


@dataclass
class EMAConfig:
    """An exponential moving average of the generators' weights (Karras et al. 2018; Yazici et al. 2019):
    after each generator update, ema = decay * ema + (1 - decay) * weights; 0 turns it off."""

    decay: float = 0.0
    # Before this step the average just follows the weights (early weights are not worth averaging).
    start_step: int = 0


@dataclass
class ModelConfig:
    """Keys every model has; each model extends it with its own (see ``translate.models``)."""

    name: str = "???"
    gan_mode: GanMode = GanMode.vanilla
    # One-sided label smoothing: the discriminator's target for real images becomes 1 - this.
    label_smoothing: float = 0.0
    lambda_gp: float = 10.0
    # gan_mode=wgan: the critic's weights are clipped to [-clip_value, clip_value] after each update.
    clip_value: float = 0.01
    ema: EMAConfig = field(default_factory=EMAConfig)
    # DiffAugment (Zhao et al. 2020) of every image the discriminator sees: a comma-separated subset of
    # color, translation, cutout; empty for none.
    diffaugment: str = ""
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class DCGANGeneratorConfig:
    arch: str = "dcgan"
    ngf: int = 64
    # Class-conditional batch norm (per-class gain and bias from embeddings) instead of a one-hot input.
    conditional_bn: bool = False
    # transposed (DCGAN's) | resize_conv (nearest resize + 3 x 3 conv, free of checkerboard artifacts)
    upsample: Upsample = Upsample.transposed
    init_type: InitType = InitType.normal
    init_gain: float = 0.02


@dataclass
class DCGANDiscriminatorConfig:
    # dcgan (one-hot class maps concatenated to the image) | projection (Miyato & Koyama 2018)
    arch: str = "dcgan"
    ndf: int = 64
    # batch (DCGAN) | instance | none; gan_mode=wgangp needs instance or none.
    norm: Norm = Norm.batch
    # Spectral normalisation (Miyato et al. 2018) of every convolution, linear layer and embedding.
    spectral_norm: bool = False
    init_type: InitType = InitType.normal
    init_gain: float = 0.02


@dataclass
class CGANConfig(ModelConfig):
    name: str = "cgan"
    z_dim: int = 100
    num_classes: int = 10
    generator: DCGANGeneratorConfig = field(default_factory=DCGANGeneratorConfig)
    discriminator: DCGANDiscriminatorConfig = field(default_factory=DCGANDiscriminatorConfig)


@dataclass
class Pix2PixConfig(ModelConfig):
    name: str = "pix2pix"
    lambda_L1: float = 100.0
    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(arch="unet_256", norm=Norm.batch, dropout=True))
    discriminator: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(arch="basic", norm=Norm.batch))


@dataclass
class CycleGANConfig(ModelConfig):
    name: str = "cyclegan"
    gan_mode: GanMode = GanMode.lsgan
    lambda_A: float = 10.0
    lambda_B: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(arch="resnet_9blocks", norm=Norm.instance))
    discriminator: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(arch="basic", norm=Norm.instance))


@dataclass
class ClassifierConfig:
    name: str = "classifier"
    num_classes: int = 10
    channels: List[int] = field(default_factory=lambda: [32, 64, 128, 128])
    dropout: float = 0.2
    # Training augmentation: per-image rotation (degrees) and shift (fraction of the side).
    max_rotation: float = 10.0
    max_translation: float = 0.1
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, beta1=0.9))
