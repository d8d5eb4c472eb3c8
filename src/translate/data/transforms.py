"""The reference preprocessing of the image-folder datasets, split so that pairs stay aligned.

:meth:`ImageTransform.sample` draws the random choices (crop window, flip) for one image size from a
given generator; :meth:`ImageTransform.__call__` applies choices already drawn. A and B of an aligned
pair go through the same choices, so their pixels still correspond; unaligned images draw their own.

Preprocess modes (``data.preprocess``), as in the reference implementation:

- ``resize_and_crop``: resize to ``load_size`` x ``load_size`` (bicubic), crop ``crop_size``.
- ``crop``: crop ``crop_size`` from the image as it is.
- ``scale_width``: width to ``load_size`` keeping the aspect ratio, the height never below ``crop_size``.
- ``scale_width_and_crop``: ``scale_width``, then crop ``crop_size``.
- ``none``: round both sides to the nearest multiple of 4 (what the generators' downsampling needs).

Training draws a uniformly random crop window and flips horizontally with probability 1/2 (when
``flip``); test time takes the centre window and never flips.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from typing import Optional, Tuple, Union

import torch
import torchvision.transforms.v2.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

from translate.data.configs import CROPPING, ImageDataConfig, Preprocess
from translate.errors import ImageTooSmallError

Size = Tuple[int, int]
# Sides a multiple of this survive the ResNet generator's two stride-2 downsamplings unchanged.
_SIDE_MULTIPLE = 4


@dataclass(frozen=True)
class CropFlip:
    """The random choices for one image (or one aligned pair).

    ``top``/``left`` place the crop window in the resized image (ignored when the mode does not
    crop); ``flip`` mirrors the result horizontally.
    """

    top: int
    left: int
    flip: bool


class ImageTransform:
    """PIL image -> float32 tensor ``[C, H, W]`` in [-1, 1], C being the image's channel count (1 or 3).

    Args:
        preprocess: one of ``resize_and_crop``, ``crop``, ``scale_width``, ``scale_width_and_crop``, ``none``.
        load_size: side (``resize_and_crop``) or width (``scale_width*``) to resize to before cropping.
        crop_size: side of the square crop; the floor on the height for ``scale_width*``.
        flip: allow random horizontal flips when training.
        train: random crop window and flip when True; centre window, no flip when False.
    """

    def __init__(
        self,
        preprocess: Union[str, Preprocess] = Preprocess.resize_and_crop,
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train: bool = True,
    ) -> None:
        # The sizes were checked with the rest of the config (ImageDataConfig.check).
        self.preprocess = Preprocess(str(preprocess))
        self.load_size = load_size
        self.crop_size = crop_size
        self.flip = flip
        self.train = train

    @classmethod
    def from_config(cls, cfg: ImageDataConfig, train: bool) -> ImageTransform:
        """Build from a validated ``ImageDataConfig``."""
        return cls(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip, train)

    @property
    def crops(self) -> bool:
        return self.preprocess in CROPPING

    @property
    def output_size(self) -> Optional[int]:
        """Side of every output image when the mode fixes it (the crop), else None."""
        return self.crop_size if self.crops else None

    def resized_size(self, size: Size) -> Size:
        """``(width, height)`` of an image of ``size`` after the resizing step, before any crop."""
        w, h = size
        if self.preprocess == Preprocess.resize_and_crop:
            return self.load_size, self.load_size
        if self.preprocess in (Preprocess.scale_width, Preprocess.scale_width_and_crop):
            if w == self.load_size and h >= self.crop_size:
                return w, h
            return self.load_size, int(max(self.load_size * h / w, self.crop_size))
        if self.preprocess == Preprocess.none:
            return max(_SIDE_MULTIPLE, round(w / _SIDE_MULTIPLE) * _SIDE_MULTIPLE), max(
                _SIDE_MULTIPLE, round(h / _SIDE_MULTIPLE) * _SIDE_MULTIPLE
            )
        return w, h

    def sample(self, size: Size, gen: torch.Generator, path: Union[str, PathLike, None] = None) -> CropFlip:
        """Draw the crop window and flip for an image of ``size`` = ``(width, height)`` from ``gen``.

        Raises:
            ImageTooSmallError: the resized image is smaller than the crop; ``path`` is named.
        """
        w, h = self.resized_size(size)
        top = left = 0
        if self.crops:
            if w < self.crop_size or h < self.crop_size:
                # Only data.preprocess=crop gets here (the resizing modes keep load_size >= crop_size): the sizes are the file's.
                raise ImageTooSmallError(
                    f"{path or 'image'}: the image is {w}x{h}, smaller than data.crop_size={self.crop_size}; "
                    f"use data.crop_size<={min(w, h)} or resize first (data.preprocess=resize_and_crop)"
                )
            if self.train:
                left = int(torch.randint(w - self.crop_size + 1, (), generator=gen))
                top = int(torch.randint(h - self.crop_size + 1, (), generator=gen))
            else:
                left, top = (w - self.crop_size) // 2, (h - self.crop_size) // 2
        flip = self.train and self.flip and bool(torch.rand((), generator=gen) < 0.5)
        return CropFlip(top=top, left=left, flip=flip)

    def __call__(self, img: Image.Image, params: CropFlip) -> torch.Tensor:
        """Resize, crop and flip ``img`` as ``params`` say; return float32 ``[C, H, W]`` in [-1, 1]."""
        w, h = self.resized_size(img.size)
        if (w, h) != img.size:
            img = F.resize(img, [h, w], interpolation=InterpolationMode.BICUBIC)
        if self.crops:
            img = F.crop(img, params.top, params.left, self.crop_size, self.crop_size)
        x = F.to_dtype(F.pil_to_tensor(img), torch.float32, scale=True)
        if params.flip:
            x = F.horizontal_flip(x)
        return F.normalize(x, mean=[0.5] * x.shape[0], std=[0.5] * x.shape[0])
