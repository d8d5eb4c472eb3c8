"""Datasets by kind (``data.kind``), each with its typed config schema (``config_class``)."""

from __future__ import annotations

from typing import Any, Iterable, Optional

from torch.utils.data import Dataset

from translate.data.aligned import AlignedDataset
from translate.data.folders import DatasetNotFoundError
from translate.data.mnist import MNISTDataset
from translate.data.single import SingleDataset
from translate.data.unaligned import UnalignedDataset

DATASETS = {
    "mnist": MNISTDataset,
    "aligned": AlignedDataset,
    "unaligned": UnalignedDataset,
    "single": SingleDataset,
}


def build_dataset(cfg: Any, split: str, train: bool) -> Dataset:
    """The ``split`` of the dataset ``cfg`` describes; ``train`` turns on random augmentation."""
    return DATASETS[str(cfg.kind)](cfg, split=split, train=train)


def find_dataset_split(cfg: Any, candidates: Iterable[str]) -> Optional[str]:
    """The first of ``candidates`` that this dataset has, or None."""
    for split in candidates:
        try:
            build_dataset(cfg, split, train=False)
        except DatasetNotFoundError:
            continue
        return split
    return None
