"""What ``translate-apply`` does: translate images of any number, size and aspect ratio, or a video, with a
trained generator, writing each at its input's exact size.

    translate-apply run=<run | checkpoint | pretrained name> input=<file | folder | glob | video> output=<folder | video>
                    [tile=512 [overlap=<px>]] [batch_size=<n>] [direction=BtoA] [weights=raw] [device=cpu]

Images keep their names (and sub-folders of a folder input), format, orientation (written upright), EXIF,
colour profile, grayscale and 16 bits. They are read one ahead in a background thread and translated as they
come, whole images of one size batched together, tiles of a large image batched on the device; nothing holds
more than the images in flight. A video (or a folder of frames, into an ``output`` with a video suffix) is
translated frame by frame, in batches of frames, at its own frame rate and size, its audio copied.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from translate.config import ApplyConfig
from translate.data.folders import find_images, is_image_file
from translate.errors import BadImageError, ConfigError, DatasetNotFoundError
from translate.inference.images import Picture, as_channels, read_picture, to_pixels, write_picture
from translate.inference.tiles import tile_passes
from translate.inference.translator import Translator, load
from translate.inference.video import VideoReader, VideoWriter, is_video_file

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What a run of translate-apply did."""

    written: int
    skipped: int
    seconds: float
    output: Path
    unit: str = "images"

    @property
    def rate(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        skipped = f" ({self.skipped} unreadable left out)" if self.skipped else ""
        return f"wrote {self.written} {self.unit}{skipped} to {self.output} in {self.seconds:.1f} s ({self.rate:.2f} {self.unit}/s)"


def find_inputs(spec: str) -> Tuple[List[Path], Path]:
    """The image files ``spec`` names (a file, a folder searched recursively, or a glob) in order, and the
    folder their output paths are relative to."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path], path.parent
    if path.is_dir():
        return find_images(path, "a folder of images"), path
    if glob.has_magic(spec):
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if is_image_file(p) and Path(p).is_file())
        if not found:
            raise DatasetNotFoundError(f"input={spec}: the pattern matches no image file")
        return found, Path(os.path.commonpath([p.parent for p in found]))
    raise DatasetNotFoundError(f"input={spec}: no such file or folder, and not a pattern; give an image, a folder, a glob or a video")


def _same_folder(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _read(path: Path, channels: int, skip_bad: bool) -> Optional[Tuple[Path, Picture, np.ndarray]]:
    try:
        picture = read_picture(path)
    except BadImageError as err:
        if not skip_bad:
            raise
        log.warning("skip_bad: leaving out %s", err)
        return None
    return path, picture, as_channels(picture.pixels, channels)


def _prefetched(paths: List[Path], channels: int, skip_bad: bool) -> Iterator[Optional[Tuple[Path, Picture, np.ndarray]]]:
    """Each image decoded one ahead in a thread (Pillow decodes without holding the GIL)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead: Optional[Future] = None
        for i in range(len(paths)):
            current = ahead if ahead is not None else pool.submit(_read, paths[i], channels, skip_bad)
            ahead = pool.submit(_read, paths[i + 1], channels, skip_bad) if i + 1 < len(paths) else None
            yield current.result()


def apply_images(g: Translator, paths: List[Path], base: Path, output: Path, cfg: ApplyConfig) -> Report:
    """Translate every image of ``paths`` into ``output`` (same path relative to ``base``), streaming."""
    start = time.perf_counter()
    written = skipped = 0
    pending: List[Tuple[Path, Picture, np.ndarray]] = []

    def flush() -> None:
        nonlocal written
        if not pending:
            return
        h, w = pending[0][2].shape[:2]
        plan = g.plan(h, w, cfg.tile, cfg.overlap)
        tiles = None
        if plan.count > 1 and cfg.progress_bar:
            # A large image takes a while: its tile passes get a bar of their own.
            tiles = tqdm(total=tile_passes(g.net, plan), unit="tile", leave=False, desc=pending[0][0].name)
        max_value = pending[0][1].max_value
        try:
            if len(pending) == 1:  # band by band into pixels: a large image never exists as floats whole
                outs = [g.translate_to_pixels(pending[0][2], max_value, cfg.tile, cfg.overlap, tiles.update if tiles else None)]
            else:
                outs = [to_pixels(out.numpy(), max_value) for out in g.translate_pixels([p[2] for p in pending], max_value)]
        finally:
            if tiles is not None:
                tiles.close()
        for (path, picture, _), out in zip(pending, outs):
            write_picture(output / path.relative_to(base), out, like=picture)
            written += 1
            bar.update()
        pending.clear()

    with tqdm(total=len(paths), unit="img", disable=not cfg.progress_bar, desc="translate-apply") as bar:
        for item in _prefetched(paths, g.in_channels, cfg.skip_bad):
            if item is None:
                skipped += 1
                bar.update()
                continue
            whole = cfg.tile is None or max(item[2].shape[:2]) <= cfg.tile
            fits = pending and item[2].shape == pending[0][2].shape and item[1].max_value == pending[0][1].max_value
            if pending and not (whole and fits and len(pending) < g.batch_size):
                flush()
            pending.append(item)
            if not whole:
                flush()
        flush()
    return Report(written, skipped, time.perf_counter() - start, output)


def _video_target(source: Path, output: Path) -> Path:
    return output if is_video_file(output) else output / source.name


def apply_video(g: Translator, source: Path, output: Path, cfg: ApplyConfig) -> Report:
    """Translate the video ``source`` frame by frame into ``output`` (a folder: the same name in it)."""
    start = time.perf_counter()
    target = _video_target(source, output)
    if _same_folder(target.parent, source.parent) and target.name == source.name:
        raise ConfigError(f"output={output} would overwrite the input video {source}; write somewhere else")
    reader = VideoReader(source)
    writer = VideoWriter(target, reader.rate, reader.size, reader.audio)
    written = 0
    frames: List[np.ndarray] = []

    def flush() -> None:
        nonlocal written
        if frames:
            for out in g.translate_pixels([as_channels(f, g.in_channels) for f in frames], 255, cfg.tile, cfg.overlap):
                writer.write(as_channels(to_pixels(out.numpy(), 255), 3))
                written += 1
                bar.update()
            frames.clear()

    ok = False
    try:
        with tqdm(total=reader.frames or None, unit="frame", disable=not cfg.progress_bar, desc="translate-apply") as bar:
            for packet in reader.packets():
                if packet.stream.type == "audio":
                    writer.copy(packet)
                    continue
                for pixels in reader.decode(packet):
                    frames.append(pixels)
                    if len(frames) == g.batch_size or cfg.tile is not None:
                        flush()
            flush()
        ok = True
    finally:
        reader.close()
        writer.close(keep=ok)
    return Report(written, 0, time.perf_counter() - start, target, unit="frames")


def frames_to_video(g: Translator, paths: List[Path], target: Path, cfg: ApplyConfig) -> Report:
    """Translate a sequence of frame images (in name order, one size) into the video ``target`` at ``cfg.fps``."""
    start = time.perf_counter()
    first = read_picture(paths[0]).pixels
    writer = VideoWriter(target, Fraction(cfg.fps).limit_denominator(1001), (first.shape[1], first.shape[0]))
    written = 0
    ok = False
    try:
        with tqdm(total=len(paths), unit="frame", disable=not cfg.progress_bar, desc="translate-apply") as bar:
            for i in range(0, len(paths), g.batch_size):
                batch = [as_channels(read_picture(p).pixels, g.in_channels) for p in paths[i : i + g.batch_size]]
                odd = next((p for p, b in zip(paths[i:], batch) if b.shape[:2] != first.shape[:2]), None)
                if odd is not None:
                    raise ConfigError(
                        f"{odd} is not {first.shape[1]}x{first.shape[0]} like {paths[0]}: the frames of a video share one size"
                    )
                for out in g.translate_pixels(batch, 65535 if batch[0].dtype == np.uint16 else 255, cfg.tile, cfg.overlap):
                    writer.write(as_channels(to_pixels(out.numpy(), 255), 3))
                    written += 1
                    bar.update()
        ok = True
    finally:
        writer.close(keep=ok)
    return Report(written, 0, time.perf_counter() - start, target, unit="frames")


def run_apply(cfg: ApplyConfig) -> Report:
    """Load ``cfg.run``'s generator and translate ``cfg.input`` into ``cfg.output`` (see the module docstring)."""
    source = Path(str(cfg.input)).expanduser()
    output = Path(str(cfg.output)).expanduser()
    video_in = source.is_file() and is_video_file(source)
    paths: List[Path] = []
    base = source
    if not video_in:
        paths, base = find_inputs(str(cfg.input))
        if not is_video_file(output) and output.exists() and _same_folder(output, base if base.is_dir() else base.parent):
            raise ConfigError(f"output={output} is the input's own folder: the translations would overwrite the originals; write elsewhere")
        if output.is_file():
            raise ConfigError(f"output={output} is a file; give a folder for images (or a .mp4/.mkv/... to make a video of frames)")
    g = load(str(cfg.run), cfg.weights, cfg.direction, cfg.device.accelerator, cfg.network, cfg.batch_size)
    log.info("translate-apply: %s", g)
    if video_in:
        return apply_video(g, source, output, cfg)
    if is_video_file(output):
        return frames_to_video(g, paths, output, cfg)
    return apply_images(g, paths, base, output, cfg)
