"""Choosing the device and moving batches onto it."""

from __future__ import annotations

from typing import Any

import torch


class DeviceError(RuntimeError):
    """The requested device is not present; the message says which one would work."""


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


def move_to(batch: Any, device: torch.device, channels_last: bool) -> Any:
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last) if channels_last and batch.dim() == 4 else batch
    if isinstance(batch, dict):
        return {k: move_to(v, device, channels_last) for k, v in batch.items()}
    return batch
