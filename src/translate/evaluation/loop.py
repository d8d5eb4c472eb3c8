"""Running a model's ``translate`` over datasets and averaging per-image metrics.

Shared by ``translate-test`` (which also writes every image) and validation during training.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from translate.data.base import SplitDataset
from translate.data.batch import move_to

#: Per-image metrics ``{name: [N]}`` of a batch's visuals (real_A, fake_B, ...).
PerImageMetrics = Callable[[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]
#: ``(batch, visuals, per-image metrics)`` of each batch.
BatchCallback = Callable[[Dict[str, Any], Dict[str, torch.Tensor], Dict[str, torch.Tensor]], None]


def num_inputs(datasets: List[SplitDataset], limit: Optional[int] = None) -> int:
    """How many inputs :func:`evaluate` takes from ``datasets``: the first ``limit`` of each (all when None)."""
    return sum(len(dataset) if limit is None else min(len(dataset), limit) for dataset in datasets)


@torch.no_grad()
def evaluate(
    model: Any,
    metrics_of: PerImageMetrics,
    datasets: List[SplitDataset],
    batch_size: int,
    device: torch.device,
    limit: Optional[int] = None,
    on_batch: Optional[BatchCallback] = None,
    progress: bool = True,
) -> Dict[str, Dict[str, float]]:
    """Translate the first ``limit`` inputs (all when None) of each of ``datasets`` in order with
    ``model.translate``, deterministically: each dataset is one direction (CycleGAN's testA and testB),
    and both get scored by ``metrics_of``.

    Returns ``{metric: {"mean": float, "num_images": int}}`` over every image; ``on_batch(batch,
    visuals, scores)`` sees each batch (on the CPU side: paths, etc.) with its visuals and the per-image
    values of each metric (``{name: [N]}``, on the CPU).
    """
    sums: Dict[str, float] = {}
    counts: Dict[str, int] = {}
    for dataset in datasets:
        n = num_inputs([dataset], limit)
        for batch in tqdm(
            DataLoader(dataset, batch_size=batch_size, sampler=range(n)), desc="translate", leave=False, disable=not progress
        ):
            visuals = model.translate(move_to(batch, device, False))
            scores = {key: values.detach().double().cpu() for key, values in metrics_of(visuals).items()}
            for key, values in scores.items():
                sums[key] = sums.get(key, 0.0) + float(values.sum())
                counts[key] = counts.get(key, 0) + values.numel()
            if on_batch is not None:
                on_batch(batch, visuals, scores)
    return {key: {"mean": sums[key] / counts[key], "num_images": counts[key]} for key in sums}
