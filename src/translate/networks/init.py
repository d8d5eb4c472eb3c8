"""Normalisation layers and weight initialisation, as the reference implementation defines them."""

from __future__ import annotations

import functools
from typing import Callable

import torch.nn as nn
from torch.nn import init


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Return a constructor ``f(num_channels) -> nn.Module`` for ``batch``, ``instance`` or ``none``.

    ``instance`` has no affine parameters and no running statistics, as in the reference, so its
    checkpoints carry no normalisation tensors.
    """
    norm = str(norm)
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda num_channels: nn.Identity()
    raise ValueError(f"norm={norm!r} is not supported; use batch, instance or none")


def uses_bias(norm: str) -> bool:
    """The reference gives convolutions a bias only before instance norm (which has no affine shift)."""
    return str(norm) == "instance"


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Initialise conv/linear weights (normal, xavier, kaiming, orthogonal), biases to 0, and
    BatchNorm weights to N(1, init_gain). Returns ``net`` for chaining."""
    init_type = str(init_type)

    def init_fn(m: nn.Module) -> None:
        name = m.__class__.__name__
        if hasattr(m, "weight") and m.weight is not None and ("Conv" in name or "Linear" in name):
            if init_type == "normal":
                init.normal_(m.weight, 0.0, init_gain)
            elif init_type == "xavier":
                init.xavier_normal_(m.weight, gain=init_gain)
            elif init_type == "kaiming":
                init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                init.orthogonal_(m.weight, gain=init_gain)
            else:
                raise ValueError(f"init_type={init_type!r} is not supported; use normal, xavier, kaiming or orthogonal")
            if getattr(m, "bias", None) is not None:
                init.zeros_(m.bias)
        elif "BatchNorm2d" in name:
            init.normal_(m.weight, 1.0, init_gain)
            init.zeros_(m.bias)

    return net.apply(init_fn)
