"""Datasets by kind (``data.kind``; their schemas are ``translate.data.configs.DATA_SCHEMAS``), and building one split."""

from __future__ import annotations

from typing import Any, Iterable, Optional, Tuple

from translate.data.aligned import AlignedDataset
from translate.data.base import SplitDataset
from translate.data.mnist import MNISTDataset
from translate.data.single import SingleDataset
from translate.data.unaligned import UnalignedDataset
from translate.errors import DatasetNotFoundError

DATASETS = {
    "mnist": MNISTDataset,
    "aligned": AlignedDataset,
    "unaligned": UnalignedDataset,
    "single": SingleDataset,
}


def build_dataset(cfg: Any, split: str, train: bool) -> SplitDataset:
    """The ``split`` of the dataset ``cfg`` describes; ``train`` turns on random augmentation."""
    return DATASETS[str(cfg.kind)](cfg, split=split, train=train)


def first_split(cfg: Any, candidates: Iterable[str]) -> Optional[Tuple[str, SplitDataset]]:
    """The first of ``candidates`` that this dataset has, with that split built for evaluation
    (``train=False``), so that a caller who needs it does not build it again; None if it has none."""
    for split in candidates:
        try:
            return split, build_dataset(cfg, split, train=False)
        except DatasetNotFoundError:
            continue
    return None
