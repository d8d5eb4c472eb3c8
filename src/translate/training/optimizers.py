"""The optimiser of each of a model's groups, from ``model.optim`` and its per-group overrides."""

from __future__ import annotations

from typing import Any, Dict, Iterable

import torch

from translate.config import OptimType
from translate.models.configs import OptimConfig
from translate.training import speed

_KEYS = ("type", "lr", "beta1", "beta2", "weight_decay")


def optimizer_settings(optim: OptimConfig, group: str) -> Dict[str, Any]:
    """``model.optim``'s shared settings with those ``model.optim.<group>`` sets (G, D) in their place."""
    settings = {key: getattr(optim, key) for key in _KEYS}
    overrides = getattr(optim, group, None)
    if overrides is not None:
        settings.update({key: getattr(overrides, key) for key in _KEYS if getattr(overrides, key) is not None})
    return settings


def build_optimizer(params: Iterable[torch.nn.Parameter], optim: OptimConfig, group: str) -> torch.optim.Optimizer:
    """Adam (the papers') or RMSprop (the original WGAN's) over ``params`` for optimiser ``group``."""
    s = optimizer_settings(optim, group)
    if s["type"] == OptimType.rmsprop:
        return torch.optim.RMSprop(params, lr=s["lr"], weight_decay=s["weight_decay"])
    # Fused where the device has the kernel (training/speed.py): the same update, far fewer passes.
    return speed.build_adam(list(params), lr=s["lr"], betas=(s["beta1"], s["beta2"]), weight_decay=s["weight_decay"])
