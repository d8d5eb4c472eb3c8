"""Moving a batch (a tensor or a dict of them and of paths) onto a device."""

from __future__ import annotations

from typing import Any

import torch


def move_to(batch: Any, device: torch.device, channels_last: bool) -> Any:
    """``batch`` with every tensor on ``device``; 4-D ones in channels_last layout when asked."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last) if channels_last and batch.dim() == 4 else batch
    if isinstance(batch, dict):
        return {k: move_to(v, device, channels_last) for k, v in batch.items()}
    return batch
