"""Image files at their own size and precision: read upright (EXIF orientation applied), grayscale kept
grayscale, 16-bit kept 16-bit; written back under the same name and format with the metadata a photographer
expects to keep (EXIF, less its orientation, and the colour profile where the channels stay the same).

Pillow reads and writes everything except 16-bit colour, which it reads at 8 bits: those files (PNG, TIFF)
are decoded and encoded with PyAV (FFmpeg) instead, from the ``video`` extra. Without it, such a file is
read at 8 bits, with a warning.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageFile, ImageOps

from translate.errors import BadImageError, InputError
from translate.files import atomic_write

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"})
_WIDE_GRAY = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
# EXIF orientation -> the numpy steps that make the image upright (ImageOps.exif_transpose's table).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.swapaxes(a, 0, 1)[::-1],
}
_ORIENTATION_TAG = 0x0112


@dataclass
class Picture:
    """An image read from a file: ``pixels`` ``[H, W, C]`` (C 1 or 3, alpha dropped) of uint8 or uint16, upright;
    and what writing its translation keeps: the ``format``, the ``exif`` (orientation reset) and ``icc`` profile."""

    pixels: np.ndarray
    format: Optional[str] = None
    exif: Optional[bytes] = None
    icc: Optional[bytes] = None

    @property
    def max_value(self) -> int:
        return 65535 if self.pixels.dtype == np.uint16 else 255


def has_av() -> bool:
    """Whether PyAV (the ``video`` extra) is installed."""
    return importlib.util.find_spec("av") is not None


def _is_wide_colour(img: Image.Image) -> bool:
    """A colour file with 16 bits a sample, which Pillow would read at 8 (its raw mode says so)."""
    if img.mode not in ("RGB", "RGBA") or not isinstance(img, ImageFile.ImageFile) or not img.tile:
        return False
    raw = img.tile[0].args
    raw = raw[0] if isinstance(raw, tuple) else raw
    return isinstance(raw, str) and ";16" in raw


def _read_wide_colour(path: PathLike) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb48le")


def read_picture(path: PathLike) -> Picture:
    """Decode ``path`` at its full precision, upright. Raises BadImageError (one line naming the file) when
    it cannot be read."""
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            orientation = exif.get(_ORIENTATION_TAG, 1)
            icc = img.info.get("icc_profile")
            fmt = img.format
            if _is_wide_colour(img) and has_av():
                pixels = _ORIENT.get(orientation, lambda a: a)(_read_wide_colour(path))
            else:
                if _is_wide_colour(img):
                    log.warning('%s: 16-bit colour read at 8 bits; pip install "translate[video]" (PyAV) keeps all 16', path)
                img.load()
                pixels = _pixels(ImageOps.exif_transpose(img))
    except BadImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, StopIteration) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise BadImageError(f"{path}: cannot read image ({reason}); replace or remove the file") from None
    if orientation != 1:
        exif[_ORIENTATION_TAG] = 1
    return Picture(np.ascontiguousarray(pixels), fmt, exif.tobytes() if exif else None, icc)


def _pixels(img: Image.Image) -> np.ndarray:
    """``img`` as ``[H, W, C]``: 16-bit gray as uint16, other gray as uint8 with C=1, everything else RGB."""
    if img.mode == "F":
        raise BadImageError(
            f"{getattr(img, 'filename', '') or 'image'}: a floating-point image (mode F) has no agreed range; save it as 8- or 16-bit"
        )
    if img.mode in _WIDE_GRAY:
        return np.clip(np.asarray(img, dtype=np.int64), 0, 65535).astype(np.uint16)[:, :, None]
    if img.mode in _GRAY_MODES:
        return np.asarray(img.convert("L"))[:, :, None]
    return np.asarray(img.convert("RGB"))


def as_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """``[H, W, C]`` pixels with ``channels`` channels, as translate's datasets convert them: gray repeated into
    RGB, RGB reduced to luma (ITU-R 601-2, Pillow's weights; rounded as Pillow does for 8 bits)."""
    have = pixels.shape[2]
    if have == channels:
        return pixels
    if channels == 3:
        return np.repeat(pixels, 3, axis=2)
    if pixels.dtype == np.uint8:
        return np.asarray(Image.fromarray(pixels).convert("L"))[:, :, None]
    luma = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.round(luma), 0, 65535).astype(pixels.dtype)[:, :, None]


def check_pixels(pixels: np.ndarray, where: str) -> np.ndarray:
    """An array a user gave, as ``[H, W, C]`` with C 1 or 3 (an ``[H, W]`` array is gray, RGBA loses its
    alpha); anything else raises InputError naming ``where``."""
    if pixels.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{where}: a {pixels.dtype} array; give uint8 (0..255) or uint16 (0..65535) pixels, or a [-1, 1] tensor")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise InputError(f"{where}: an array of shape {tuple(pixels.shape)}; give [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] pixels")
    return pixels[:, :, :3] if pixels.shape[2] == 4 else pixels


def write_picture(path: PathLike, pixels: np.ndarray, like: Optional[Picture] = None) -> None:
    """Write ``[H, W, C]`` pixels (uint8 or uint16) to ``path`` atomically, in the format its suffix names,
    with ``like``'s EXIF and (when the channels are the same) colour profile."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: no image format has the suffix {path.suffix!r}; use .png, .jpg, .tif, ...")
    if pixels.dtype == np.uint16 and pixels.shape[2] == 3:
        if fmt in ("PNG", "TIFF") and has_av():
            atomic_write(path, lambda tmp: _write_wide_colour(tmp, pixels, fmt))
            return
        log.warning(
            "%s: written at 8 bits (%s)",
            path,
            "16-bit colour needs PyAV: pip install translate[video]" if fmt in ("PNG", "TIFF") else f"{fmt} holds 8",
        )
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if pixels.dtype == np.uint16 and fmt not in ("PNG", "TIFF"):
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if pixels.dtype == np.uint16:
        img = Image.fromarray(pixels[:, :, 0].astype("<u2"), mode="I;16")
    else:
        img = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    options: dict = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if like is not None and like.exif and fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        options["exif"] = like.exif
    if like is not None and like.icc and like.pixels.shape[2] == pixels.shape[2]:
        options["icc_profile"] = like.icc
    atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **options))


def _write_wide_colour(tmp: str, pixels: np.ndarray, fmt: str) -> None:
    import av

    h, w = pixels.shape[:2]
    with av.open(tmp, mode="w", format="image2") as container:
        stream = container.add_stream("png" if fmt == "PNG" else "tiff")
        stream.width, stream.height = w, h
        stream.pix_fmt = "rgb48be" if fmt == "PNG" else "rgb48le"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb48le")
        for packet in (*stream.encode(frame), *stream.encode()):
            container.mux(packet)


def to_pixels(image: "np.ndarray", max_value: int) -> np.ndarray:
    """A float ``[C, H, W]`` array in [-1, 1] as ``[H, W, C]`` pixels of uint8 (``max_value`` 255) or uint16,
    rounded half to even (as torch.round, which an export with baked preprocessing uses)."""
    dtype = np.uint16 if max_value == 65535 else np.uint8
    scaled = np.clip(np.rint((np.asarray(image, dtype=np.float32) + np.float32(1.0)) * np.float32(max_value / 2.0)), 0, max_value)
    return scaled.astype(dtype).transpose(1, 2, 0)
