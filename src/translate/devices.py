"""Choosing the device a run trains or tests on, or a loaded generator runs on."""

from __future__ import annotations

from typing import Union

import torch

from translate.errors import ConfigError, DeviceError


def resolve_device(device: Union[str, torch.device, None]) -> torch.device:
    """``auto`` / None: CUDA if present, else MPS, else the CPU; otherwise the device named (``cuda:1``)."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        chosen = torch.device(str(device))
    except RuntimeError:
        raise ConfigError(f"device={device} is not a device; use auto, cpu, cuda, cuda:<index> or mps") from None
    if (chosen.type == "cuda" and not torch.cuda.is_available()) or (chosen.type == "mps" and not torch.backends.mps.is_available()):
        raise DeviceError(f"device={device} was requested but this machine has none; use device=auto or device=cpu")
    return chosen
