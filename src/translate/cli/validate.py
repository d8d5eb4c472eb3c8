"""The one check of a composed config against the schemas and the registries, before any data is read.

Hydra composes YAML; ``validate`` merges the composition into the typed schemas so that a misspelled key,
a value of the wrong type, an unknown choice or a model with data it cannot use fails with a one-line
message that names the key.
"""

from __future__ import annotations

from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from translate.config import TrainConfig
from translate.data.configs import DATA_SCHEMAS
from translate.errors import ConfigError
from translate.models import MODELS, model_class


def _plain(node: Any) -> Any:
    """``node`` as plain containers: Hydra composes typed nodes that accept keys added with ``+``, and a
    merge would carry them over; plain values are checked key by key against the schema."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=False, enum_to_str=True)
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    return node


def _apply(schema: type, node: Any, where: str) -> DictConfig:
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), _plain(node) if node is not None else {})
    except OmegaConfBaseException as err:
        key = ".".join(k for k in (where, getattr(err, "full_key", None) or "") if k)
        message = str(getattr(err, "msg", err)).splitlines()[0]
        raise ConfigError(f"{key}: {message}") from None


def _registry_choice(node: Any, key: str, registry: Mapping[str, Any], group: str) -> str:
    name = node.get(key) if isinstance(node, DictConfig) else None
    if name not in registry:
        raise ConfigError(f"{group}.{key}={name!r} is not known; choose one of: {', '.join(sorted(registry))}")
    return name


def validate(cfg: DictConfig, testing: bool = False) -> DictConfig:
    """Return ``cfg`` merged into the typed schemas; raise ConfigError naming the first bad key.

    ``testing`` also accepts ``data=single`` (one folder, one way) for image-to-image models."""
    if not isinstance(cfg.get("model"), DictConfig):
        raise ConfigError(f"model: no model selected; add model={'|'.join(MODELS)}")
    if not isinstance(cfg.get("data"), DictConfig):
        raise ConfigError("data: no dataset selected; add data=<name>, e.g. data=mnist")
    model_name = _registry_choice(cfg.model, "name", MODELS, "model")
    data_kind = _registry_choice(cfg.data, "kind", DATA_SCHEMAS, "data")
    model_cls = model_class(model_name)
    kinds = model_cls.data_kinds + (("single",) if testing and model_cls.task == "translate" else ())
    if data_kind not in kinds:
        raise ConfigError(
            f"data={cfg.data.get('name')} is {data_kind} data, but model={model_name} needs {' or '.join(kinds)} data (see conf/data/)"
        )
    if not testing and cfg.get("metrics", {}).get("fid") is True and model_cls.task != "translate":
        raise ConfigError(
            f"metrics.fid=true: Inception FID/KID apply to pix2pix and CycleGAN, not model={model_name} "
            "(the cGAN's validation reports fid_mnist_classifier); remove metrics.fid"
        )
    rest = {k: v for k, v in cfg.items() if k not in ("model", "data")}
    typed = _apply(TrainConfig, rest, "")
    typed.model = _apply(MODELS[model_name].schema, cfg.model, "model")
    typed.data = _apply(DATA_SCHEMAS[data_kind], cfg.data, "data")
    OmegaConf.set_struct(typed, True)
    return typed
