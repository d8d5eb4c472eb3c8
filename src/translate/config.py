"""Typed schemas for every config group, and the check that applies them.

Hydra composes YAML; these dataclasses decide what a valid composition is. ``validate`` merges the
composed config into the schemas so that a misspelled key, a value of the wrong type or an unknown
choice fails before any data is read, with a one-line message that names the key.
Model and dataset schemas live beside the code that uses them (``Model.config_class``,
``DATASETS``); this module holds the groups every run shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A user-facing configuration problem; its message is one line that names the key."""


class Choice(str, Enum):
    """A string enum whose members compare equal to their plain string values."""

    def __str__(self) -> str:
        return self.value


class GanMode(Choice):
    vanilla = "vanilla"
    lsgan = "lsgan"
    wgangp = "wgangp"
    hinge = "hinge"


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
class GeneratorConfig:
    arch: str = "dcgan"
    ngf: int = 64
    norm: Norm = Norm.batch
    dropout: bool = False
    n_blocks: int = 9
    num_downs: int = 8
    padding_type: str = "reflect"
    init_type: InitType = InitType.normal
    init_gain: float = 0.02


@dataclass
class DiscriminatorConfig:
    arch: str = "basic"
    ndf: int = 64
    n_layers: int = 3
    norm: Norm = Norm.batch
    init_type: InitType = InitType.normal
    init_gain: float = 0.02


@dataclass
class OptimConfig:
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0


@dataclass
class ModelConfig:
    """Keys every model has; each model extends it with its own (see ``translate.models``)."""

    name: str = "???"
    gan_mode: GanMode = GanMode.vanilla
    # One-sided label smoothing: the discriminator's target for real images becomes 1 - this.
    label_smoothing: float = 0.0
    lambda_gp: float = 10.0
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class TrainerConfig:
    batch_size: int = 1
    n_epochs: int = 100
    n_epochs_decay: int = 100
    lr_policy: LrPolicy = LrPolicy.linear
    lr_decay_epochs: int = 50
    lr_decay_gamma: float = 0.1
    max_steps: Optional[int] = None
    log_every_n_steps: int = 50
    image_every_n_steps: int = 500
    save_every_n_epochs: int = 5
    val_every_n_epochs: Optional[int] = 5
    val_max_images: Optional[int] = 50
    # Keep checkpoints/best.pt by this validation metric (e.g. val/PSNR); null: no best.pt.
    best_metric: Optional[str] = None
    # max or min; null: the metric's usual direction (translate.metrics.HIGHER_IS_BETTER).
    best_mode: Optional[BestMode] = None
    keep_last_n: Optional[int] = None
    skip_nonfinite: int = 0
    progress_bar: bool = True


@dataclass
class DeviceConfig:
    accelerator: Accelerator = Accelerator.auto
    amp: Amp = Amp.off
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False


@dataclass
class LoggerConfig:
    name: str = "tensorboard"
    enabled: bool = True


@dataclass
class PathsConfig:
    data_dir: str = "./data"
    output_dir: str = "./outputs"
    multirun_dir: str = "./multirun"


@dataclass
class ValMetricsConfig:
    """Training's FID/KID on the validation split (the keys mean what they mean in test.yaml)."""

    # auto | true | false; Any because it is a bool or the string auto.
    fid: Any = False
    inception_weights: Optional[str] = None
    kid_subset_size: int = 1000


@dataclass
class TrainConfig:
    seed: int = 0
    name: Optional[str] = None
    resume: Optional[str] = None
    model: Any = None
    data: Any = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    metrics: ValMetricsConfig = field(default_factory=ValMetricsConfig)


def _apply(schema: type, node: Any, where: str) -> DictConfig:
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node if node is not None else {})
    except OmegaConfBaseException as err:
        key = ".".join(k for k in (where, getattr(err, "full_key", None) or "") if k)
        message = str(getattr(err, "msg", err)).splitlines()[0]
        raise ConfigError(f"{key}: {message}") from None


def _registry_choice(node: Any, key: str, registry: dict, group: str) -> type:
    name = node.get(key) if isinstance(node, DictConfig) else None
    if name not in registry:
        raise ConfigError(
            f"{group}.{key}={name!r} is not known; choose one of: {', '.join(sorted(registry))}"
        )
    return registry[name]


def validate(cfg: DictConfig, testing: bool = False) -> DictConfig:
    """Return ``cfg`` merged into the typed schemas; raise ConfigError naming the first bad key.

    ``testing`` also accepts ``data=single`` (one folder, one way) for image-to-image models."""
    from translate.data import DATASETS
    from translate.models import MODELS

    if not isinstance(cfg.get("model"), DictConfig):
        raise ConfigError("model: no model selected; add model=cgan|pix2pix|cyclegan|classifier")
    if not isinstance(cfg.get("data"), DictConfig):
        raise ConfigError("data: no dataset selected; add data=<name>, e.g. data=mnist")
    model_cls = _registry_choice(cfg.model, "name", MODELS, "model")
    data_schema = _registry_choice(cfg.data, "kind", DATASETS, "data").config_class
    kinds = model_cls.data_kinds + (("single",) if testing and model_cls.task == "translate" else ())
    if cfg.data.kind not in kinds:
        raise ConfigError(
            f"data={cfg.data.get('name')} is {cfg.data.kind} data, but model={cfg.model.name} needs "
            f"{' or '.join(kinds)} data (see conf/data/)"
        )
    if not testing and cfg.get("metrics", {}).get("fid") is True and model_cls.task != "translate":
        raise ConfigError(
            f"metrics.fid=true: Inception FID/KID apply to pix2pix and CycleGAN, not model={cfg.model.name} "
            "(the cGAN's validation reports fid_mnist_classifier); remove metrics.fid"
        )
    rest = {k: v for k, v in cfg.items() if k not in ("model", "data")}
    typed = _apply(TrainConfig, rest, "")
    typed.model = _apply(model_cls.config_class, cfg.model, "model")
    typed.data = _apply(data_schema, cfg.data, "data")
    OmegaConf.set_struct(typed, True)
    return typed
