"""Translating one image of any size: padded to the generator's multiple and cropped back, whole or in
overlapping tiles blended with a smooth window, in bounded memory.

Why tiles of an instance-normalised generator disagree, and what is done about it
--------------------------------------------------------------------------------
InstanceNorm (CycleGAN's ResNet generators) and batch norm that uses the batch's statistics normalise each
channel by the mean and variance of the whole feature map they see. A tile sees only its part of the image,
so a tile of sky and a tile of grass are normalised differently: hand-tiled outputs shift in tone from tile
to tile and show seams however well they are blended. Here every such layer normalises every tile with the
statistics of the **whole image** instead, gathered tile by tile before the image is translated
(:class:`ImageStatistics`).

A layer's input depends on the statistics of every such layer before it, so they are found layer by layer,
in the order the layers run: one sweep over all tiles per layer, each tile's forward pass stopping at that
layer, the layers before it normalising with the image statistics already found. A sweep accumulates, per
channel, the count, sum and sum of squares of the layer's input over each tile's *core* (the cells of a
partition of the image, so every feature-map pixel is counted once) in float64. After the last sweep, the
final pass translates every tile with the image's statistics in every layer. The sweeps cost about half a
forward pass each on average (they stop early), so a CycleGAN ResNet with 23 such layers costs about 12
untiled passes; what that buys is the untiled image's statistics exactly, up to the receptive-field border
of each core (``scripts/bench_tiles.py`` measures the result against the untiled image). Gathering every
layer at once in repeated full passes was tried first and converges badly: on a 384 x 512 photo through a
3-block ResNet it gave 16-24 dB after one or two passes, worse than per-tile statistics, and is exact only
after as many full passes as layers. Layers that use running statistics
(batch norm in eval mode) are pointwise and need none of this; nor does a single tile.

Tiles sit at multiples of the generator's input multiple (4 for a ResNet, ``2 ** num_downs`` for a U-Net),
so every stride-2 grid of a tile lines up with the untiled image's; the padding to that multiple (reflected
at the bottom and right edges) is the same whether the image is tiled or not. Overlapping outputs are
blended with raised-cosine ramps over each overlap, which hides what the overlap's receptive-field
border still changes; a tile's window is 1 at the image's own edges.

How much overlap
----------------
An output pixel depends on the input within the generator's *reach* on each side (half its receptive field,
:func:`generator_reach`, found by walking the layers: kernel sizes, strides, dilations, padding). A tile's
output is the untiled image's wherever it is at least the reach away from the tile's cut edges. With an
overlap of at least twice the reach (the default, :func:`default_overlap`) the statistics of every core are
exact and the blending gives weight 0 to each tile's outer reach of an overlap (:func:`rise`): every pixel is
taken from tiles that computed it whole, and the tiled image is the untiled one up to float rounding. A
smaller overlap is honoured, blended over its whole width, and costs agreement: ``docs/apply.md`` has the
measurements (:data:`MEASURED_PSNR`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _NormBase

from translate.networks.antialias import BlurDownsample, BlurUpsample
from translate.networks.generators import ResizeConv2d, ResnetBlock, ResnetGenerator, UnetGenerator, UnetSkipConnectionBlock

Span = Tuple[int, int]


# ------------------------------------------------------------------------------- the generator's reach


@dataclass(frozen=True)
class Reach:
    """Which input pixels a feature map depends on, along one axis: its pixel ``i`` depends on input pixels
    ``i * jump + lo`` to ``i * jump + hi`` (``jump``: input pixels per feature-map pixel; fractions after
    upsampling). Each layer maps the reach of its input to that of its output; bounds are outer bounds."""

    jump: Fraction = Fraction(1)
    lo: Fraction = Fraction(0)
    hi: Fraction = Fraction(0)

    def conv(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> "Reach":
        # Output o reads feature pixels o * stride - padding + [0, dilation * (kernel - 1)].
        return Reach(self.jump * stride, self.lo - padding * self.jump, self.hi + (dilation * (kernel - 1) - padding) * self.jump)

    def transposed(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> "Reach":
        # Output o = m * stride - padding + t * dilation for a tap t: m within (o + padding - dilation * [kernel - 1, 0]) / stride.
        jump = self.jump / stride
        return Reach(jump, self.lo + (padding - dilation * (kernel - 1)) * jump, self.hi + padding * jump)

    def nearest(self, factor: int) -> "Reach":
        # Nearest upsampling: output o copies feature pixel floor(o / factor).
        jump = self.jump / factor
        return Reach(jump, self.lo - (factor - 1) * jump, self.hi)

    def shift(self, pixels: int) -> "Reach":
        """Output pixel ``o`` is feature pixel ``o + pixels`` (padding: negative; cropping: positive)."""
        return Reach(self.jump, self.lo + pixels * self.jump, self.hi + pixels * self.jump)

    def union(self, other: "Reach") -> "Reach":
        """Two branches summed or concatenated (a residual block, a U-Net skip)."""
        assert self.jump == other.jump, "branches at different scales"
        return Reach(self.jump, min(self.lo, other.lo), max(self.hi, other.hi))


#: Layers that map each pixel to itself (norms with fixed statistics while tiling, activations, dropout).
POINTWISE = (_NormBase, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity)
PADS = (nn.ReflectionPad2d, nn.ReplicationPad2d, nn.ZeroPad2d, nn.ConstantPad2d)


def _walk(module: nn.Module, reach: Reach, axis: int) -> Reach:
    """``reach`` of ``module``'s input mapped through it, along ``axis`` (0: rows, 1: columns)."""
    if isinstance(module, (ResnetGenerator, UnetGenerator)):
        return _walk(module.model, reach, axis)
    if isinstance(module, nn.Sequential):
        for layer in module:
            reach = _walk(layer, reach, axis)
        return reach
    if isinstance(module, ResnetBlock):
        return reach.union(_walk(module.conv_block, reach, axis))
    if isinstance(module, UnetSkipConnectionBlock):
        inner = _walk(module.model, reach, axis)
        return inner if module.outermost else reach.union(inner)
    if isinstance(module, nn.Conv2d):
        kernel, dilation = module.kernel_size[axis], module.dilation[axis]
        padding = module.padding
        pad = {"valid": 0, "same": dilation * (kernel - 1) // 2}[padding] if isinstance(padding, str) else padding[axis]
        return reach.conv(kernel, module.stride[axis], pad, dilation)
    if isinstance(module, nn.ConvTranspose2d):
        padding = module.padding
        assert not isinstance(padding, str), "a transposed convolution's padding is numbers"
        return reach.transposed(module.kernel_size[axis], module.stride[axis], padding[axis], module.dilation[axis])
    if isinstance(module, PADS):
        return reach.shift(-module.padding[2 if axis == 0 else 0])  # (left, right, top, bottom)
    if isinstance(module, ResizeConv2d):
        return _walk(module.conv, reach.nearest(module.scale_factor), axis)
    if isinstance(module, BlurDownsample):
        return _walk(module.pad, reach, axis).conv(module.filt.shape[-1], 2, 0)
    if isinstance(module, BlurUpsample):
        return reach.shift(-1).transposed(module.filt.shape[-1], 2, module.padding).shift(1)
    if isinstance(module, POINTWISE):
        return reach
    raise TypeError(f"no receptive field known for a {type(module).__name__} layer")


def generator_reach(net: nn.Module) -> int:
    """How far, in input pixels, an output pixel of the image-to-image generator ``net`` sees on either side:
    half its receptive field, from its layers' geometry (no forward pass, so any weights). 60 for CycleGAN's
    ResNet-6, 84 for ResNet-9, 765 for pix2pix's U-Net-256. TypeError for a layer it does not know."""
    sides = []
    for axis in (0, 1):
        reach = _walk(net, Reach(), axis)
        sides += [-reach.lo, reach.hi]
    return math.ceil(max(sides))


def default_overlap(reach: int, multiple: int) -> int:
    """The overlap tiles get unless one is asked for: twice the generator's ``reach``, on its ``multiple``."""
    return padded_side(2 * reach, multiple)


def smallest_tile(overlap: int, multiple: int) -> int:
    """The smallest tile that holds ``overlap`` on both sides with room between: each tile keeps a strip of
    its own, and the tiles cover the image at most twice along each axis (4 times the pixels, at worst)."""
    return 2 * padded_side(overlap, multiple) + multiple


#: The lowest PSNR of tiled against untiled translations measured (scripts/bench_tiles.py --part overlap: ResNet-6,
#: ResNet-9 and U-Net-256, random and briefly trained, 8-bit outputs; the table in docs/apply.md) with overlaps in
#: effect from each fraction of the default overlap up to the next: (fraction, dB).
MEASURED_PSNR = ((0.0, 25.8), (0.25, 31.6), (0.5, 46.8))
#: ... and the lowest at the default overlap or more: the untiled image up to float rounding.
MEASURED_PSNR_AT_DEFAULT = 92.0


def agreement(overlap: int, default: int) -> str:
    """What was measured for tiles overlapping by ``overlap`` where the default is ``default`` (a sentence)."""
    fraction = overlap / default
    bands = [*MEASURED_PSNR, (1.0, MEASURED_PSNR_AT_DEFAULT)]
    i = max(i for i, (at_least, _) in enumerate(bands) if fraction >= at_least)
    (low, psnr), high = bands[i], bands[i + 1][0]
    return (
        f"tiles overlapping by {low:.0%}-{high:.0%} of the default measured as low as {psnr:.0f} dB against the untiled image, "
        f">= {MEASURED_PSNR_AT_DEFAULT:.0f} dB at the default"
    )


# ---------------------------------------------------------------------------------------------- the grid


def padded_side(side: int, multiple: int) -> int:
    """``side`` rounded up to a multiple of ``multiple``."""
    return -(-side // multiple) * multiple


def border_index(side: int, padded: int) -> np.ndarray:
    """Source indices of a padded axis: ``0..side-1``, then reflected back from the far edge (clamped to the
    first pixel when the padding is longer than the image, where reflection is undefined)."""
    index = np.arange(padded)
    far = index >= side
    index[far] = np.maximum(2 * (side - 1) - index[far], 0)
    return index


def rise(length: int, reach: int) -> torch.Tensor:
    """A tile's weights over an overlap of ``length`` where it comes in, ``[length]``: a raised cosine from 0
    to 1 (at pixel centres, so never 0), each pair of neighbours' weights summing to 1. When the overlap holds
    the generator's ``reach`` on both sides, the tile's first ``reach`` pixels, which lack part of their
    receptive field, get weight 0 and the ramp runs over the rest, where both tiles are exact."""
    margin = reach if length >= 2 * reach else 0
    middle = length - 2 * margin
    t = (torch.arange(middle, dtype=torch.float64) + 0.5) / middle
    ramp = 0.5 - 0.5 * torch.cos(math.pi * t)
    return torch.cat([torch.zeros(margin, dtype=torch.float64), ramp, torch.ones(margin, dtype=torch.float64)])


@dataclass(frozen=True)
class Axis:
    """Tiles along one axis of the padded image: each tile's ``span`` (what the network sees), its ``core``
    (a partition of the axis: the cells whose statistics it contributes), its blending ``ramps`` (the
    lengths of the overlap with the tile before and after; 0 at the image's edges) and the generator's
    ``reach`` (see :func:`rise`)."""

    spans: Tuple[Span, ...]
    cores: Tuple[Span, ...]
    ramps: Tuple[Span, ...]
    reach: int = 0

    def window(self, i: int) -> torch.Tensor:
        """Tile ``i``'s blending weights along this axis: :func:`rise` over the overlap before it, its mirror
        over the overlap after it, 1 elsewhere (and at the image's edges)."""
        start, stop = self.spans[i]
        w = torch.ones(stop - start, dtype=torch.float64)
        up, down = self.ramps[i]
        if up:
            w[:up] *= rise(up, self.reach)
        if down:
            w[stop - start - down :] *= rise(down, self.reach).flip(0)
        return w

    def normaliser(self, length: int) -> torch.Tensor:
        """The sum of every tile's window along the axis, ``[length]``."""
        total = torch.zeros(length, dtype=torch.float64)
        for i, (start, stop) in enumerate(self.spans):
            total[start:stop] += self.window(i)
        return total


def tile_axis(length: int, tile: Optional[int], overlap: int, multiple: int, reach: int = 0) -> Axis:
    """Tiles of side ``tile`` overlapping by at least ``overlap`` over a padded axis of ``length`` (all
    multiples of ``multiple``), spread evenly, blended for a generator of ``reach``; one tile over everything
    when ``tile`` is None or covers it."""
    if tile is None or tile >= length:
        return Axis(((0, length),), ((0, length),), ((0, 0),))
    count = math.ceil((length - overlap) / (tile - overlap))
    starts = sorted({round(i * (length - tile) / (count - 1) / multiple) * multiple for i in range(count)})
    spans = tuple((s, s + tile) for s in starts)
    # Each core boundary lies in the middle of the two tiles' overlap, on the multiple.
    cuts = [0] + [(spans[i + 1][0] + spans[i][1]) // 2 // multiple * multiple for i in range(len(spans) - 1)] + [length]
    cores = tuple(zip(cuts[:-1], cuts[1:]))
    ramps = tuple(
        (
            spans[i - 1][1] - spans[i][0] if i > 0 else 0,
            spans[i][1] - spans[i + 1][0] if i < len(spans) - 1 else 0,
        )
        for i in range(len(spans))
    )
    # A ramp longer than half the tile would make its two ramps cross; cap both at half.
    ramps = tuple((min(up, tile // 2), min(down, tile // 2)) for up, down in ramps)
    return Axis(spans, cores, ramps, reach)


@dataclass(frozen=True)
class TilePlan:
    """How one image is cut: its size, the padded size, and the tiles along each axis (rows, columns)."""

    height: int
    width: int
    padded: Tuple[int, int]
    rows: Axis
    cols: Axis

    @property
    def count(self) -> int:
        return len(self.rows.spans) * len(self.cols.spans)

    @property
    def overlap(self) -> Optional[int]:
        """The smallest overlap of two neighbouring tiles (tiles are spread evenly, so it may exceed the one
        asked for); None for one tile."""
        overlaps = [a[1] - b[0] for axis in (self.rows, self.cols) for a, b in zip(axis.spans, axis.spans[1:])]
        return min(overlaps) if overlaps else None


def plan_tiles(height: int, width: int, multiple: int, tile: Optional[int] = None, overlap: int = 0, reach: int = 0) -> TilePlan:
    """The tiles of an image of ``height`` x ``width`` for a generator whose sides must be multiples of
    ``multiple`` and whose output pixels see ``reach`` pixels on each side (:func:`generator_reach`; it sets
    the blending, :func:`rise`): ``tile`` and ``overlap`` are rounded up to that multiple (and the overlap kept
    below the tile); ``tile`` None translates the image whole."""
    hp, wp = padded_side(height, multiple), padded_side(width, multiple)
    if tile is not None:
        tile = padded_side(max(tile, multiple), multiple)
        overlap = min(padded_side(overlap, multiple), tile - multiple)
    return TilePlan(height, width, (hp, wp), tile_axis(hp, tile, overlap, multiple, reach), tile_axis(wp, tile, overlap, multiple, reach))


# ------------------------------------------------------------------------ statistics of the whole image


def uses_input_statistics(module: nn.Module) -> bool:
    """Whether ``module`` normalises with the statistics of its input (InstanceNorm; batch norm in training
    mode or without running statistics), which makes a tile's output depend on the whole tile."""
    return isinstance(module, _NormBase) and (module.training or not module.track_running_stats)


class _Stop(Exception):
    """Ends a statistics sweep's forward pass at the layer it gathers for: nothing after it is needed."""


class _ImageNorm(nn.Module):
    """Stands in for a norm layer during tiling: normalises with fixed per-channel statistics once they are
    known (the image's), else as the layer itself does; as the target of a sweep, it accumulates the sums of
    its input over each sample's core region and stops the forward pass.

    Shapes: ``[N, C, h, w] -> [N, C, h, w]``.
    """

    def __init__(self, norm: _NormBase, owner: "ImageStatistics") -> None:
        super().__init__()
        self.norm = norm
        self.owner = owner
        self.mean: Optional[torch.Tensor] = None
        self.var: Optional[torch.Tensor] = None
        self.sums: Optional[torch.Tensor] = None  # [3, C] float64: count, sum, sum of squares

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.owner.called.append(self)
        if self.owner.target is self:
            self._collect(x)
            raise _Stop
        if self.mean is None or self.var is None:
            return self.norm(x)
        shape = (1, -1, 1, 1)
        # In place on the one new tensor: a tile's activations are the peak of tiled memory.
        y = (x - self.mean.view(shape)).mul_(torch.rsqrt(self.var.view(shape) + self.norm.eps))
        if self.norm.affine:
            y.mul_(self.norm.weight.view(shape)).add_(self.norm.bias.view(shape))
        return y

    def _collect(self, x: torch.Tensor) -> None:
        in_h, in_w = self.owner.input_size
        sy, sx = in_h // x.shape[-2], in_w // x.shape[-1]
        total = x.new_zeros((3, x.shape[1]), dtype=torch.float64)
        for b, (top, bottom, left, right) in enumerate(self.owner.cores):
            part = x[b, :, top // sy : bottom // sy, left // sx : right // sx].double()
            total[0] += part[0].numel()
            total[1] += part.sum(dim=(1, 2))
            total[2] += part.square().sum(dim=(1, 2))
        self.sums = total if self.sums is None else self.sums + total

    def settle(self) -> None:
        """Take the statistics the sweep gathered as the ones to normalise with."""
        assert self.sums is not None, "settle() follows a sweep that reached this layer"
        count, total, squares = self.sums
        mean = total / count
        self.mean = mean.float()
        self.var = (squares / count - mean.square()).clamp_min(0).float()
        self.sums = None


class ImageStatistics:
    """Every input-statistics norm layer of ``net`` replaced, for the duration of ``with``, by one that
    normalises with the whole image's statistics once :meth:`gather` has found them (see the module
    docstring). ``layers``: how many there are."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.target: Optional[_ImageNorm] = None
        self.called: List[_ImageNorm] = []
        self.input_size: Tuple[int, int] = (0, 0)
        self.cores: List[Tuple[int, int, int, int]] = []
        self._swaps: List[Tuple[nn.Module, str, nn.Module]] = [
            (parent, name, child) for parent in net.modules() for name, child in parent.named_children() if uses_input_statistics(child)
        ]

    @property
    def layers(self) -> int:
        return len(self._swaps)

    def __enter__(self) -> "ImageStatistics":
        for parent, name, child in self._swaps:
            setattr(parent, name, _ImageNorm(child, self))  # type: ignore[arg-type]
        return self

    def __exit__(self, *exc: object) -> None:
        for parent, name, child in self._swaps:
            setattr(parent, name, child)

    def run(self, batch: torch.Tensor, cores: Sequence[Tuple[int, int, int, int]]) -> Optional[torch.Tensor]:
        """``net(batch)``, each sample's core region (in tile coordinates) known to the target layer; None
        when the target stopped the pass."""
        self.input_size = (batch.shape[-2], batch.shape[-1])
        self.cores = list(cores)
        self.called = []
        try:
            return self.net(batch)
        except _Stop:
            return None

    def gather(self, first: Callable[[], None], sweep: Callable[[], None]) -> None:
        """Find every layer's image statistics in the order the layers run (``first()`` runs one tile, to
        learn it): one ``sweep()`` over all tiles per layer, stopping there, whose input then depends only
        on layers already settled."""
        first()
        for norm in list(dict.fromkeys(self.called)):
            self.target = norm
            try:
                sweep()
            finally:
                self.target = None
            norm.settle()


# ---------------------------------------------------------------------------------------------- running

Tile = Tuple[int, int, int, int, int]


class TileRunner:
    """Translate one image (an ``[H, W, C]`` array) with a generator in the tiles of a :class:`TilePlan`,
    batching up to ``batch_size`` tiles on ``device``.

    ``to_input`` turns an ``[h, w, C]`` piece of the image into the network's float input ``[C', h, w]`` in
    [-1, 1] (its channel conversion and scaling). Calling the runner yields the translation band by band.
    """

    def __init__(
        self,
        net: nn.Module,
        device: torch.device,
        to_input: Callable[[np.ndarray], torch.Tensor],
        batch_size: int = 4,
        on_tiles: Optional[Callable[[int], None]] = None,
    ) -> None:
        self.net = net
        self.device = device
        self.to_input = to_input
        self.batch_size = batch_size
        #: Called with the number of tiles of each batch run (for a progress bar: :func:`tile_passes` in all).
        self.on_tiles = on_tiles

    def __call__(self, image: np.ndarray, plan: TilePlan) -> Iterator[Tuple[int, torch.Tensor]]:
        """The translated image, band by band from the top: ``(first row, float32 [C_out, rows, W] on the
        CPU in [-1, 1])``, cropped to the image's size."""
        stats = ImageStatistics(self.net)
        with stats, torch.no_grad():
            if stats.layers and plan.count > 1:
                stats.gather(lambda: self._first(image, plan, stats), lambda: self._sweep(image, plan, stats))
            yield from self._blend(image, plan)

    def translate(self, image: np.ndarray, plan: TilePlan) -> torch.Tensor:
        """The whole translation, float32 ``[C_out, H, W]`` in [-1, 1] on the CPU."""
        return torch.cat([band for _, band in self(image, plan)], dim=1)

    def translate_whole(self, images: Sequence[np.ndarray], plan: TilePlan) -> List[torch.Tensor]:
        """Several images of one size, each whole (``plan`` has one tile), in one batch; as :meth:`translate`."""
        (top, bottom), (left, right) = plan.rows.spans[0], plan.cols.spans[0]
        with torch.no_grad():
            batch = torch.stack([self._piece(image, plan, top, bottom, left, right) for image in images]).to(self.device)
            return list(self.net(batch).float()[:, :, : plan.height, : plan.width].cpu())

    def _piece(self, image: np.ndarray, plan: TilePlan, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        rows = border_index(plan.height, plan.padded[0])[top:bottom]
        cols = border_index(plan.width, plan.padded[1])[left:right]
        return self.to_input(image[np.ix_(rows, cols)])

    def _batches(self, image: np.ndarray, plan: TilePlan, r: int) -> Iterator[Tuple[List[Tile], torch.Tensor]]:
        """The tiles of tile row ``r`` as ``(column, top, bottom, left, right)``, in batches on the device."""
        top, bottom = plan.rows.spans[r]
        tiles = [(c, top, bottom, left, right) for c, (left, right) in enumerate(plan.cols.spans)]
        for i in range(0, len(tiles), self.batch_size):
            chunk = tiles[i : i + self.batch_size]
            yield chunk, torch.stack([self._piece(image, plan, *t[1:]) for t in chunk]).to(self.device)
            if self.on_tiles is not None:
                self.on_tiles(len(chunk))

    def _first(self, image: np.ndarray, plan: TilePlan, stats: ImageStatistics) -> None:
        (top, bottom), (left, right) = plan.rows.spans[0], plan.cols.spans[0]
        stats.run(self._piece(image, plan, top, bottom, left, right)[None].to(self.device), [(0, 0, 0, 0)])

    def _sweep(self, image: np.ndarray, plan: TilePlan, stats: ImageStatistics) -> None:
        for r in range(len(plan.rows.spans)):
            core_top, core_bottom = plan.rows.cores[r]
            for chunk, batch in self._batches(image, plan, r):
                cores = []
                for c, top, _, left, _ in chunk:
                    core_left, core_right = plan.cols.cores[c]
                    cores.append((core_top - top, core_bottom - top, core_left - left, core_right - left))
                stats.run(batch, cores)

    def _blend(self, image: np.ndarray, plan: TilePlan) -> Iterator[Tuple[int, torch.Tensor]]:
        """The final pass, row of tiles by row: the blended rows above the next tile row are finished and
        handed out, so the float accumulator spans one tile row (plus what the next one overlaps)."""
        hp, wp = plan.padded
        row_norm, col_norm = plan.rows.normaliser(hp).float(), plan.cols.normaliser(wp)[: plan.width].float()
        col_windows = [plan.cols.window(c).float().to(self.device) for c in range(len(plan.cols.spans))]
        acc: Optional[torch.Tensor] = None
        acc_top = 0
        n_rows = len(plan.rows.spans)
        for r in range(n_rows):
            top, bottom = plan.rows.spans[r]
            wy = plan.rows.window(r).float().to(self.device)
            for chunk, batch in self._batches(image, plan, r):
                result = self.net(batch).float()
                if acc is None:
                    acc = result.new_zeros((result.shape[1], 0, wp))
                if acc.shape[1] < bottom - acc_top:
                    acc = torch.cat([acc, acc.new_zeros((acc.shape[0], bottom - acc_top - acc.shape[1], wp))], dim=1)
                for (c, _, _, left, right), tile_out in zip(chunk, result):
                    acc[:, top - acc_top : bottom - acc_top, left:right] += tile_out * (wy[:, None] * col_windows[c][None, :])
            assert acc is not None
            done = plan.rows.spans[r + 1][0] if r + 1 < n_rows else hp
            keep = min(done, plan.height) - acc_top
            if keep > 0:
                yield acc_top, acc[:, :keep, : plan.width].cpu() / (row_norm[acc_top : acc_top + keep, None] * col_norm[None, :])
            acc = acc[:, done - acc_top :]
            acc_top = done


def tile_passes(net: nn.Module, plan: TilePlan) -> int:
    """How many tile forward passes (full or stopped early) translating in ``plan`` takes with ``net``: one
    sweep over the tiles per input-statistics layer when there are several tiles, then the final pass."""
    layers = ImageStatistics(net).layers if plan.count > 1 else 0
    return (layers + 1) * plan.count


def seam_ratio(image: np.ndarray, plan: TilePlan) -> float:
    """How much a tiled translation ``image`` (``[H, W, C]``) steps across the borders of its tiles' cores,
    against everywhere else. A seam is coherent along its border while texture is not, so each band of tiles
    is first averaged along the border's direction (a column profile per row of tiles, a row profile per column
    of tiles); the measure is the mean absolute step of those profiles at the core borders divided by their
    mean step everywhere else. About 1: no seam; hand-tiling gives several."""
    x = np.asarray(image, dtype=np.float64)
    at: List[float] = []
    elsewhere: List[float] = []
    for axis, bands, borders in ((1, plan.rows.cores, plan.cols.cores), (0, plan.cols.cores, plan.rows.cores)):
        length = x.shape[axis]
        cuts = [start - 1 for start, _ in borders[1:] if start < length]
        for start, stop in bands:
            band = x[start:stop] if axis == 1 else x[:, start:stop]
            profile = band.mean(axis=1 - axis)  # [length, C]: averaged along the border's direction
            steps = np.abs(np.diff(profile, axis=0)).mean(axis=1)
            at.extend(steps[cuts])
            elsewhere.extend(np.delete(steps, cuts))
    return float(np.mean(at) / np.mean(elsewhere)) if at else 1.0
