"""What ``translate-apply`` does: translate images of any number, size and aspect ratio, or a video, with a
trained generator, writing each at its input's exact size.

    translate-apply run=<run | checkpoint | pretrained name> input=<file | folder | glob | video> output=<folder | video>
                    [tile=512 [overlap=<px>]] [batch_size=<n>] [direction=BtoA] [weights=raw] [device=cpu] [overwrite=true]
    translate-apply run=<cGAN run> labels=[3,7] n=8 output=<folder>          # <folder>/<class>/<k>.png

Images keep their names (and sub-folders of a folder input), format, orientation (written upright), EXIF,
colour profile, grayscale and 16 bits. They are read one ahead in a background thread and translated as they
come, whole images of one size batched together, tiles of a large image batched on the device; nothing holds
more than the images in flight. A video (or a folder of frames, into an ``output`` with a video suffix) is
translated frame by frame, in batches of frames, at its own frame rate and size, its audio copied. An
output that exists is kept, and counted, unless ``overwrite=true``: a stopped job run again resumes.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from translate.config import ApplyConfig
from translate.data.folders import IMG_EXTENSIONS, find_images, is_image_file
from translate.errors import BadImageError, ConfigError, DatasetNotFoundError, InputError
from translate.inference.images import Picture, as_channels, read_picture, to_pixels, write_picture
from translate.inference.tiles import tile_passes
from translate.inference.translator import Translator, load
from translate.inference.video import VideoReader, VideoWriter, is_video_file
from translate.networks.generators import ConditionalGenerator

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What a run of translate-apply did: outputs ``written``, inputs ``skipped`` (skip_bad), outputs ``kept``
    because they existed (overwrite=false)."""

    written: int
    skipped: int
    seconds: float
    output: Path
    unit: str = "image"
    kept: int = 0

    @property
    def rate(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        extra = [f"{self.kept} existing kept"] if self.kept else []
        extra += [f"{self.skipped} unreadable left out"] if self.skipped else []
        also = f" ({', '.join(extra)})" if extra else ""
        rate = f" ({self.rate:.2f} {self.unit}s/s)" if self.written else ""
        return f"wrote {count(self.written, self.unit)}{also} to {self.output} in {self.seconds:.1f} s{rate}"


def count(n: int, unit: str) -> str:
    """``1 image``, ``2 images``."""
    return f"{n} {unit}{'' if n == 1 else 's'}"


def find_inputs(spec: str) -> Tuple[List[Path], Path]:
    """The image files ``spec`` names (a file, a folder searched recursively, or a glob) in order, and the
    folder their output paths are relative to."""
    path = Path(spec).expanduser()
    if path.is_file():
        if not is_image_file(path):
            raise ConfigError(
                f"input={spec}: {path.suffix or 'a file without suffix'} is not an image type translate-apply writes; {_TYPES}"
            )
        return [path], path.parent
    if path.is_dir():
        found = find_images(path, "a folder of images")
        others = _left_alone(path, found)
        if others:
            names = ", ".join(str(p.relative_to(path)) for p in others[:3]) + (", ..." if len(others) > 3 else "")
            what = "is not an image" if len(others) == 1 else "are not images"
            log.info("translate-apply: left alone %s that %s (%s): %s", count(len(others), "file"), what, _TYPES, names)
        return found, path
    if glob.has_magic(spec):
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if is_image_file(p) and Path(p).is_file())
        if not found:
            raise DatasetNotFoundError(f"input={spec}: the pattern matches no image file")
        base = Path(os.path.commonpath([p.parent for p in found]))
        log.info(
            "translate-apply: input=%s matches %s; each is written under its path relative to %s", spec, count(len(found), "image"), base
        )
        return found, base
    raise DatasetNotFoundError(f"input={spec}: no such file or folder, and not a pattern; give an image, a folder, a glob or a video")


_TYPES = f"images are {', '.join(sorted(e.lstrip('.') for e in IMG_EXTENSIONS))}"


def _left_alone(folder: Path, images: List[Path]) -> List[Path]:
    """The files under ``folder`` that :func:`find_images` did not take, hidden ones aside."""
    taken = set(images)
    return sorted(
        p
        for p in folder.rglob("*")
        if p not in taken and not p.is_dir() and not any(part.startswith(".") or part == "__MACOSX" for part in p.relative_to(folder).parts)
    )


def _same_folder(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _read(path: Path, channels: int, cfg: ApplyConfig) -> Optional[Tuple[Path, Picture, np.ndarray]]:
    try:
        picture = read_picture(path, cfg.max_image_pixels)
    except BadImageError as err:
        if not cfg.skip_bad:
            raise
        log.warning("skip_bad: leaving out %s", err)
        return None
    return path, picture, as_channels(picture.pixels, channels)


def _prefetched(paths: List[Path], channels: int, cfg: ApplyConfig) -> Iterator[Optional[Tuple[Path, Picture, np.ndarray]]]:
    """Each image decoded one ahead in a thread (Pillow decodes without holding the GIL)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead: Optional[Future] = None
        for i in range(len(paths)):
            current = ahead if ahead is not None else pool.submit(_read, paths[i], channels, cfg)
            ahead = pool.submit(_read, paths[i + 1], channels, cfg) if i + 1 < len(paths) else None
            yield current.result()


def _not_written(targets: List[Path], cfg: ApplyConfig) -> List[bool]:
    """Which of ``targets`` to write: all with overwrite=true, else those that do not exist yet (the others
    are kept, and said in one line)."""
    todo = [cfg.overwrite or not t.exists() for t in targets]
    kept = len(todo) - sum(todo)
    if kept:
        log.info("translate-apply: kept %s (overwrite=true replaces %s)", count(kept, "existing output"), "it" if kept == 1 else "them")
    return todo


def _write(target: Path, pixels: np.ndarray, source: str, like: Optional[Picture] = None) -> None:
    """Write one output; what it could not keep of ``source`` is said in one line."""
    try:
        notes = (like.notes if like is not None else []) + write_picture(target, pixels, like)
    except OSError as err:
        raise InputError(f"{target}: cannot write ({err.strerror or err})") from None
    if notes:
        log.warning("%s: %s", source, "; ".join(notes))


def apply_images(g: Translator, paths: List[Path], base: Path, output: Path, cfg: ApplyConfig) -> Report:
    """Translate every image of ``paths`` into ``output`` (same path relative to ``base``), streaming."""
    start = time.perf_counter()
    todo = _not_written([output / p.relative_to(base) for p in paths], cfg)
    kept = len(paths) - sum(todo)
    paths = [p for p, write in zip(paths, todo) if write]
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
            _write(output / path.relative_to(base), out, str(path), like=picture)
            written += 1
            bar.update()
        pending.clear()

    with tqdm(total=len(paths), unit="img", disable=not cfg.progress_bar, desc="translate-apply") as bar:
        for item in _prefetched(paths, g.in_channels, cfg):
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
    return Report(written, skipped, time.perf_counter() - start, output, kept=kept)


def apply_samples(g: Translator, output: Path, cfg: ApplyConfig) -> Report:
    """A cGAN's ``cfg.n`` samples of each class of ``cfg.labels`` as ``<output>/<class>/<k>.png``, ``k``
    counting the class's samples from 0; each label's are drawn as ``g.sample([label], n, seed + i)`` (i: the
    label's place in ``labels``), so a job run again with a seed draws the same."""
    assert cfg.labels is not None and isinstance(g.net, ConditionalGenerator)
    classes = g.net.num_classes
    bad = [label for label in cfg.labels if label >= classes]
    if bad:
        raise ConfigError(f"labels={cfg.labels}: {bad[0]} is not a class of this cGAN; use 0..{classes - 1}")
    start = time.perf_counter()
    seen: Counter = Counter()
    targets = []
    for label in cfg.labels:
        targets.append([output / str(label) / f"{seen[label] + k}.png" for k in range(cfg.n)])
        seen[label] += cfg.n
    todo = _not_written([t for group in targets for t in group], cfg)
    written = 0
    with tqdm(total=sum(todo), unit="sample", disable=not cfg.progress_bar, desc="translate-apply") as bar:
        for i, (label, group) in enumerate(zip(cfg.labels, targets)):
            write = todo[i * cfg.n : (i + 1) * cfg.n]
            if not any(write):
                continue
            samples = g.sample([label], cfg.n, None if cfg.seed is None else cfg.seed + i)
            for target, sample, new in zip(group, samples, write):
                if new:
                    _write(target, to_pixels(sample.numpy(), 255), str(target))
                    written += 1
                    bar.update()
    return Report(written, 0, time.perf_counter() - start, output, unit="sample", kept=len(todo) - sum(todo))


def _video_target(source: Path, output: Path) -> Path:
    return output if is_video_file(output) else output / source.name


def apply_video(g: Translator, source: Path, output: Path, cfg: ApplyConfig) -> Report:
    """Translate the video ``source`` frame by frame into ``output`` (a folder: the same name in it)."""
    start = time.perf_counter()
    target = _video_target(source, output)
    if _same_folder(target.parent, source.parent) and target.name == source.name:
        raise ConfigError(f"output={output} would overwrite the input video {source}; write somewhere else")
    if not any(_not_written([target], cfg)):
        return Report(0, 0, time.perf_counter() - start, target, unit="frame", kept=1)
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
    return Report(written, 0, time.perf_counter() - start, target, unit="frame")


def frames_to_video(g: Translator, paths: List[Path], target: Path, cfg: ApplyConfig) -> Report:
    """Translate a sequence of frame images (in name order, one size) into the video ``target`` at ``cfg.fps``."""
    start = time.perf_counter()
    if not any(_not_written([target], cfg)):
        return Report(0, 0, time.perf_counter() - start, target, unit="frame", kept=1)
    first = read_picture(paths[0], cfg.max_image_pixels).pixels
    writer = VideoWriter(target, Fraction(cfg.fps).limit_denominator(1001), (first.shape[1], first.shape[0]))
    written = 0
    ok = False
    try:
        with tqdm(total=len(paths), unit="frame", disable=not cfg.progress_bar, desc="translate-apply") as bar:
            for i in range(0, len(paths), g.batch_size):
                batch = [as_channels(read_picture(p, cfg.max_image_pixels).pixels, g.in_channels) for p in paths[i : i + g.batch_size]]
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
    return Report(written, 0, time.perf_counter() - start, target, unit="frame")


def run_apply(cfg: ApplyConfig) -> Report:
    """Load ``cfg.run``'s generator and translate ``cfg.input`` into ``cfg.output``, or draw ``cfg.labels``'
    samples with a cGAN (see the module docstring)."""
    output = Path(str(cfg.output)).expanduser()
    if output.is_file() and not is_video_file(output):
        raise ConfigError(f"output={output} is a file; give a folder for images (or a .mp4/.mkv/... to make a video of frames)")
    source = Path(str(cfg.input or "")).expanduser()
    video_in = cfg.input is not None and source.is_file() and is_video_file(source)
    paths: List[Path] = []
    base = source
    if cfg.input is not None and not video_in:
        paths, base = find_inputs(str(cfg.input))
        if not is_video_file(output) and output.exists() and _same_folder(output, base if base.is_dir() else base.parent):
            raise ConfigError(f"output={output} is the input's own folder: the translations would overwrite the originals; write elsewhere")
    g = load(str(cfg.run), cfg.weights, cfg.direction, cfg.device.accelerator, cfg.network, cfg.batch_size, cfg.max_image_pixels)
    log.info("translate-apply: %s", g)
    if g.conditional and cfg.labels is None:
        raise ConfigError(
            f"run={cfg.run} is a cGAN: it draws digits of the classes it is given and translates no images; "
            f"e.g. translate-apply run={cfg.run} labels=[3,7] n=8 output=digits/"
        )
    if cfg.labels is not None:
        if not g.conditional:
            raise ConfigError(f"labels= draws samples of a cGAN; run={cfg.run} translates images: give input=<image, folder or video>")
        return apply_samples(g, output, cfg)
    if video_in:
        return apply_video(g, source, output, cfg)
    if is_video_file(output):
        return frames_to_video(g, paths, output, cfg)
    return apply_images(g, paths, base, output, cfg)
