"""Normalisation layers and weight initialisation, as the reference implementation defines them, and
spectral normalisation."""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn as nn
from torch.nn import init
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm


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


#: The layers :func:`add_spectral_norm` normalises: every weight matrix of a discriminator.
SPECTRAL_NORM_LAYERS = (nn.modules.conv._ConvNd, nn.Linear, nn.Embedding)


def add_spectral_norm(net: nn.Module) -> nn.Module:
    """Spectrally normalise (Miyato et al. 2018) the weight of every convolution, linear layer and embedding
    of ``net`` in place, with ``torch.nn.utils.parametrizations.spectral_norm`` (one power iteration per
    training forward; the vectors ``_u``, ``_v`` are buffers, so they are saved and restored with the
    weights). The weight each layer uses becomes W / sigma(W), its largest singular value divided out, which
    bounds the Lipschitz constant of the network. Returns ``net``."""
    for m in net.modules():
        if isinstance(m, SPECTRAL_NORM_LAYERS) and not parametrize.is_parametrized(m, "weight"):
            spectral_norm(m)
    return net


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Initialise conv/linear weights (normal, xavier, kaiming, orthogonal), biases to 0, and
    BatchNorm weights to N(1, init_gain); embeddings keep the init their module gave them. A spectrally
    normalised layer has its unnormalised weight initialised and its power iteration started afresh from it.
    Returns ``net`` for chaining."""
    init_type = str(init_type)

    def init_fn(m: nn.Module) -> None:
        name = m.__class__.__name__
        if parametrize.is_parametrized(m, "weight"):
            # Reading m.weight would run the power iteration; initialise the plain weight, then normalise
            # it again, which starts the singular-vector estimates from the new weight.
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
            init_fn(m)
            spectral_norm(m)
        elif isinstance(getattr(m, "weight", None), torch.Tensor) and ("Conv" in name or "Linear" in name):
            weight, bias = m.weight, getattr(m, "bias", None)
            assert isinstance(weight, torch.Tensor)
            if init_type == "normal":
                init.normal_(weight, 0.0, init_gain)
            elif init_type == "xavier":
                init.xavier_normal_(weight, gain=init_gain)
            elif init_type == "kaiming":
                init.kaiming_normal_(weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                init.orthogonal_(weight, gain=init_gain)
            else:
                raise ValueError(f"init_type={init_type!r} is not supported; use normal, xavier, kaiming or orthogonal")
            if isinstance(bias, torch.Tensor):
                init.zeros_(bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            init.normal_(m.weight, 1.0, init_gain)
            init.zeros_(m.bias)

    return net.apply(init_fn)
