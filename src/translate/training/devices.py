"""Choosing the device a run trains or tests on."""

from __future__ import annotations

import torch

from translate.errors import DeviceError


def resolve_device(accelerator: str) -> torch.device:
    accelerator = str(accelerator)
    if accelerator == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available[accelerator]:
        raise DeviceError(f"device={accelerator} was requested but this machine has none; use device=auto or device=cpu")
    return torch.device(accelerator)
