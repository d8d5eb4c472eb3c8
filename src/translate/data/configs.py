"""Typed schemas of the ``data`` config group, one per dataset kind; no torch."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Dict, Optional, Type

from translate.config import Choice, at_least, require
from translate.errors import ConfigError


class Preprocess(Choice):
    resize_and_crop = "resize_and_crop"
    crop = "crop"
    scale_width = "scale_width"
    scale_width_and_crop = "scale_width_and_crop"
    none = "none"


#: The preprocessings that end with a ``crop_size`` crop (every image comes out that size), and those of
#: them that resize to ``load_size`` before cropping.
CROPPING = frozenset({Preprocess.resize_and_crop, Preprocess.crop, Preprocess.scale_width_and_crop})
RESIZING_BEFORE_CROP = frozenset({Preprocess.resize_and_crop, Preprocess.scale_width_and_crop})


class Direction(Choice):
    AtoB = "AtoB"
    BtoA = "BtoA"


def machine_workers(most: int) -> int:
    """DataLoader worker processes: ``most``, or as many as this process may use CPU cores when that is
    fewer (PyTorch warns about more workers than cores, and they would only compete for them)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(most, cores)


@dataclass
class DataConfig:
    """Keys every dataset has; ``kind`` picks the dataset class and its schema (:data:`DATA_SCHEMAS`)."""

    name: str = "???"
    kind: str = "???"
    root: str = "???"
    download: bool = False
    max_dataset_size: Optional[int] = None
    num_workers: int = 0

    def check(self, where: str = "data") -> None:
        at_least(self.max_dataset_size, 1, f"{where}.max_dataset_size", optional=True)
        at_least(self.num_workers, 0, f"{where}.num_workers", "0 reads in the training process")


@dataclass
class MNISTDataConfig(DataConfig):
    """torchvision's MNIST under ``root`` (downloaded there when online and ``download`` is true);
    ``bundled: true`` reads the small real subset shipped in the package instead."""

    name: str = "mnist"
    kind: str = "mnist"
    root: str = "./data"
    download: bool = True
    bundled: bool = False
    image_size: int = 32
    num_workers: int = field(default_factory=lambda: machine_workers(2))

    def check(self, where: str = "data") -> None:
        super().check(where)
        size = self.image_size
        require(size >= 8 and size & (size - 1) == 0, f"{where}.image_size", size, "must be a power of two >= 8, e.g. 32 or 64")


@dataclass
class ImageDataConfig(DataConfig):
    """Folders of images: ``aligned`` pairs, ``unaligned`` A/B collections, or a ``single`` folder.

    After ``direction`` is applied, A is always the network input (``input_nc`` channels) and B the
    target (``output_nc`` channels), as in the reference implementation.
    """

    name: str = "aligned"
    kind: str = "aligned"
    load_size: int = 286
    crop_size: int = 256
    # resize_and_crop | crop | scale_width | scale_width_and_crop | none (see translate.data.transforms)
    preprocess: Preprocess = Preprocess.resize_and_crop
    flip: bool = True
    direction: Direction = Direction.AtoB
    input_nc: int = 3
    output_nc: int = 3
    serial_batches: bool = False
    # true: decode every image once before training and leave out (logging each by name) those that are
    # corrupt, truncated, empty or smaller than the crop; false: the first bad read stops training.
    skip_bad: bool = False
    num_workers: int = field(default_factory=lambda: machine_workers(4))

    @property
    def image_size(self) -> Optional[int]:
        """The side of every image the preprocessing makes, when it fixes one (the crop), else None."""
        return self.crop_size if self.preprocess in CROPPING else None

    def check(self, where: str = "data") -> None:
        super().check(where)
        if self.root in ("", "???"):
            raise root_not_set(self.kind, where)
        for key in ("input_nc", "output_nc"):
            value = getattr(self, key)
            require(value in (1, 3), f"{where}.{key}", value, "is not 1 (grayscale) or 3 (RGB), the channels image files hold")
        for key in ("load_size", "crop_size"):
            at_least(getattr(self, key), 1, f"{where}.{key}")
        if self.preprocess in RESIZING_BEFORE_CROP and self.crop_size > self.load_size:
            raise ConfigError(
                f"{where}.crop_size={self.crop_size} is larger than {where}.load_size={self.load_size}; "
                f"{where}.preprocess={self.preprocess} resizes to load_size before cropping, "
                f"so use {where}.crop_size<={self.load_size} or a larger {where}.load_size"
            )


#: Where each kind of image data looks for its images (``{split}``: train, val, test), as errors quote it.
LAYOUTS: Dict[str, str] = {
    "aligned": "either <root>/{split}/ with A|B side-by-side images, or <root>/A/{split}/ and <root>/B/{split}/ with pairs of the same name",
    "unaligned": "<root>/{split}A/ and <root>/{split}B/, one folder of images per domain",
    "single": "a folder of images at <root>/{split}/ or <root>/",
}


def root_not_set(kind: str, where: str = "data") -> ConfigError:
    """The error of image data whose ``root`` is not set: what to add, and the layout it must hold."""
    layout = LAYOUTS.get(kind, "images").format(split="<split>")
    return ConfigError(f"{where}.root is not set; add {where}.root=<folder> holding {layout}")


#: The schema of each ``data.kind``.
DATA_SCHEMAS: Dict[str, Type[DataConfig]] = {
    "mnist": MNISTDataConfig,
    "aligned": ImageDataConfig,
    "unaligned": ImageDataConfig,
    "single": ImageDataConfig,
}


def evaluation_data(data: DataConfig) -> DataConfig:
    """The data config that validation and translate-test read: as the reference tests, each image resized
    to ``crop_size`` (``load_size`` = ``crop_size``), so the whole image is translated, uncropped. One
    preprocessing for both, so a run's last val/PSNR is what ``translate-test split=val`` reports."""
    return replace(data, load_size=data.crop_size) if isinstance(data, ImageDataConfig) else data
