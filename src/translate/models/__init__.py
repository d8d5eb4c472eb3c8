"""Models by name (``model.name``). Adding one means adding its file and a line here, nothing else."""

from __future__ import annotations

from typing import Any, Dict, Mapping

from translate.models.base import DataInfo, GANModel
from translate.models.cgan import CGAN
from translate.models.classifier import Classifier
from translate.models.cyclegan import CycleGAN
from translate.models.pix2pix import Pix2Pix

MODELS: Dict[str, type] = {
    "cgan": CGAN,
    "pix2pix": Pix2Pix,
    "cyclegan": CycleGAN,
    "classifier": Classifier,
}


def build_model(cfg: Any, info: Mapping[str, Any]) -> GANModel:
    return MODELS[str(cfg.name)](cfg, DataInfo(**info))
