"""Typed schemas of the ``model`` config group, one per model; no torch, so the registry and the command
line read them without loading any model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from translate.config import GanMode, InitType, Norm, OptimType, at_least, require
from translate.data.configs import DataConfig, ImageDataConfig
from translate.networks.configs import (
    DiscriminatorConfig,
    GeneratorConfig,
    Upsample,
    check_discriminator_size,
    check_image_size,
    check_resampling,
    resnet_encoder_layers,
)

#: The classes of the one class-conditional dataset here (MNIST's digits).
MNIST_CLASSES = 10


@dataclass
class NetworkOptimConfig:
    """The settings of one optimiser (``G`` or ``D``) where they differ from the shared ones; null: shared."""

    type: Optional[OptimType] = None
    lr: Optional[float] = None
    beta1: Optional[float] = None
    beta2: Optional[float] = None
    weight_decay: Optional[float] = None

    def check(self, where: str) -> None:
        if self.lr is not None:
            require(self.lr > 0, f"{where}.lr", self.lr, "must be > 0, e.g. 2e-4")
        for key in ("beta1", "beta2"):
            value = getattr(self, key)
            if value is not None:
                require(0 <= value < 1, f"{where}.{key}", value, "must be in [0, 1), e.g. 0.5 or 0.999")
        at_least(self.weight_decay, 0, f"{where}.weight_decay", optional=True)


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

    def check(self, where: str) -> None:
        NetworkOptimConfig(None, self.lr, self.beta1, self.beta2, self.weight_decay).check(where)
        self.G.check(f"{where}.G")
        self.D.check(f"{where}.D")


@dataclass
class EMAConfig:
    """An exponential moving average of the generators' weights (Karras et al. 2018; Yazici et al. 2019):
    after each generator update, ema = d * ema + (1 - d) * weights with d = min(decay, (1 + n) / (10 + n)) for
    the n-th update (TensorFlow's ramp: early, mostly random weights are forgotten); 0 turns it off."""

    decay: float = 0.0
    # Before this step the average just follows the weights (early weights are not worth averaging).
    start_step: int = 0

    def check(self, where: str) -> None:
        require(0 <= self.decay < 1, f"{where}.decay", self.decay, "must be in [0, 1), e.g. 0.999 (0 turns the average off)")
        at_least(self.start_step, 0, f"{where}.start_step")


@dataclass
class ModelConfig:
    """Keys every model has; each model extends it with its own (see ``translate.models``)."""

    name: str = "???"
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)

    def check(self, data: DataConfig, where: str = "model") -> None:
        """Raise ConfigError naming the first key out of range, or that does not fit ``data``."""
        self.optim.check(f"{where}.optim")
        self.ema.check(f"{where}.ema")


@dataclass
class GANConfig(ModelConfig):
    """Keys every GAN has: the game (see ``translate.losses.AdversarialLoss``). Each GAN adds its
    ``generator`` and ``discriminator`` sections, whose schemas differ (a DCGAN pair for the cGAN, the image
    networks of ``translate.networks.configs`` for pix2pix, CycleGAN and CUT)."""

    gan_mode: GanMode = GanMode.vanilla
    # One-sided label smoothing: the discriminator's target for real images becomes 1 - this.
    label_smoothing: float = 0.0
    lambda_gp: float = 10.0
    # gan_mode=wgan: the critic's weights are clipped to [-clip_value, clip_value] after each update.
    clip_value: float = 0.01
    # DiffAugment (Zhao et al. 2020) of every image the discriminator sees: a comma-separated subset of
    # color, translation, cutout; empty for none.
    diffaugment: str = ""

    def check(self, data: DataConfig, where: str = "model") -> None:
        super().check(data, where)
        require(0 <= self.label_smoothing < 1, f"{where}.label_smoothing", self.label_smoothing, "must be in [0, 1), e.g. 0.1")
        at_least(self.lambda_gp, 0, f"{where}.lambda_gp")
        require(self.clip_value > 0, f"{where}.clip_value", self.clip_value, "must be > 0, e.g. 0.01")


def check_image_networks(generator: GeneratorConfig, discriminator: DiscriminatorConfig, data: DataConfig) -> None:
    """The generator's resampling settings must combine, and images of ``data``'s fixed size (its crop) must
    pass through the generator and leave the PatchGAN an output; a preprocessing without a fixed size is
    checked image by image at run time."""
    check_resampling(generator)
    if isinstance(data, ImageDataConfig) and data.image_size is not None:
        check_image_size(generator, data.image_size, "data.crop_size")
        check_discriminator_size(discriminator, data.image_size)


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
class CGANConfig(GANConfig):
    name: str = "cgan"
    z_dim: int = 100
    num_classes: int = 10
    generator: DCGANGeneratorConfig = field(default_factory=DCGANGeneratorConfig)
    discriminator: DCGANDiscriminatorConfig = field(default_factory=DCGANDiscriminatorConfig)

    def check(self, data: DataConfig, where: str = "model") -> None:
        super().check(data, where)
        at_least(self.z_dim, 1, f"{where}.z_dim")
        require(self.num_classes == MNIST_CLASSES, f"{where}.num_classes", self.num_classes, f"but MNIST has {MNIST_CLASSES} classes")


@dataclass
class Pix2PixConfig(GANConfig):
    name: str = "pix2pix"
    lambda_L1: float = 100.0
    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(arch="unet_256", norm=Norm.batch, dropout=True))
    discriminator: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(arch="basic", norm=Norm.batch))

    def check(self, data: DataConfig, where: str = "model") -> None:
        super().check(data, where)
        at_least(self.lambda_L1, 0, f"{where}.lambda_L1")
        check_image_networks(self.generator, self.discriminator, data)


@dataclass
class CycleGANConfig(GANConfig):
    name: str = "cyclegan"
    gan_mode: GanMode = GanMode.lsgan
    lambda_A: float = 10.0
    lambda_B: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(arch="resnet_9blocks", norm=Norm.instance))
    discriminator: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(arch="basic", norm=Norm.instance))

    def check(self, data: DataConfig, where: str = "model") -> None:
        super().check(data, where)
        for key in ("lambda_A", "lambda_B", "lambda_identity"):
            at_least(getattr(self, key), 0, f"{where}.{key}")
        at_least(self.pool_size, 0, f"{where}.pool_size", "0 keeps no history")
        if self.lambda_identity > 0 and isinstance(data, ImageDataConfig) and data.input_nc != data.output_nc:
            require(
                False,
                f"{where}.lambda_identity",
                self.lambda_identity,
                f"needs data.input_nc == data.output_nc (got {data.input_nc} and {data.output_nc}); set {where}.lambda_identity=0",
            )
        check_image_networks(self.generator, self.discriminator, data)


def _cut_generator() -> GeneratorConfig:
    # The authors' defaults (options/base_options.py): resnet_9blocks, instance norm, no dropout, xavier init
    # with gain 0.02, anti-aliased down- and upsampling (--no_antialias and --no_antialias_up unset).
    return GeneratorConfig(arch="resnet_9blocks", norm=Norm.instance, antialias=True, antialias_up=True, init_type=InitType.xavier)


def _cut_discriminator() -> DiscriminatorConfig:
    # The authors' basic 70x70 PatchGAN with instance norm, anti-aliased, xavier init with gain 0.02.
    return DiscriminatorConfig(arch="basic", norm=Norm.instance, antialias=True, init_type=InitType.xavier)


@dataclass
class CUTConfig(GANConfig):
    """CUT (Park et al. 2020); FastCUT is CUT with lambda_NCE 10, no nce_idt, flip_equivariance and a shorter
    schedule (conf/experiment/fastcut.yaml). Key names and defaults are the authors' (models/cut_model.py)."""

    name: str = "cut"
    gan_mode: GanMode = GanMode.lsgan
    lambda_GAN: float = 1.0
    lambda_NCE: float = 1.0
    # The identity term: PatchNCE also between Y and G(Y) (CUT: true, FastCUT: false).
    nce_idt: bool = True
    # Indices of the generator's `model` Sequential whose outputs PatchNCE compares (its encoder: the stem,
    # the downsamplings and the residual blocks; 0 is the reflection-padded input).
    nce_layers: List[int] = field(default_factory=lambda: [0, 4, 8, 12, 16])
    # Temperature tau of the contrastive softmax.
    nce_T: float = 0.07
    # Patches sampled per layer and image (the same positions in every image of a batch).
    num_patches: int = 256
    # Width of the projection MLP H_l (two layers) of each tapped layer.
    netF_nc: int = 256
    # false (CUT, FastCUT): the negatives of a patch are the other patches of its own image; true (the authors'
    # single-image SinCUT): those of every image of the batch.
    nce_includes_all_negatives_from_minibatch: bool = False
    # FastCUT: half the batches are flipped left-right before G, and the output's features flipped back, so
    # PatchNCE also asks G to commute with the flip.
    flip_equivariance: bool = False
    generator: GeneratorConfig = field(default_factory=_cut_generator)
    discriminator: DiscriminatorConfig = field(default_factory=_cut_discriminator)

    def check(self, data: DataConfig, where: str = "model") -> None:
        super().check(data, where)
        for key in ("lambda_GAN", "lambda_NCE"):
            at_least(getattr(self, key), 0, f"{where}.{key}")
        require(self.nce_T > 0, f"{where}.nce_T", self.nce_T, "must be > 0, e.g. 0.07")
        at_least(self.num_patches, 1, f"{where}.num_patches")
        at_least(self.netF_nc, 1, f"{where}.netF_nc")
        encoder = resnet_encoder_layers(self.generator, f"{where}.generator")
        layers = list(self.nce_layers)
        require(
            bool(layers) and layers == sorted(set(layers)) and layers[0] >= 0 and layers[-1] < encoder,
            f"{where}.nce_layers",
            layers,
            f"must be increasing indices of the generator's encoder layers, 0 to {encoder - 1} for this generator (e.g. [0,4,8,12,16])",
        )
        if self.nce_idt and self.lambda_NCE > 0 and isinstance(data, ImageDataConfig) and data.input_nc != data.output_nc:
            require(
                False,
                f"{where}.nce_idt",
                "true",
                f"runs G on B images, which needs data.input_nc == data.output_nc (got {data.input_nc} and {data.output_nc}); set {where}.nce_idt=false",
            )
        check_image_networks(self.generator, self.discriminator, data)


@dataclass
class ClassifierConfig(ModelConfig):
    name: str = "classifier"
    num_classes: int = 10
    channels: List[int] = field(default_factory=lambda: [32, 64, 128, 128])
    dropout: float = 0.2
    # Training augmentation: per-image rotation (degrees) and shift (fraction of the side).
    max_rotation: float = 10.0
    max_translation: float = 0.1
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, beta1=0.9))

    def check(self, data: DataConfig, where: str = "model") -> None:
        super().check(data, where)
        require(self.num_classes == MNIST_CLASSES, f"{where}.num_classes", self.num_classes, f"but MNIST has {MNIST_CLASSES} classes")
        require(0 <= self.dropout < 1, f"{where}.dropout", self.dropout, "must be in [0, 1)")
