"""Image files at their own size and precision: read upright (EXIF orientation applied), grayscale kept
grayscale, 16-bit kept 16-bit; written back under the same name and format with the metadata a photographer
expects to keep (EXIF, less its orientation, and the colour profile where the channels stay the same).

Pillow reads and writes everything except 16-bit colour, which it reads at 8 bits: those files (PNG, TIFF)
are decoded and encoded with PyAV (FFmpeg) instead, from the ``video`` extra. Without it, such a file is
read at 8 bits, with a warning.

What a file holds that its translation cannot (alpha, a palette, CMYK, the frames after the first, 16 bits
in a format of 8) is converted, and the conversion is said: :attr:`Picture.notes` for reading, the list
:func:`write_picture` returns for writing; the callers log them as one line per file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import struct
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Union

import numpy as np
from PIL import Image, ImageFile, ImageOps

from translate.config import PILLOW_MAX_IMAGE_PIXELS
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
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Pillow's decompression-bomb guard is a process-wide setting: lifted under this lock while one file is read.
_PILLOW_GUARD = threading.Lock()


@dataclass
class Picture:
    """An image read from a file: ``pixels`` ``[H, W, C]`` (C 1 or 3, alpha dropped) of uint8 or uint16, upright;
    and what writing its translation keeps: the ``format``, the ``exif`` (orientation reset) and ``icc`` profile;
    ``notes``: what reading converted (``alpha dropped``, ``CMYK converted to RGB``, ...), for the log."""

    pixels: np.ndarray
    format: Optional[str] = None
    exif: Optional[bytes] = None
    icc: Optional[bytes] = None
    notes: List[str] = field(default_factory=list)

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


@contextlib.contextmanager
def _pixel_limit(path: PathLike, max_pixels: Optional[int]) -> Iterator[None]:
    """Pillow's guard against decompression bombs replaced by ``max_pixels`` (None: no limit) while ``path``
    is read: Pillow's is lifted when it would refuse what ``max_pixels`` allows, and what it refuses anyway is
    said naming the setting."""
    guard = Image.MAX_IMAGE_PIXELS
    lift = guard is not None and (max_pixels is None or max_pixels > 2 * guard)  # Pillow refuses above twice its setting
    with _PILLOW_GUARD if lift else contextlib.nullcontext():
        if lift:
            Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        except Image.DecompressionBombError as err:
            raise BadImageError(f"{path}: {err}".split(", could be")[0] + f"; {_LIMIT_HINT}") from None
        finally:
            if lift:
                Image.MAX_IMAGE_PIXELS = guard


_LIMIT_HINT = "for a large file you trust, raise max_image_pixels (null: no limit)"


def read_picture(path: PathLike, max_pixels: Optional[int] = PILLOW_MAX_IMAGE_PIXELS) -> Picture:
    """Decode ``path`` at its full precision, upright. Raises BadImageError (one line naming the file) when
    it cannot be read, or holds more than ``max_pixels`` pixels (None or 0: no limit)."""
    notes: List[str] = []
    try:
        with _pixel_limit(path, max_pixels or None), Image.open(path) as img:
            width, height = img.size
            if not width or not height:
                raise BadImageError(f"{path}: an image of {width} x {height} pixels holds none; replace or remove the file")
            if max_pixels and width * height > max_pixels:
                raise BadImageError(
                    f"{path}: {width} x {height} is {width * height:,} pixels, more than max_image_pixels={max_pixels} "
                    f"(a guard against decompression bombs); {_LIMIT_HINT}"
                )
            wide = _is_wide_colour(img)  # before getexif(), which decodes a PNG and forgets the raw mode this reads
            exif = img.getexif()
            orientation = exif.get(_ORIENTATION_TAG, 1)
            icc = img.info.get("icc_profile")
            fmt = img.format
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                notes.append(f"first of its {frames} frames only")
            if wide and has_av():
                pixels = _ORIENT.get(orientation, lambda a: a)(_read_wide_colour(path))
                if img.mode in _ALPHA_MODES:
                    notes.append("alpha dropped")
            else:
                if wide:
                    notes.append('16-bit colour read at 8 bits (pip install "translate[video]" for PyAV, which reads all 16)')
                img.load()
                pixels = _pixels(ImageOps.exif_transpose(img), notes)
                if img.mode == "CMYK" and icc:
                    notes.append("its CMYK colour profile dropped")
                    icc = None
    except BadImageError:
        raise
    except (OSError, SyntaxError, ValueError, StopIteration, EOFError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise BadImageError(f"{path}: cannot read image ({reason}); replace or remove the file") from None
    if orientation != 1:
        exif[_ORIENTATION_TAG] = 1
    return Picture(np.ascontiguousarray(pixels), fmt, exif.tobytes() if exif else None, icc, notes)


def _pixels(img: Image.Image, notes: List[str]) -> np.ndarray:
    """``img`` as ``[H, W, C]``: 16-bit gray as uint16, other gray as uint8 with C=1, everything else RGB;
    what is converted on the way is added to ``notes``."""
    if img.mode == "F":
        raise BadImageError(
            f"{getattr(img, 'filename', '') or 'image'}: a floating-point image (mode F) has no agreed range; save it as 8- or 16-bit"
        )
    if img.mode in _WIDE_GRAY:
        return np.clip(np.asarray(img, dtype=np.int64), 0, 65535).astype(np.uint16)[:, :, None]
    if img.mode in ("P", "PA"):
        notes.append("palette expanded to RGB")
        # through RGBA where the palette has transparency: Pillow warns when that goes straight to RGB
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    if img.mode in _ALPHA_MODES:
        notes.append("alpha dropped")
    if img.mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif img.mode == "1":
        notes.append("1-bit read as 8-bit gray")
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
    if 0 in pixels.shape[:2]:
        raise InputError(f"{where}: an array of shape {tuple(pixels.shape)} holds no pixels; give at least 1 x 1")
    return pixels[:, :, :3] if pixels.shape[2] == 4 else pixels


def write_picture(path: PathLike, pixels: np.ndarray, like: Optional[Picture] = None) -> List[str]:
    """Write ``[H, W, C]`` pixels (uint8 or uint16) to ``path`` atomically, in the format its suffix names,
    with ``like``'s EXIF and (when the channels are the same) colour profile. Returns what could not be kept
    (16 bits in a format of 8, a colour profile of other channels, ...), for the log."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: no image format has the suffix {path.suffix!r}; use .png, .jpg, .tif, ...")
    notes: List[str] = []
    if pixels.dtype == np.uint16 and (fmt not in ("PNG", "TIFF") or (pixels.shape[2] == 3 and not has_av())):
        why = f"{fmt} holds 8" if fmt not in ("PNG", "TIFF") else 'pip install "translate[video]" for PyAV, which writes 16-bit colour'
        notes.append(f"written at 8 bits ({why})")
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    exif = like.exif if like is not None and fmt in ("JPEG", "PNG", "TIFF", "WEBP") else None
    icc = like.icc if like is not None else None
    if like is not None and icc and like.pixels.shape[2] != pixels.shape[2]:
        notes.append(f"colour profile left out (it is for {like.pixels.shape[2]} channel(s), the output has {pixels.shape[2]})")
        icc = None
    if pixels.dtype == np.uint16 and pixels.shape[2] == 3:
        if fmt == "TIFF" and (exif or icc):
            notes.append("TIFF tags and colour profile left out (PyAV writes 16-bit colour TIFF without them)")
        atomic_write(path, lambda tmp: _write_wide_colour(tmp, pixels, fmt, exif, icc))
        return notes
    if pixels.dtype == np.uint16:
        img = Image.fromarray(pixels[:, :, 0].astype("<u2"), mode="I;16")
    else:
        img = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    options: dict = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if exif:
        options["exif"] = exif
    if icc:
        options["icc_profile"] = icc
    atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **options))
    return notes


def _write_wide_colour(tmp: str, pixels: np.ndarray, fmt: str, exif: Optional[bytes], icc: Optional[bytes]) -> None:
    """16-bit colour through PyAV; a PNG gets ``exif`` and ``icc`` as chunks after its header."""
    import av

    h, w = pixels.shape[:2]
    encoded = f"{tmp}.av" if fmt == "PNG" and (exif or icc) else tmp
    with av.open(encoded, mode="w", format="image2") as container:
        stream = container.add_stream("png" if fmt == "PNG" else "tiff")
        stream.width, stream.height = w, h
        stream.pix_fmt = "rgb48be" if fmt == "PNG" else "rgb48le"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb48le")
        for packet in (*stream.encode(frame), *stream.encode()):
            container.mux(packet)
    if encoded == tmp:
        return
    chunks = b""
    if icc:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc))
    if exif:
        chunks += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)
    try:
        with open(encoded, "rb") as src, open(tmp, "wb") as dst:
            dst.write(src.read(8 + 25))  # the signature and the IHDR chunk, which must come first
            dst.write(chunks)
            shutil.copyfileobj(src, dst)
    finally:
        os.unlink(encoded)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def to_pixels(image: "np.ndarray", max_value: int) -> np.ndarray:
    """A float ``[C, H, W]`` array in [-1, 1] as ``[H, W, C]`` pixels of uint8 (``max_value`` 255) or uint16,
    rounded half to even (as torch.round, which an export with baked preprocessing uses)."""
    dtype = np.uint16 if max_value == 65535 else np.uint8
    scaled = np.clip(np.rint((np.asarray(image, dtype=np.float32) + np.float32(1.0)) * np.float32(max_value / 2.0)), 0, max_value)
    return scaled.astype(dtype).transpose(1, 2, 0)
