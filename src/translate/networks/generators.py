"""Generators: the conditional DCGAN generator of the cGAN, the U-Net of pix2pix and the ResNet of CycleGAN."""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from translate.errors import ConfigError
from translate.networks.antialias import BlurDownsample, BlurUpsample
from translate.networks.configs import (
    GENERATOR_ARCHS,
    RESNET_DOWNSAMPLINGS,
    UNET_MIN_DOWNS,
    Upsample,
    check_resampling,
    resolve_preset,
    size_hint,
)
from translate.networks.init import init_weights, norm_layer, uses_bias


class ResizeConv2d(nn.Module):
    """Resize-convolution (Odena, Dumoulin & Olah 2016, "Deconvolution and Checkerboard Artifacts"): a
    nearest-neighbour resize by ``scale_factor`` followed by a stride-1 convolution with ``kernel_size``
    (zero padding keeps the size). Every output pixel sees the same number of input pixels, so unlike a
    transposed convolution whose kernel does not divide evenly by its stride, it cannot put a period-2
    pattern on the image by construction. The convolution is ``conv``.

    Shapes: ``[N, in_channels, H, W] -> [N, out_channels, scale_factor * H, scale_factor * W]``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, scale_factor: int = 2, bias: bool = True) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.scale_factor, mode="nearest"))


def upsampling(
    mode: str, in_channels: int, out_channels: int, bias: bool, kernel_size: int = 4, padding: int = 1, output_padding: int = 0
) -> nn.Module:
    """A layer that doubles H and W: for ``mode="transposed"`` the papers' stride-2 ``nn.ConvTranspose2d``
    with ``kernel_size``, ``padding`` and ``output_padding``; for ``mode="resize_conv"`` a 3 x 3
    :class:`ResizeConv2d` with the same channels and bias."""
    if mode == "transposed":
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size, 2, padding, output_padding, bias=bias)
    if mode == "resize_conv":
        return ResizeConv2d(in_channels, out_channels, 3, 2, bias=bias)
    raise ValueError(f"upsample={mode!r} is not supported; use {' or '.join(Upsample)}")


class ConditionalBatchNorm2d(nn.Module):
    """Class-conditional batch norm (de Vries et al. 2017; the generators of Miyato & Koyama 2018 and BigGAN):
    batch norm without its own affine parameters, followed by a gain and a bias looked up per class.

        y = gain[label] * BN(x) + bias[label]

    Each class starts with a gain and a bias of its own, ``1 + d_g[label]`` and ``d_b[label]``, where the
    rows of d_g and d_b are orthonormal (unit-norm, mutually orthogonal deviations), as PyTorch-StudioGAN
    initialises them (``1 + embedding``, orthogonal init). Equal gains and biases for every class (1 and 0)
    would make the generator ignore the class at the start, and Adam moves each by at most about the
    learning rate per step: after 500 steps at 2e-4 they differed between classes by about 0.02 and the
    generator still drew the same digit for every class.

    Shapes: ``forward(x [N, num_features, H, W], labels [N] int64) -> [N, num_features, H, W]``.
    """

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        with torch.no_grad():
            nn.init.orthogonal_(self.gain.weight).add_(1.0)
            nn.init.orthogonal_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.gain(labels)[:, :, None, None] * self.norm(x) + self.bias(labels)[:, :, None, None]


class ConditionalGenerator(nn.Module):
    """DCGAN-style generator conditioned on a class label (Mirza & Osindero 2014; Radford et al. 2015).

    The noise z and a one-hot class vector are concatenated into a [N, z_dim + num_classes, 1, 1] tensor and
    upsampled by transposed convolutions (BatchNorm + ReLU) to ``image_size``; the last layer uses tanh.
    With ``conditional_bn`` the class enters through the norms instead, as in the generators of Miyato &
    Koyama 2018 and BigGAN: the input is z alone, and every batch norm is a :class:`ConditionalBatchNorm2d`
    whose per-class gain and bias say which digit to draw at every resolution.

    Args:
        z_dim: length of the noise vector.
        num_classes: number of classes of the condition.
        out_channels: channels of the generated image.
        image_size: side of the output, a power of two >= 8 (32 and 64 are the usual choices).
        ngf: channels of the last hidden layer; each earlier layer doubles it.
        conditional_bn: class-conditional batch norm instead of a one-hot input.
        upsample: ``transposed`` (DCGAN's 4 x 4 stride-2 transposed convolutions) or ``resize_conv``
            (nearest resize + 3 x 3 convolution, :class:`ResizeConv2d`) for every doubling; the first layer
            (1 x 1 to 4 x 4, a dense projection of the input) is transposed either way.

    Shapes: ``forward(z [N, z_dim], labels [N] int64) -> [N, out_channels, image_size, image_size]`` in [-1, 1].
    """

    def __init__(
        self,
        z_dim: int = 100,
        num_classes: int = 10,
        out_channels: int = 1,
        image_size: int = 32,
        ngf: int = 64,
        conditional_bn: bool = False,
        upsample: str = "transposed",
    ) -> None:
        super().__init__()
        if image_size < 8 or image_size & (image_size - 1):
            raise ValueError(f"image_size={image_size} is not supported; use a power of two >= 8, e.g. 32 or 64")
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.conditional_bn = conditional_bn
        n_up = int(math.log2(image_size)) - 3
        channels = [ngf * 2 ** (n_up - i) for i in range(n_up + 1)]

        def norm(c: int) -> nn.Module:
            return ConditionalBatchNorm2d(c, num_classes) if conditional_bn else nn.BatchNorm2d(c)

        in_channels = z_dim if conditional_bn else z_dim + num_classes
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_channels, channels[0], 4, 1, 0, bias=False), norm(channels[0]), nn.ReLU(True)]
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [upsampling(upsample, c_in, c_out, bias=False), norm(c_out), nn.ReLU(True)]
        layers += [upsampling(upsample, channels[-1], out_channels, bias=True), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not self.conditional_bn:
            onehot = F.one_hot(labels, self.num_classes).to(z.dtype)
            return self.model(torch.cat([z, onehot], dim=1)[:, :, None, None])
        h = z[:, :, None, None]
        for layer in self.model:
            h = layer(h, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
        return h


PADDING_TYPES = ("reflect", "replicate", "zero")


def _check_input(x: torch.Tensor, multiple: int, name: str) -> None:
    """Reject an input whose sides the network cannot halve often enough (a shape check, no data access)."""
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        bad = h if h % multiple else w
        # A ConfigError (a ValueError) so that the entry points print it as one line: sizes come from data.*.
        raise ConfigError(
            f"input of size {h}x{w} does not fit {name}: {size_hint(multiple, bad)}; "
            "set data.load_size / data.crop_size / data.preprocess to give such sizes"
        )


def _padding(padding_type: str, amount: int) -> tuple[list[nn.Module], int]:
    """Return (explicit padding layers, the conv's own zero padding) for ``padding_type``."""
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(amount)], 0
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(amount)], 0
    if padding_type == "zero":
        return [], amount
    raise ValueError(f"padding_type={padding_type!r} is not supported; use one of {', '.join(PADDING_TYPES)}")


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: downsample, run ``submodule``, upsample, and concatenate the input as skip.

    Down: LeakyReLU(0.2) -> Conv4/s2 -> norm (the innermost has no norm, the outermost no activation).
    Up: ReLU -> ConvTranspose4/s2 -> norm, then Dropout(0.5) when ``dropout`` (middle blocks only); the
    outermost ends with a biased ConvTranspose and Tanh instead. The layer order matches the reference, so its checkpoints load.
    ``upsample="resize_conv"`` replaces each ConvTranspose4/s2 by a :class:`ResizeConv2d` at the same index.

    Shapes: ``[N, input_nc, H, W] -> [N, input_nc + outer_nc, H, W]``; the outermost block returns
    ``[N, outer_nc, H, W]`` (no skip). ``input_nc`` defaults to ``outer_nc``.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: Optional[int] = None,
        submodule: Optional[nn.Module] = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        dropout: bool = False,
        upsample: str = "transposed",
    ) -> None:
        super().__init__()
        if (submodule is None) != innermost:
            raise ValueError("the innermost U-Net block takes no submodule and every other block needs one")
        self.outermost = outermost
        make_norm, bias = norm_layer(norm), uses_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        # the skip concatenation of the inner block doubles the channels that come back up
        up_in = inner_nc if innermost else inner_nc * 2
        layers: list[nn.Module]
        if outermost:
            assert submodule is not None
            upconv = upsampling(upsample, up_in, outer_nc, bias=True)
            layers = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        else:
            upconv = upsampling(upsample, up_in, outer_nc, bias=bias)
            if innermost:
                layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, make_norm(outer_nc)]
            else:
                assert submodule is not None
                layers = [nn.LeakyReLU(0.2, True), downconv, make_norm(inner_nc), submodule]
                layers += [nn.ReLU(True), upconv, make_norm(outer_nc)] + ([nn.Dropout(0.5)] if dropout else [])
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], dim=1)


class UnetGenerator(nn.Module):
    """The U-Net generator of pix2pix (Isola et al. 2017): ``num_downs`` stride-2 levels with skip connections.

    Channels: ngf, 2ngf, 4ngf, then 8ngf for every deeper level. With ``dropout``, Dropout(0.5) closes the
    ``num_downs - 5`` blocks just outside the innermost. ``unet_256`` is ``num_downs=8``, ``unet_128`` is 7.
    ``upsample``: ``transposed`` (the paper's) or ``resize_conv`` (see :class:`ResizeConv2d`).

    Shapes: ``[N, input_nc, H, W] -> [N, output_nc, H, W]`` in [-1, 1]; H and W must be multiples of
    ``2 ** num_downs`` (``input_multiple``), else forward raises ValueError.
    """

    #: The five levels that carry ngf, 2ngf, 4ngf, 8ngf and the innermost block.
    min_num_downs = UNET_MIN_DOWNS

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = False,
        upsample: str = "transposed",
    ) -> None:
        super().__init__()
        if num_downs < self.min_num_downs:
            raise ValueError(f"num_downs={num_downs} is too small; the U-Net needs at least 5 (unet_128 uses 7, unet_256 uses 8)")
        self.num_downs = num_downs
        self.input_multiple = 2**num_downs
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm, upsample=upsample)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout, upsample=upsample)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(ngf * mult, ngf * mult * 2, submodule=block, norm=norm, upsample=upsample)
        self.model = UnetSkipConnectionBlock(
            output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm, upsample=upsample
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.input_multiple, f"UnetGenerator(num_downs={self.num_downs})")
        return self.model(x)


class ResnetBlock(nn.Module):
    """Residual block ``x + conv_block(x)`` (no activation after the sum).

    ``conv_block``: pad -> Conv3 -> norm -> ReLU [-> Dropout(0.5)] -> pad -> Conv3 -> norm; with
    ``padding_type="zero"`` the convolutions pad themselves and the pad layers are absent, as in the reference.

    Shapes: ``[N, dim, H, W] -> [N, dim, H, W]``.
    """

    def __init__(self, dim: int, padding_type: str = "reflect", norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        make_norm, bias = norm_layer(norm), uses_bias(norm)
        pad, p = _padding(padding_type, 1)
        layers = pad + [nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=bias), make_norm(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        pad, p = _padding(padding_type, 1)
        layers += pad + [nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """The ResNet generator of CycleGAN (Zhu et al. 2017, after Johnson et al. 2016).

    ReflectionPad(3) + Conv7, two stride-2 downsamplings (ngf -> 2ngf -> 4ngf), ``n_blocks`` residual
    blocks at 4ngf, two transposed-conv upsamplings, ReflectionPad(3) + Conv7 and Tanh, all in one
    ``nn.Sequential`` called ``model`` whose indices match the reference checkpoints. ``upsample="resize_conv"``
    replaces each transposed convolution by a :class:`ResizeConv2d` at the same index.

    ``antialias`` (CUT's default, Park et al. 2020 after Zhang 2019): each downsampling is Conv3/s1 -> norm
    -> ReLU -> :class:`~translate.networks.antialias.BlurDownsample` instead of a stride-2 convolution;
    ``antialias_up``: each upsampling is :class:`~translate.networks.antialias.BlurUpsample` -> Conv3/s1 ->
    norm -> ReLU instead of a transposed convolution. Either adds one layer per resampling to ``model``, in
    the order of CUT's code, so its indices (which CUT's ``nce_layers`` name) and checkpoints match too.

    :meth:`encode` returns the outputs of chosen layers of ``model``: the features CUT's PatchNCE compares.

    Shapes: ``[N, input_nc, H, W] -> [N, output_nc, H, W]`` in [-1, 1]; H and W must be multiples of 4
    (``input_multiple``), else forward raises ValueError.
    """

    n_downsampling = RESNET_DOWNSAMPLINGS

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        norm: str = "instance",
        dropout: bool = False,
        n_blocks: int = 9,
        padding_type: str = "reflect",
        antialias: bool = False,
        antialias_up: bool = False,
        upsample: str = "transposed",
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks={n_blocks} must be >= 0")
        _padding(padding_type, 1)  # validates the name even when there are no blocks
        self.input_multiple = 2**self.n_downsampling
        make_norm, bias = norm_layer(norm), uses_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, bias=bias),
            make_norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(self.n_downsampling):
            c = ngf * 2**i
            stride = 1 if antialias else 2
            layers += [nn.Conv2d(c, c * 2, kernel_size=3, stride=stride, padding=1, bias=bias), make_norm(c * 2), nn.ReLU(True)]
            if antialias:
                layers.append(BlurDownsample(c * 2))
        dim = ngf * 2**self.n_downsampling
        layers += [ResnetBlock(dim, padding_type, norm, dropout) for _ in range(n_blocks)]
        for i in range(self.n_downsampling):
            c = dim // 2**i
            if antialias_up:
                layers += [BlurUpsample(c), nn.Conv2d(c, c // 2, kernel_size=3, padding=1, bias=bias)]
            else:
                layers.append(upsampling(upsample, c, c // 2, bias, kernel_size=3, padding=1, output_padding=1))
            layers += [make_norm(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.input_multiple, "ResnetGenerator")
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: Sequence[int]) -> List[torch.Tensor]:
        """The output of ``model[i]`` for each ``i`` of ``layers`` (increasing), running ``model`` only as far
        as the last of them (CUT's ``encode_only``).

        Shapes: ``[N, input_nc, H, W] ->`` one ``[N, C_i, H_i, W_i]`` per layer; layer 0 (the input
        reflection-padded by 3) is ``[N, input_nc, H + 6, W + 6]``.
        """
        if not layers or list(layers) != sorted(set(layers)) or layers[0] < 0 or layers[-1] >= len(self.model):
            raise ValueError(f"layers={list(layers)} must be increasing indices of model, from 0 to {len(self.model) - 1}")
        _check_input(x, self.input_multiple, "ResnetGenerator")
        features = []
        for i, layer in enumerate(self.model[: layers[-1] + 1]):
            x = layer(x)
            if i in layers:
                features.append(x)
        return features


def build_generator(cfg: Any, input_nc: int, output_nc: int, section: str = "model.generator") -> nn.Module:
    """Build and initialise the image-to-image generator that ``cfg`` (a GeneratorConfig node) describes.

    ``cfg.arch``: ``unet_256``, ``unet_128``, ``resnet_9blocks``, ``resnet_6blocks`` (presets; see
    :func:`resolve_preset` for how they combine with ``num_downs`` / ``n_blocks``), or ``unet`` / ``resnet``
    whose depth comes from ``num_downs`` / ``n_blocks``; ``cfg.upsample`` picks the upsampling layers. Bad values
    raise ConfigError naming ``section.<key>``.
    """
    family, depth = resolve_preset(section, GENERATOR_ARCHS, cfg)
    check_resampling(cfg, section)
    try:
        if family == "unet":
            net: nn.Module = UnetGenerator(input_nc, output_nc, depth, cfg.ngf, str(cfg.norm), bool(cfg.dropout), str(cfg.upsample))
        else:
            net = ResnetGenerator(
                input_nc,
                output_nc,
                cfg.ngf,
                str(cfg.norm),
                bool(cfg.dropout),
                depth,
                str(cfg.padding_type),
                cfg.antialias,
                cfg.antialias_up,
                str(cfg.upsample),
            )
        return init_weights(net, cfg.init_type, cfg.init_gain)
    except ValueError as err:
        raise ConfigError(f"{section}.{err}") from None


def generator_input_multiple(net: nn.Module) -> int:
    """The number every image side must be a multiple of for a built image-to-image generator (its
    ``input_multiple``: ``2 ** num_downs`` for a U-Net, 4 for a ResNet)."""
    multiple = getattr(net, "input_multiple", None)
    if not isinstance(multiple, int):
        raise TypeError(f"{type(net).__name__} is not an image-to-image generator")
    return multiple
