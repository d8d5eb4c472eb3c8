"""The shared config vocabulary: the enums and the schemas of the groups every run shares (trainer,
device, logger, paths, metrics). Imports no torch and no component.

Hydra composes YAML; these dataclasses and the component schemas beside their code
(``translate.networks.configs``, ``translate.data.configs``, ``translate.models.configs``) decide what a
valid composition is (see ``translate.cli.validate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional


class Choice(str, Enum):
    """A string enum whose members compare equal to their plain string values."""

    def __str__(self) -> str:
        return self.value


class GanMode(Choice):
    vanilla = "vanilla"
    lsgan = "lsgan"
    wgangp = "wgangp"
    hinge = "hinge"
    wgan = "wgan"


class OptimType(Choice):
    adam = "adam"
    rmsprop = "rmsprop"


class Norm(Choice):
    batch = "batch"
    instance = "instance"
    none = "none"


class InitType(Choice):
    normal = "normal"
    xavier = "xavier"
    kaiming = "kaiming"
    orthogonal = "orthogonal"


class Amp(Choice):
    off = "off"
    bf16 = "bf16"
    fp16 = "fp16"


class BestMode(Choice):
    max = "max"
    min = "min"


class Accelerator(Choice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class LrPolicy(Choice):
    linear = "linear"
    step = "step"
    cosine = "cosine"
    constant = "constant"


@dataclass
class TrainerConfig:
    """The papers' schedule (pix2pix, CycleGAN): batch 1, 100 epochs at constant lr, 100 of linear decay."""

    batch_size: int = 1
    n_epochs: int = 100
    n_epochs_decay: int = 100
    # linear | step (x lr_decay_gamma every lr_decay_epochs) | cosine | constant
    lr_policy: LrPolicy = LrPolicy.linear
    lr_decay_epochs: int = 50
    lr_decay_gamma: float = 0.1
    # Hard cap on optimisation steps (null: run all epochs).
    max_steps: Optional[int] = None
    # Discriminator updates per generator update: the discriminators learn on every step (every batch),
    # the generators on every n-th (5: the WGAN paper's n_critic).
    d_steps_per_g_step: int = 1
    log_every_n_steps: int = 100
    image_every_n_steps: int = 1000
    save_every_n_epochs: int = 5
    # Test metrics (e.g. pix2pix L1/PSNR/SSIM) on the val split, when the data has one, logged as val/...
    val_every_n_epochs: Optional[int] = 5
    val_max_images: Optional[int] = 50
    # Keep checkpoints/best.pt by this validation metric (e.g. val/PSNR, val/fid_mnist_classifier); null: no best.pt.
    best_metric: Optional[str] = None
    # max or min; null: the metric's usual direction (lower for L1/FID/KID, higher for PSNR/SSIM/accuracy).
    best_mode: Optional[BestMode] = None
    # Keep only this many epoch_<n>.pt files (null: all); latest.pt is always kept.
    keep_last_n: Optional[int] = None
    # A non-finite loss stops training; up to this many such steps are skipped (their updates left out) instead.
    skip_nonfinite: int = 0
    progress_bar: bool = True


@dataclass
class DeviceConfig:
    """Where to train (auto: CUDA if present, else MPS, else CPU), and how."""

    accelerator: Accelerator = Accelerator.auto
    # Mixed precision: off | bf16 | fp16 (fp16 uses a gradient scaler).
    amp: Amp = Amp.off
    # NHWC memory layout: faster convolutions on tensor-core GPUs.
    channels_last: bool = False
    # torch.compile every network (first steps are slow while it compiles).
    compile: bool = False
    # Deterministic kernels and no cuDNN autotuning: reproducible, slower.
    deterministic: bool = False
    # Over several processes: batch norm with the statistics of the whole batch (all processes), not each one's share.
    sync_bn: bool = False


@dataclass
class LoggerConfig:
    """TensorBoard events in <run dir>/tb/ (open with: tensorboard --logdir outputs)."""

    name: str = "tensorboard"
    enabled: bool = True


@dataclass
class PathsConfig:
    """Datasets are read from (and translate-data stores them in) data_dir; runs go under output_dir."""

    data_dir: str = "./data"
    output_dir: str = "./outputs"
    multirun_dir: str = "./multirun"


@dataclass
class ValMetricsConfig:
    """FID and KID of the translations on the validation split, at each validation (pix2pix, CycleGAN), on
    torch-fidelity's Inception-v3 (pip install "translate[metrics]"); logged as val/FID_B, val/KID_B, ...
    On trainer.val_max_images images they follow a run's trend; they are not comparable with test-set FIDs."""

    # false (they cost an Inception pass over each validation) | auto: when the weights are found | true: stop
    # before training when torch-fidelity or the weights are missing. Any: a bool or the string auto.
    fid: Any = False
    # The Inception weights file; null: torch-fidelity's cache (see translate-test's metrics, README).
    inception_weights: Optional[str] = None
    kid_subset_size: int = 1000


@dataclass
class TrainConfig:
    """translate-train's composed config: one group per concern (conf/train.yaml lists them)."""

    seed: int = 0
    # Free-form label for the run; shows in the saved config.
    name: Optional[str] = None
    # Continue a run: its directory (uses checkpoints/latest.pt) or a checkpoint file.
    resume: Optional[str] = None
    # What translate-train returns to a sweeper (Optuna): the last value of this metric (val/<metric> or
    # train/<loss>); null: the best value of trainer.best_metric when that is set, else the model's default
    # (pix2pix val/L1, CycleGAN val/cycle_L1_A, cGAN val/fid_mnist_classifier, classifier train/loss_C/ce).
    objective: Optional[str] = None
    # max or min; null: the metric's usual direction. The sweeper's hydra.sweeper.direction must agree.
    objective_mode: Optional[BestMode] = None
    model: Any = None
    data: Any = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    metrics: ValMetricsConfig = field(default_factory=ValMetricsConfig)
