"""Finding and reading image files, and the base class of the folder datasets.

Errors raised here are one line and name the folder or file involved: a PIL trace from inside a
DataLoader worker does not say which of thousands of files was bad.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence, TypeVar, Union

import numpy as np
import torch
from PIL import Image

from translate.data.base import SplitDataset
from translate.data.configs import LAYOUTS, Direction, ImageDataConfig
from translate.data.transforms import ImageTransform
from translate.errors import BadImageError, DatasetLayoutError, DatasetNotFoundError, ImageTooSmallError

log = logging.getLogger(__name__)
# A run builds a split's dataset more than once (training, the image grid, validation): each message
# about skipped files is logged the first time only.
_reported: set[str] = set()

IMG_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp"})

PathLike = Union[str, "os.PathLike[str]"]
T = TypeVar("T")

# Pillow's modes for integer images wider than 8 bits. Their samples are read as 16-bit
# (0..65535) intensities; Pillow's own conversion to "L" would clip them at 255 instead.
_WIDE_INT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


#: The errors that make one file unusable; ``data.skip_bad`` drops files that raise them.
UNUSABLE_IMAGE_ERRORS = (BadImageError, ImageTooSmallError, DatasetLayoutError)


def is_image_file(name: PathLike) -> bool:
    """Whether ``name`` has one of :data:`IMG_EXTENSIONS`, in any case."""
    return Path(name).suffix.lower() in IMG_EXTENSIONS


def _hidden(name: str) -> bool:
    # Archives made on macOS carry "__MACOSX/" and "._name.jpg" resource forks that are not images.
    return name.startswith(".") or name == "__MACOSX"


def find_images(folder: PathLike, expected: str = "a folder of images") -> list[Path]:
    """Every image under ``folder``, recursively, sorted; hidden files and folders are skipped.

    Raises:
        DatasetNotFoundError: ``folder`` does not exist or holds no image; ``expected`` describes the
            layout the caller wanted and is quoted in the message.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder}: no such folder; expected {expected}")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not _hidden(d)]
        found.extend(Path(dirpath, f) for f in filenames if not _hidden(f) and is_image_file(f))
    if not found:
        extensions = ", ".join(sorted(e.lstrip(".") for e in IMG_EXTENSIONS))
        raise DatasetNotFoundError(f"{folder}: no images found (looked for {extensions}, any case); expected {expected}")
    return sorted(found)


def limit(items: Sequence[T], max_size: int | None) -> list[T]:
    """The first ``max_size`` items (all when ``max_size`` is None), as ``max_dataset_size`` asks."""
    return list(items) if max_size is None else list(items[:max_size])


def _channels(channels: int) -> int:
    if channels not in (1, 3):
        raise ValueError(f"channels={channels}: images are read with 1 (grayscale) or 3 (RGB) channels")
    return channels


def convert_channels(img: Image.Image, channels: int) -> Image.Image:
    """``img`` in mode "L" (1 channel) or "RGB" (3); alpha is dropped, as in the reference."""
    if img.mode in _WIDE_INT_MODES:
        wide = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
        img = Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), mode="L")
    return img.convert("L" if _channels(channels) == 1 else "RGB")


def load_image(path: PathLike, channels: int) -> Image.Image:
    """Decode ``path`` fully into an 8-bit PIL image with ``channels`` channels (mode "L" or "RGB").

    Grayscale, RGB, RGBA, LA, palette, CMYK, 1-bit and 16-bit ("I;16", "I") images are accepted
    whatever ``channels`` is: gray is repeated into RGB, colour is reduced to luma (ITU-R 601-2),
    alpha is dropped, 16-bit samples are scaled from 0..65535 to 0..255 (16-bit RGB is read at 8 bits
    by Pillow). Floating-point images (mode "F") are refused: they have no agreed range.

    Raises:
        BadImageError: the file is empty, truncated, floating-point, or not an image Pillow can decode.
    """
    _channels(channels)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode != "F":
                return convert_channels(img, channels)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise BadImageError(f"{path}: cannot read image ({reason}); replace or remove the file") from None
    raise BadImageError(f"{path}: a floating-point image (mode F) has no agreed range of values; save it as 8- or 16-bit")


def keep_usable(items: Sequence[T], check: Callable[[T], object], where: str) -> list[T]:
    """The ``items`` for which ``check(item)`` raises none of :data:`UNUSABLE_IMAGE_ERRORS`, in order.

    For ``data.skip_bad``: ``check`` decodes an item's file(s) in full, so the items are checked by a
    pool of threads (Pillow decodes without holding the GIL). Each dropped item is logged (once per
    process) with the error's message, which names its file, then the total.

    Raises:
        BadImageError: no item is usable; ``where`` (the folder) is named.
    """

    def problem(item: T) -> Optional[str]:
        try:
            check(item)
        except UNUSABLE_IMAGE_ERRORS as err:
            return str(err)
        return None

    with ThreadPoolExecutor() as pool:
        problems = list(pool.map(problem, items))
    kept = [item for item, reason in zip(items, problems) if reason is None]
    messages = [f"data.skip_bad: skipping {reason}" for reason in problems if reason is not None]
    if messages:
        messages.append(f"data.skip_bad: skipped {len(items) - len(kept)} of {len(items)} images in {where}")
    for message in messages:
        if message not in _reported:
            _reported.add(message)
            log.warning(message)
    if not kept:
        raise BadImageError(
            f"{where}: none of its {len(items)} images can be used (data.skip_bad=true skipped them all; "
            "the warnings above say why); replace them or point data.root at another dataset"
        )
    return kept


class FolderDataset(SplitDataset):
    """Shared part of the image-folder datasets: preprocessing, ``info``, the root folder.

    Args:
        cfg: a validated :class:`ImageDataConfig` (its ``kind`` names the layout it looks for).
        split: the split to read, e.g. "train" or "test"; each subclass says where it looks.
        train: random crop and flip when True; centre crop and no flip when False.
    """

    #: The ``data.kind`` whose layout (translate.data.configs.LAYOUTS) this dataset reads.
    kind = ""

    def __init__(self, cfg: ImageDataConfig, split: str, train: bool) -> None:
        self.split = split
        self.train = train
        self.input_nc = cfg.input_nc
        self.output_nc = cfg.output_nc
        self.btoa = cfg.direction == Direction.BtoA
        self.max_dataset_size = cfg.max_dataset_size
        self.serial_batches = cfg.serial_batches
        self.skip_bad = cfg.skip_bad
        self.transform = ImageTransform.from_config(cfg, train)
        self.root = Path(cfg.root).expanduser()
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"data.root={self.root}: no such folder; expected {self.expected}")

    @property
    def expected(self) -> str:
        """The layout this dataset looks for, as quoted in its error messages."""
        return LAYOUTS[self.kind].format(split=self.split)

    @property
    def info(self) -> dict[str, int | None]:
        """Channel counts of A (network input) and B (target), and the fixed side length if any."""
        return {
            "input_nc": self.input_nc,
            "output_nc": self.output_nc,
            "image_size": self.transform.output_size,
        }

    def _load(self, path: Path, channels: int, gen: torch.Generator) -> torch.Tensor:
        """``path`` read with ``channels`` channels and preprocessed with its own crop and flip."""
        img = load_image(path, channels)
        return self.transform(img, self.transform.sample(img.size, gen, path))

    def _check_size(self, img: Image.Image, path: Path) -> None:
        """Raise ImageTooSmallError if ``img`` (read from ``path``) is smaller than the crop."""
        # Drawing a window from a throwaway generator runs exactly the check a real read runs.
        self.transform.sample(img.size, torch.Generator(), path)

    def _check_image(self, path: Path, channels: int) -> None:
        """Raise what reading ``path`` as an item would: BadImageError or ImageTooSmallError."""
        self._check_size(load_image(path, channels), path)

    def _usable(self, items: list[T], check: Callable[[T], object], where: PathLike) -> list[T]:
        """``items``, less those ``check`` finds unusable when ``data.skip_bad`` (see :func:`keep_usable`)."""
        return keep_usable(items, check, str(where)) if self.skip_bad else items
