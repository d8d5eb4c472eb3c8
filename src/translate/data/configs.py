"""Typed schemas of the ``data`` config group, one per dataset kind; no torch."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from translate.config import Choice


class Preprocess(Choice):
    resize_and_crop = "resize_and_crop"
    crop = "crop"
    scale_width = "scale_width"
    scale_width_and_crop = "scale_width_and_crop"
    none = "none"


class Direction(Choice):
    AtoB = "AtoB"
    BtoA = "BtoA"


def machine_workers(most: int) -> int:
    """DataLoader worker processes: ``most``, or as many as this process may use CPU cores when that is
    fewer (PyTorch warns about more workers than cores, and they would only compete for them)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(most, cores)


@dataclass
class MNISTDataConfig:
    """torchvision's MNIST under ``root`` (downloaded there when online and ``download`` is true);
    ``bundled: true`` reads the small real subset shipped in the package instead."""

    name: str = "mnist"
    kind: str = "mnist"
    root: str = "./data"
    download: bool = True
    bundled: bool = False
    image_size: int = 32
    max_dataset_size: Optional[int] = None
    num_workers: int = field(default_factory=lambda: machine_workers(2))


@dataclass
class ImageDataConfig:
    """Folders of images: ``aligned`` pairs, ``unaligned`` A/B collections, or a ``single`` folder.

    After ``direction`` is applied, A is always the network input (``input_nc`` channels) and B the
    target (``output_nc`` channels), as in the reference implementation.
    """

    name: str = "aligned"
    kind: str = "aligned"
    root: str = "???"
    download: bool = False
    load_size: int = 286
    crop_size: int = 256
    # resize_and_crop | crop | scale_width | scale_width_and_crop | none (see translate.data.transforms)
    preprocess: Preprocess = Preprocess.resize_and_crop
    flip: bool = True
    direction: Direction = Direction.AtoB
    input_nc: int = 3
    output_nc: int = 3
    max_dataset_size: Optional[int] = None
    serial_batches: bool = False
    # true: decode every image once before training and leave out (logging each by name) those that are
    # corrupt, truncated, empty or smaller than the crop; false: the first bad read stops training.
    skip_bad: bool = False
    num_workers: int = field(default_factory=lambda: machine_workers(4))


#: The schema of each ``data.kind``.
DATA_SCHEMAS = {"mnist": MNISTDataConfig, "aligned": ImageDataConfig, "unaligned": ImageDataConfig, "single": ImageDataConfig}
