"""Models by name (``model.name``). Adding one means adding its file and a line here, nothing else."""

from __future__ import annotations

from typing import Any, Dict, Mapping

from translate.models.base import DataInfo, GANModel
from translate.models.cgan import CGAN

MODELS: Dict[str, type] = {
    "cgan": CGAN,
}


def build_model(cfg: Any, info: Mapping[str, Any]) -> GANModel:
    return MODELS[str(cfg.name)](cfg, DataInfo(**info))
