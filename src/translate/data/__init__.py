"""Datasets by kind (``data.kind``), each with its typed config schema (``config_class``)."""

from __future__ import annotations

from typing import Any, Iterable, Optional, Tuple

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


def prepare_data(cfg: Any) -> None:
    """Make sure a dataset the catalog knows is on disk before training: fetch it when
    ``data.download`` is true, else stop with the ``translate-data`` command that would."""
    # Imported here: the catalog itself uses translate.data.folders.
    from translate.catalog import DATASETS as CATALOG
    from translate.download import ensure_dataset

    if str(cfg.kind) in ("aligned", "unaligned") and cfg.name in CATALOG:
        cfg.root = str(ensure_dataset(cfg.name, cfg.root, cfg.download))


def build_dataset(cfg: Any, split: str, train: bool) -> Dataset:
    """The ``split`` of the dataset ``cfg`` describes; ``train`` turns on random augmentation."""
    return DATASETS[str(cfg.kind)](cfg, split=split, train=train)


def first_split(cfg: Any, candidates: Iterable[str]) -> Optional[Tuple[str, Dataset]]:
    """The first of ``candidates`` that this dataset has, with that split built for evaluation
    (``train=False``), so that a caller who needs it does not build it again; None if it has none."""
    for split in candidates:
        try:
            return split, build_dataset(cfg, split, train=False)
        except DatasetNotFoundError:
            continue
    return None
