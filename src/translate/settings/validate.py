"""The one validation that turns a composed config into typed objects, and the objective a run reports to
a sweeper.

Hydra composes YAML; :func:`validate_train` and :func:`validate_command` (every other command) merge it into
the schemas (a misspelled key, a value of the wrong type or an unknown choice fails there, naming the key),
then run every range and cross-key check: each schema's own ``check`` (``translate.config``,
``translate.data.configs``, ``translate.models.configs``) and the rules that span sections, here. They run
before any download, dataset or network is built, and return plain dataclasses that nobody mutates: a
command that needs another value (a downloaded dataset's folder) makes a copy with ``dataclasses.replace``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Type, TypeVar, cast

from omegaconf import DictConfig, OmegaConf

from translate.augment import parse_policy
from translate.config import ApplyConfig, BestMode, BundleConfig, DemoConfig, ExportConfig, TestConfig, plain, to_typed
from translate.data.configs import DATA_SCHEMAS, DataConfig, root_not_set
from translate.errors import ConfigError
from translate.evaluation.image_metrics import higher_is_better
from translate.evaluation.protocols import PROTOCOLS
from translate.losses import check_gan_mode
from translate.models import MODELS, model_class
from translate.models.base import GANModel
from translate.models.configs import GANConfig, ModelConfig
from translate.settings.schema import TrainConfig


@dataclass(frozen=True)
class Objective:
    """The one number a run reports to a sweeper: which metric, which way is better, and which value."""

    #: ``val/<metric>`` or ``train/<loss>``.
    metric: str
    higher_is_better: bool
    #: True: the best value of ``trainer.best_metric`` over the run; False: the metric's last value.
    best: bool

    @property
    def direction(self) -> str:
        """As Optuna and ``hydra.sweeper.direction`` name it."""
        return "maximize" if self.higher_is_better else "minimize"

    def value(self, best: Optional[Mapping[str, Any]], final_metrics: Mapping[str, float]) -> float:
        """The objective of a finished run; NaN when the run never logged it."""
        if self.best:
            return float(best["value"]) if best is not None else math.nan
        return float(final_metrics.get(self.metric, math.nan))


def objective_of(cfg: TrainConfig) -> Objective:
    """``cfg.objective`` (its last value), else ``trainer.best_metric`` (its best value), else the model's
    default; the direction from ``objective_mode`` / ``trainer.best_mode``, else the metric's usual one."""
    best_metric = cfg.trainer.best_metric
    if cfg.objective:
        metric, mode, best = cfg.objective, cfg.objective_mode, False
    elif best_metric:
        metric, mode, best = best_metric, cfg.objective_mode or cfg.trainer.best_mode, True
    else:
        metric, mode, best = PROTOCOLS[_model_class(cfg.model.name).evaluation].objective, cfg.objective_mode, False
    if not metric.startswith(("val/", "train/")):
        raise ConfigError(
            f"objective={metric} is not a logged metric; use val/<metric> (e.g. val/PSNR) or train/<loss> (e.g. train/loss_G/L1)"
        )
    higher = mode == BestMode.max if mode is not None else higher_is_better(metric)
    if higher is None:
        # Losses are minimised; a metric we do not know must be given its direction.
        if not metric.startswith("train/loss"):
            raise ConfigError(f"objective_mode: say max or min for objective={metric}")
        higher = False
    return Objective(metric, higher, best)


def _model_class(name: str) -> Type[GANModel]:
    return cast(Type[GANModel], model_class(name))


def _registered(node: Any, key: str, registry: Mapping[str, Any], group: str) -> str:
    name = node.get(key) if isinstance(node, (DictConfig, dict)) else None
    if name not in registry:
        raise ConfigError(f"{group}.{key}={name!r} is not known; choose one of: {', '.join(sorted(registry))}")
    return str(name)


def typed_model(node: Any, where: str = "model") -> ModelConfig:
    """The ``model`` section typed by the schema its ``name`` registers."""
    if not isinstance(node, (DictConfig, dict)):
        raise ConfigError(f"{where}: no model selected; add model={'|'.join(MODELS)}")
    return to_typed(MODELS[_registered(node, "name", MODELS, where)].schema, node, where)


def typed_data(node: Any, where: str = "data") -> DataConfig:
    """The ``data`` section typed by the schema of its ``kind``, with its own checks run."""
    if not isinstance(node, (DictConfig, dict)):
        raise ConfigError(f"{where}: no dataset selected; add data=<name>, e.g. data=mnist")
    kind = _registered(node, "kind", DATA_SCHEMAS, where)
    if plain(node).get("root", DATA_SCHEMAS[kind]().root) in ("???", ""):
        raise root_not_set(kind, where)
    data = to_typed(DATA_SCHEMAS[kind], node, where)
    data.check(where)
    return data


def check_model_data(model: ModelConfig, data: DataConfig, testing: bool = False, compile: bool = False) -> None:
    """The rules between a model and its data (and the device's compile): the data kind it takes (``testing``
    also takes a ``single`` folder for an image-to-image model), the model's own checks against the data,
    and, for a GAN, its mode's rules and its DiffAugment policy."""
    cls = _model_class(model.name)
    kinds = cls.data_kinds + (("single",) if testing and cls.task == "translate" else ())
    if data.kind not in kinds:
        raise ConfigError(f"data={data.name} is {data.kind} data, but model={model.name} needs {' or '.join(kinds)} data (see conf/data/)")
    model.check(data)
    if isinstance(model, GANConfig):
        # Every GAN's schema has a discriminator section, of its own type (see GANConfig).
        check_gan_mode(model.gan_mode, str(model.discriminator.norm), compile)  # type: ignore[attr-defined]
        parse_policy(model.diffaugment)


def _check_best_metric(cfg: TrainConfig) -> None:
    """``trainer.best_metric`` must be a metric this run's validation logs, in a known direction."""
    metric, tr = cfg.trainer.best_metric, cfg.trainer
    if not metric:
        return
    protocol = PROTOCOLS[_model_class(cfg.model.name).evaluation]
    names = [f"val/{name}" for name in protocol.validation_metrics(distributions=True)]
    if tr.val_every_n_epochs is None or not names:
        raise ConfigError(f"trainer.best_metric={metric} needs validation, but this run has none: set trainer.val_every_n_epochs")
    if metric not in names:
        raise ConfigError(f"trainer.best_metric={metric} is not a validation metric of model={cfg.model.name}; it has {', '.join(names)}")
    if metric not in [f"val/{name}" for name in protocol.validation_metrics(distributions=False)] and cfg.metrics.fid is not True:
        raise ConfigError(f"trainer.best_metric={metric} is computed only with metrics.fid=true (it needs the Inception weights); set it")
    if tr.best_mode is None and higher_is_better(metric) is None:
        raise ConfigError(f"trainer.best_mode: say max or min for trainer.best_metric={metric}")


def validate_train(cfg: Any) -> TrainConfig:
    """translate-train's composed config (a DictConfig or plain containers) as a checked :class:`TrainConfig`;
    ConfigError names the first bad key."""
    model = typed_model(cfg.get("model"))
    data = typed_data(cfg.get("data"))
    rest = {k: v for k, v in plain(cfg).items() if k not in ("model", "data")}
    # TrainConfig's model and data sections take the chosen model's and dataset's own schemas.
    base = OmegaConf.structured(TrainConfig)
    base.model, base.data = OmegaConf.structured(model), OmegaConf.structured(data)
    typed = replace(to_typed(TrainConfig, rest, base=base), model=model, data=data)
    typed.trainer.check()
    typed.metrics.check()
    typed.logger.check()
    check_model_data(model, data, compile=typed.device.compile)
    if typed.metrics.fid is True and _model_class(model.name).task != "translate":
        raise ConfigError(
            f"metrics.fid=true: Inception FID/KID apply to pix2pix and CycleGAN, not model={model.name} "
            "(the cGAN's validation reports fid_mnist_classifier); remove metrics.fid"
        )
    _check_best_metric(typed)
    objective_of(typed)
    return typed


CommandConfig = TypeVar("CommandConfig", TestConfig, ExportConfig, ApplyConfig, BundleConfig, DemoConfig)


def validate_command(schema: Type[CommandConfig], cfg: Any) -> CommandConfig:
    """The composed config of a command that uses a trained generator (translate-test, -export, -apply, -bundle,
    -demo) as its checked schema; ConfigError names the first bad key."""
    typed = to_typed(schema, cfg)
    typed.check()
    return typed


def validate_test(cfg: Any) -> TestConfig:
    """translate-test's config (its ``data`` and ``model`` overrides stay raw until the test knows the run they
    apply to: :func:`typed_data`, :func:`typed_model`)."""
    return validate_command(TestConfig, cfg)


def validate_export(cfg: Any) -> ExportConfig:
    return validate_command(ExportConfig, cfg)


def validate_apply(cfg: Any) -> ApplyConfig:
    return validate_command(ApplyConfig, cfg)


def validate_bundle(cfg: Any) -> BundleConfig:
    return validate_command(BundleConfig, cfg)


def validate_demo(cfg: Any) -> DemoConfig:
    return validate_command(DemoConfig, cfg)
