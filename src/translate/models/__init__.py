"""Models by name (``model.name``): each name maps to its schema and to the class that implements it.

The schemas (``translate.models.configs``) load without torch; a model's module is imported only when that
model is chosen (:func:`model_class`). Adding a model means adding its module, its schema and a line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Dict

from translate.models.configs import CGANConfig, ClassifierConfig, CUTConfig, CycleGANConfig, Pix2PixConfig


@dataclass(frozen=True)
class ModelEntry:
    schema: type
    #: ``module:Class`` of the implementation.
    target: str


MODELS: Dict[str, ModelEntry] = {
    "cgan": ModelEntry(CGANConfig, "translate.models.cgan:CGAN"),
    "pix2pix": ModelEntry(Pix2PixConfig, "translate.models.pix2pix:Pix2Pix"),
    "cyclegan": ModelEntry(CycleGANConfig, "translate.models.cyclegan:CycleGAN"),
    "cut": ModelEntry(CUTConfig, "translate.models.cut:CUT"),
    "classifier": ModelEntry(ClassifierConfig, "translate.models.classifier:Classifier"),
}


def model_class(name: str) -> type:
    """The class of model ``name`` (a key of :data:`MODELS`), importing its module now."""
    module, cls = MODELS[name].target.split(":")
    return getattr(importlib.import_module(module), cls)
