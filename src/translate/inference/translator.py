"""The Python API: a trained generator as a function of images (:func:`load`, :class:`Translator`).

    g = translate.load("outputs/cyclegan/horse2zebra/<time>")     # a run, a checkpoint file or a pretrained name
    zebra = g(Image.open("horse.jpg"))                             # PIL in, PIL out, at the photo's own size
    big = g("pano.tif", tile=512)                                  # any size, in bounded memory

The run's own preprocessing is applied (its channels, gray to RGB or RGB to luma as its datasets read
files, pixels scaled to [-1, 1]) and undone on the way out; images are padded to the generator's multiple
and cropped back, never resized. See :mod:`translate.inference.tiles` for tiling.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from translate.config import PILLOW_MAX_IMAGE_PIXELS, Weights
from translate.data.configs import Direction
from translate.devices import resolve_device
from translate.errors import CheckpointError, ConfigError, InputError
from translate.files import read_weights
from translate.hub.catalog import MODELS as PRETRAINED
from translate.hub.download import default_data_dir, model_path
from translate.hub.reference import generator_from_weights
from translate.inference.bundle import bundle_model, is_bundle, read_bundle
from translate.inference.images import as_channels, check_pixels, read_picture, to_pixels
from translate.inference.tiles import (
    TilePlan,
    TileRunner,
    agreement,
    border_index,
    default_overlap,
    generator_reach,
    plan_tiles,
    smallest_tile,
)
from translate.models.checkpoint import Checkpoint, is_checkpoint, trained_model
from translate.networks.generators import ConditionalGenerator, generator_input_multiple

log = logging.getLogger(__name__)

PathLike = Union[str, Path]


def pretrained_dir() -> Path:
    """Where ``translate-data download-model`` keeps published generators: ``<data dir>/pretrained``."""
    return default_data_dir() / "pretrained"


def default_batch_size(device: torch.device) -> int:
    """Images (or tiles) per forward pass: 1 on the CPU, where batching does not pay (scripts/bench_tiles.py
    measured 0.84x images/s with 4 against 1 at 256 x 256), 4 on an accelerator."""
    return 1 if device.type == "cpu" else 4


@dataclass(frozen=True)
class Source:
    """What :func:`load` found: a translate checkpoint, or a reference-format generator file."""

    path: Path
    raw: Any

    @property
    def is_run(self) -> bool:
        return is_checkpoint(self.raw)


def find_source(source: PathLike) -> Source:
    """``source`` read: a run directory (its ``checkpoints/latest.pt``), a checkpoint or reference generator
    file, a folder holding ``latest_net_G.pth``, or the name of a published generator that
    ``translate-data download-model`` has fetched. One line naming ``source`` when it is none of these."""
    path = Path(source).expanduser()
    if is_bundle(path):  # a folder or zip of JSON and safetensors (translate-bundle), read without pickle
        return Source(path, read_bundle(path))
    if not path.exists() and str(source) in PRETRAINED:
        path = model_path(pretrained_dir(), str(source))
        if not path.is_file():
            raise CheckpointError(
                f"{source}: this pretrained generator is not downloaded (to {path}); run: translate-data download-model {source}"
            )
    elif path.is_dir():
        found = [p for p in (path / "checkpoints" / "latest.pt", path / "latest_net_G.pth") if p.is_file()]
        if not found:
            raise CheckpointError(
                f"{path} is not a run directory (no checkpoints/latest.pt) nor a folder of a pretrained generator (no latest_net_G.pth)"
            )
        path = found[0]
    elif not path.is_file():
        hint = "a run directory, a .pt/.pth file, or a pretrained name such as horse2zebra (translate-data list)"
        raise CheckpointError(f"{source}: no such run, checkpoint or pretrained generator; give {hint}")
    return Source(path, read_weights(path))


@dataclass(frozen=True)
class FoundGenerator:
    """One generator of a :class:`Source`: the network, its name in the run (``G``, ``G_A``, ...; None for a
    reference file), a description for logs, and the image side its run trained at (None if unknown)."""

    net: nn.Module
    name: Optional[str]
    description: str
    image_size: Optional[int]


def find_generator(
    source: PathLike, weights: Weights = Weights.ema, direction: Direction = Direction.AtoB, network: Optional[str] = None
) -> Tuple[Source, FoundGenerator]:
    """The generator that ``source`` (see :func:`find_source`) holds for ``direction``, or the ``network``
    named: what :func:`load` applies and ``translate-export`` writes."""
    found = find_source(source)
    if not found.is_run:
        if direction != Direction.AtoB or network not in (None, "G"):
            raise ConfigError(f"{found.path} holds one generator; leave direction= and network= out")
        net, _, layout = generator_from_weights(found.raw, found.path, warn=False)
        return found, FoundGenerator(net, None, f"{found.path} ({layout.describe()})", None)
    ckpt = Checkpoint.from_state(found.raw, found.path)
    model = bundle_model(found.raw, weights, found.path) if is_bundle(found.path) else trained_model(ckpt, weights, found.path)
    if not model.generators:
        raise ConfigError(
            f"{found.path} holds a {ckpt.model} model, which has no generator; give a run of a model with one (cgan, pix2pix, cyclegan, cut)"
        )
    if network is None:
        if len(model.generators) == 1 and direction != Direction.AtoB:
            raise ConfigError(f"direction={direction}: a {ckpt.model} run translates one way only; leave direction= out")
        network = model.generators[0 if direction == Direction.AtoB else 1]
    if network not in model.generators:
        raise ConfigError(f"network={network} is not a generator of this {ckpt.model} run; choose one of: {', '.join(model.generators)}")
    # ema asked of a run that kept no moving average gives the raw weights (Checkpoint.weights): say which
    used = weights if weights == Weights.raw or network in (ckpt.ema or {}) else Weights.raw
    kept = "" if used == weights else ", the run kept no moving average"
    description = f"{found.path} ({ckpt.model} {network}, {used} weights{kept}, step {ckpt.step})"
    return found, FoundGenerator(model.networks[network], network, description, model.info.image_size)


class Translator:
    """A trained generator applied to images as the run preprocessed them (see the module docstring).

    ``g(image)`` takes a PIL image, an ``[H, W, C]`` / ``[H, W]`` uint8 or uint16 NumPy array, a float tensor
    ``[C, H, W]`` in [-1, 1], or a path, and returns the same kind (a path gives a PIL image, or a uint16
    array for 16-bit files); a list is translated in batches, as is a tensor ``[N, C, H, W]``. ``tile`` and
    ``overlap`` (pixels) translate each image in tiles, in bounded memory, with the whole image's
    normalisation statistics; ``overlap`` defaults to the generator's receptive field (:meth:`plan`). The
    cGAN's generator makes digits instead: :meth:`sample`.
    ``max_image_pixels``: an image file of more pixels is refused (Pillow's guard against decompression
    bombs, by default); None or 0: no limit, for large files you trust.
    """

    def __init__(
        self,
        net: nn.Module,
        description: str,
        device: torch.device,
        batch_size: Optional[int] = None,
        max_image_pixels: Optional[int] = PILLOW_MAX_IMAGE_PIXELS,
    ) -> None:
        self.net = net.eval().requires_grad_(False).to(device)
        self.description = description
        self.device = device
        self.batch_size = batch_size or default_batch_size(device)
        self.max_image_pixels = max_image_pixels
        self.conditional = isinstance(net, ConditionalGenerator)
        convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        #: Channels of the images the generator takes and makes.
        self.in_channels = convs[0].in_channels
        self.out_channels = convs[-1].out_channels
        self.multiple = 1 if self.conditional else generator_input_multiple(net)
        #: Input pixels an output pixel sees on each side (None: a layer :func:`generator_reach` does not
        #: know), and the overlap tiles get unless told: twice that (64 when unknown).
        self.reach: Optional[int] = None
        try:
            self.reach = None if self.conditional else generator_reach(net)
        except TypeError as err:
            log.info("tiles: %s; the default overlap is 64 px", err)
        self.default_overlap = 64 if self.reach is None else default_overlap(self.reach, self.multiple)
        self._warned: Set[str] = set()

    def __repr__(self) -> str:
        return f"Translator({self.description}, {self.in_channels}->{self.out_channels} channels, on {self.device})"

    # ------------------------------------------------------------------------------------------- images

    def __call__(self, image: Any, tile: Optional[int] = None, overlap: Optional[int] = None) -> Any:
        if self.conditional:
            raise InputError("this is a cGAN generator: it draws digits from class labels; call g.sample(labels, n=...)")
        if isinstance(image, list):
            return list(self._many(image, tile, overlap))
        if isinstance(image, torch.Tensor) and image.dim() == 4:
            return torch.stack(list(self._many(list(image), tile, overlap)))
        return next(self._many([image], tile, overlap))

    def _many(self, images: Sequence[Any], tile: Optional[int], overlap: Optional[int]) -> Iterator[Any]:
        prepared = [self._prepare(image, f"image {i}" if len(images) > 1 else "image") for i, image in enumerate(images)]
        for group in self._groups(prepared, tile):
            outputs = self.translate_pixels([p[0] for p in group], group[0][1], tile, overlap)
            for (_, max_value, finish), out in zip(group, outputs):
                yield finish(out, max_value)

    def _groups(
        self, prepared: List[Tuple[np.ndarray, int, Callable]], tile: Optional[int]
    ) -> Iterator[List[Tuple[np.ndarray, int, Callable]]]:
        """Consecutive images of one shape, up to ``batch_size`` of them when whole; one at a time in tiles."""
        group: List[Tuple[np.ndarray, int, Callable]] = []
        for item in prepared:
            if group and (
                tile is not None or len(group) == self.batch_size or item[0].shape != group[0][0].shape or item[1] != group[0][1]
            ):
                yield group
                group = []
            group.append(item)
        if group:
            yield group

    def _prepare(self, image: Any, where: str) -> Tuple[np.ndarray, int, Callable[[torch.Tensor, int], Any]]:
        """``(pixels [H, W, C] with the generator's channels, their maximum, a function giving the output its
        input's kind)``; for a tensor, ``pixels`` are its float values (maximum 0)."""
        if isinstance(image, (str, Path)):
            picture = read_picture(image, self.max_image_pixels)
            if picture.notes:
                log.warning("%s: %s", image, "; ".join(picture.notes))
            wide = picture.max_value == 65535 and self.out_channels == 3
            return as_channels(picture.pixels, self.in_channels), picture.max_value, _as_array if wide else _as_pil
        if isinstance(image, Image.Image):
            wide = image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N")
            pixels = np.clip(np.asarray(image, dtype=np.int64), 0, 65535).astype(np.uint16)[:, :, None] if wide else None
            if pixels is None:
                pixels = np.asarray(image.convert("L") if image.mode in ("1", "L", "LA") else image.convert("RGB"))
            pixels = check_pixels(pixels, where)
            return as_channels(pixels, self.in_channels), 65535 if wide else 255, _as_pil
        if isinstance(image, np.ndarray):
            pixels = check_pixels(image, where)
            flat = image.ndim == 2
            return as_channels(pixels, self.in_channels), 65535 if pixels.dtype == np.uint16 else 255, _as_flat_array if flat else _as_array
        if isinstance(image, torch.Tensor):
            if image.dim() != 3 or image.shape[0] != self.in_channels or not image.is_floating_point() or 0 in image.shape:
                raise InputError(
                    f"{where}: a {image.dtype} tensor of shape {tuple(image.shape)}; this generator takes float [{self.in_channels}, H, W] "
                    f"(or [N, {self.in_channels}, H, W]) in [-1, 1]"
                )
            low, high = float(image.min()), float(image.max())
            if low < -1.001 or high > 1.001:
                raise InputError(f"{where}: tensor values span [{low:.3g}, {high:.3g}]; scale them to [-1, 1] (x / 127.5 - 1 for 0..255)")
            device = image.device
            return image.detach().float().cpu().permute(1, 2, 0).numpy(), 0, lambda out, _: out.to(device)
        raise InputError(f"{where}: a {type(image).__name__}; give a PIL image, a NumPy array, a [-1, 1] tensor or a path")

    def _to_input(self, max_value: int) -> Callable[[np.ndarray], torch.Tensor]:
        def to_input(piece: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(piece)).permute(2, 0, 1).float()
            return x if max_value == 0 else to_unit_range(x, max_value)

        return to_input

    def plan(self, height: int, width: int, tile: Optional[int] = None, overlap: Optional[int] = None) -> TilePlan:
        """The tiles an image of ``height`` x ``width`` is cut into (one when ``tile`` is None or covers it).
        ``overlap`` None: :attr:`default_overlap`, the tile grown to :func:`smallest_tile` of it if smaller. Tiles
        overlapping by less than the default, and a grown tile, are logged once per Translator."""
        if tile is not None and overlap is None:
            overlap = self.default_overlap
            needed = smallest_tile(overlap, self.multiple)
            if tile < needed:
                if max(height, width) > tile:
                    self._warn_once(
                        f"tile={tile} is grown to {needed} to hold this generator's default overlap of {overlap} px on both sides; "
                        f"give overlap= to keep tile={tile}, at a cost in agreement (docs/apply.md#large-images-tiles-without-seams)"
                    )
                tile = needed
        if tile is not None:
            tile = max(tile, self.min_side)
        plan = plan_tiles(height, width, self.multiple, tile, overlap or 0, self.reach or 0)
        if plan.overlap is not None and self.reach is not None and plan.overlap < self.default_overlap:
            self._warn_once(
                f"overlap={overlap} ({plan.overlap} px in effect) is below this generator's receptive field: its default overlap is "
                f"{self.default_overlap} px ({self.reach} px on each side of a pixel); {agreement(plan.overlap, self.default_overlap)} "
                "(leave overlap out for it); docs/apply.md#large-images-tiles-without-seams",
                key=f"overlap {tile} {overlap}",
            )
        return plan

    def _warn_once(self, message: str, key: Optional[str] = None) -> None:
        if (key or message) not in self._warned:
            self._warned.add(key or message)
            log.warning("%s", message)

    @functools.cached_property
    def min_side(self) -> int:
        """The shortest side the generator takes, a multiple of :attr:`multiple`, found by trying it once: a
        ResNet needs 8 (at 4 its bottleneck is 1 x 1, which instance norm and reflection cannot take)."""
        side = self.multiple
        while side < 64 * self.multiple:
            try:
                with torch.no_grad():
                    self.net(torch.zeros(1, self.in_channels, side, side, device=self.device))
                break
            except (RuntimeError, ValueError):
                side *= 2
        return side

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """``[H, W, C]`` padded at the bottom and right to :attr:`min_side` where a side is shorter, as the tiles
        pad: reflected, then the pixel the reflection ends on repeated. The caller crops the output back."""
        h, w = image.shape[:2]
        if min(h, w) >= self.min_side:
            return image
        return image[np.ix_(border_index(h, max(h, self.min_side)), border_index(w, max(w, self.min_side)))]

    def translate_pixels(
        self,
        images: Sequence[np.ndarray],
        max_value: int,
        tile: Optional[int] = None,
        overlap: Optional[int] = None,
        on_tiles: Optional[Callable[[int], None]] = None,
    ) -> List[torch.Tensor]:
        """The translation, float32 ``[C_out, H, W]`` in [-1, 1] on the CPU, of each ``[H, W, C_in]`` array in
        ``images`` (one shape, pixels up to ``max_value``; 0: floats already in [-1, 1]), at its own size.
        ``on_tiles(n)`` is called after each batch of ``n`` tiles (see :func:`translate.inference.tiles.tile_passes`)."""
        runner = TileRunner(self.net, self.device, self._to_input(max_value), self.batch_size, on_tiles)
        h, w = images[0].shape[:2]
        images = [self._fit(image) for image in images]
        plan = self.plan(images[0].shape[0], images[0].shape[1], tile, overlap)
        if len(images) == 1 or plan.count > 1:
            return [runner.translate(image, plan)[:, :h, :w] for image in images]
        return [out[:, :h, :w] for out in runner.translate_whole(images, plan)]

    def translate_to_pixels(
        self,
        image: np.ndarray,
        max_value: int,
        tile: Optional[int] = None,
        overlap: Optional[int] = None,
        on_tiles: Optional[Callable[[int], None]] = None,
    ) -> np.ndarray:
        """The translation of one ``[H, W, C_in]`` image of pixels up to ``max_value`` as ``[H, W, C_out]`` pixels
        of the same depth, converted band by band as the tiles finish them: no float copy of the whole image."""
        runner = TileRunner(self.net, self.device, self._to_input(max_value), self.batch_size, on_tiles)
        h, w = image.shape[:2]
        image = self._fit(image)
        out: Optional[np.ndarray] = None
        for top, band in runner(image, self.plan(image.shape[0], image.shape[1], tile, overlap)):
            # bands start inside the image: what _fit adds is shorter than a tile
            pixels = to_pixels(band[:, : h - top, :w].numpy(), max_value)
            if out is None:
                out = np.empty((h, w, pixels.shape[2]), pixels.dtype)
            out[top : top + pixels.shape[0]] = pixels
        assert out is not None
        return out

    # ---------------------------------------------------------------------------------------------- cGAN

    def sample(self, labels: Union[int, Sequence[int], torch.Tensor], n: int = 1, seed: Optional[int] = None) -> torch.Tensor:
        """``n`` digits of each class in ``labels``, float32 ``[len(labels) * n, C, H, W]`` in [-1, 1] on the
        CPU, label by label; ``seed`` fixes the noise."""
        net = self.net
        if not isinstance(net, ConditionalGenerator):
            raise InputError("sample() is the cGAN's; this generator translates images: call g(image)")
        labels = torch.as_tensor([labels] if isinstance(labels, int) else labels, dtype=torch.long).flatten()
        bad = labels[(labels < 0) | (labels >= net.num_classes)]
        if bad.numel():
            raise InputError(f"label {int(bad[0])} is not a class of this generator; use 0..{net.num_classes - 1}")
        if n < 1:
            raise InputError(f"n={n}: draw at least one sample per label")
        labels = labels.repeat_interleave(n)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(len(labels), net.z_dim, generator=gen)
        with torch.no_grad():
            return net(z.to(self.device), labels.to(self.device)).float().cpu()


def to_unit_range(pixels: torch.Tensor, max_value: int) -> torch.Tensor:
    """Float pixels 0..``max_value`` -> [-1, 1], the run's normalisation (mean 0.5, std 0.5 of [0, 1])."""
    return pixels * (2.0 / max_value) - 1.0


def from_unit_range(image: torch.Tensor, max_value: int) -> torch.Tensor:
    """[-1, 1] -> float pixels 0..``max_value``, rounded (half to even) and clipped."""
    return ((image + 1.0) * (max_value / 2.0)).round().clamp(0, max_value)


def _as_pil(out: torch.Tensor, max_value: int) -> Image.Image:
    pixels = to_pixels(out.numpy(), max_value)
    if pixels.dtype == np.uint16:
        return Image.fromarray(pixels[:, :, 0].astype("<u2"), mode="I;16")
    return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)


def _as_array(out: torch.Tensor, max_value: int) -> np.ndarray:
    return to_pixels(out.numpy(), max_value)


def _as_flat_array(out: torch.Tensor, max_value: int) -> np.ndarray:
    pixels = to_pixels(out.numpy(), max_value)
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels


def load(
    source: PathLike,
    weights: Union[str, Weights] = Weights.ema,
    direction: Union[str, Direction] = Direction.AtoB,
    device: Union[str, torch.device, None] = "auto",
    network: Optional[str] = None,
    batch_size: Optional[int] = None,
    max_image_pixels: Optional[int] = PILLOW_MAX_IMAGE_PIXELS,
) -> Translator:
    """A trained generator, ready to apply: ``source`` is a run directory, a checkpoint file, a reference-format
    generator file, or the name of a published generator fetched by ``translate-data download-model``.

    ``weights``: ``ema`` (the generators' moving average when the run kept one) or ``raw``; ``direction``:
    ``AtoB`` (G_A of a CycleGAN) or ``BtoA`` (G_B); ``network`` names a generator instead; ``device``: auto,
    cpu, cuda, ...; ``batch_size``: images (or tiles) per forward pass (None: :func:`default_batch_size`);
    ``max_image_pixels``: image files of more pixels are refused, Pillow's guard against decompression bombs
    (None or 0: no limit, for large files you trust).
    """
    try:
        weights, direction = Weights(str(weights)), Direction(str(direction))
    except ValueError as err:
        raise ConfigError(f"{err}; weights is ema or raw, direction AtoB or BtoA") from None
    _, found = find_generator(source, weights, direction, network)
    return Translator(found.net, found.description, resolve_device(device), batch_size, max_image_pixels)
