"""Discriminators: the conditional DCGAN and projection discriminators of the cGAN and the PatchGANs of pix2pix
and CycleGAN. Each takes ``spectral_norm`` (Miyato et al. 2018: every weight divided by its largest singular
value, see :func:`~translate.networks.init.add_spectral_norm`), which usually replaces the norm layers
(``norm="none"``)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from translate.errors import ConfigError
from translate.networks.antialias import BlurDownsample
from translate.networks.configs import DISCRIMINATOR_ARCHS, resolve_preset
from translate.networks.init import add_spectral_norm, init_weights, norm_layer, uses_bias


def _dcgan_trunk(in_channels: int, image_size: int, ndf: int, norm: str) -> tuple[list[nn.Module], int]:
    """DCGAN's strided convolutions from ``image_size`` down to 4 x 4: Conv4/s2 + LeakyReLU(0.2), then
    Conv4/s2 -> norm -> LeakyReLU(0.2), doubling the channels from ``ndf``. Returns the layers and the
    channels of their output."""
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image_size={image_size} is not supported; use a power of two >= 8, e.g. 32 or 64")
    n_down = int(math.log2(image_size)) - 2
    channels = [ndf * 2**i for i in range(n_down)]
    layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
    make_norm = norm_layer(norm)
    for c_in, c_out in zip(channels, channels[1:]):
        # A convolution before batch norm needs no bias (the norm's shift replaces it).
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=str(norm) != "batch"), make_norm(c_out), nn.LeakyReLU(0.2, True)]
    return layers, channels[-1]


class ConditionalDiscriminator(nn.Module):
    """DCGAN-style discriminator conditioned on a class label.

    The class is given as ``num_classes`` one-hot maps broadcast to H x W and concatenated to the image, so
    every convolution sees it. Strided convolutions with LeakyReLU(0.2) (``norm`` after all but the first:
    DCGAN's batch norm, or instance/none for a WGAN-GP critic, whose per-sample gradient penalty batch norm
    would couple) reduce the image to 4 x 4, and a final 4 x 4 convolution gives one logit (no sigmoid).
    ``spectral_norm`` normalises every convolution.

    Shapes: ``forward(images [N, in_channels, S, S], labels [N] int64) -> [N]`` logits, S = ``image_size``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 32,
        ndf: int = 64,
        norm: str = "batch",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        trunk, channels = _dcgan_trunk(in_channels + num_classes, image_size, ndf, norm)
        self.model = nn.Sequential(*trunk, nn.Conv2d(channels, 1, 4, 1, 0))
        if spectral_norm:
            add_spectral_norm(self)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        maps = F.one_hot(labels, self.num_classes).to(images.dtype)[:, :, None, None].expand(n, self.num_classes, h, w)
        return self.model(torch.cat([images, maps], dim=1)).flatten()


class ProjectionDiscriminator(nn.Module):
    """The projection discriminator of Miyato & Koyama 2018 ("cGANs with Projection Discriminator").

    The image alone goes through DCGAN's convolutional trunk (as in :class:`ConditionalDiscriminator`, down
    to 4 x 4); its activations there, flattened, are the features phi(x) [N, 16 C]. The logit is an
    unconditional term plus the inner product of phi(x) with an embedding of the class:

        D(x, y) = psi(phi(x)) + <embed(y), phi(x)>,    psi linear.

    This is the form the logit takes when the class-conditional densities are log-linear in phi(x), so the
    class enters once, at the end, instead of as extra input channels. psi over the whole 4 x 4 map is the
    DCGAN discriminator's last layer (a 4 x 4 convolution), and each class's embedding is a 4 x 4 x C
    template. The paper's ResNet discriminators sum phi over positions instead, after a trunk deep enough
    for each position to see the whole image; after DCGAN's three strided convolutions that sum throws away
    where the strokes are, and the cGAN it trains on MNIST stays at chance (see scripts/quality.py).
    ``spectral_norm`` normalises every convolution, ``psi`` and the embedding, as in the paper's code.

    Shapes: ``forward(images [N, in_channels, S, S], labels [N] int64) -> [N]`` logits, S = ``image_size``;
    ``features(images) -> [N, 16 C]`` with C = ``ndf * 2 ** (log2(S) - 3)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 32,
        ndf: int = 64,
        norm: str = "batch",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        trunk, channels = _dcgan_trunk(in_channels, image_size, ndf, norm)
        self.trunk = nn.Sequential(*trunk)
        self.psi = nn.Linear(channels * 4 * 4, 1)
        self.embed = nn.Embedding(num_classes, channels * 4 * 4)
        # The paper's code initialises the embedding like a linear layer (Xavier), not N(0, 1): a unit-variance
        # embedding would let the projection term swamp psi at the start.
        nn.init.xavier_uniform_(self.embed.weight)
        if spectral_norm:
            add_spectral_norm(self)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """phi(x): the trunk's 4 x 4 x C activations, flattened."""
        return self.trunk(images).flatten(1)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        phi = self.features(images)
        return self.psi(phi).flatten() + (self.embed(labels) * phi).sum(dim=1)


#: model.discriminator.arch of the cGAN -> its class.
CONDITIONAL_DISCRIMINATORS = {"dcgan": ConditionalDiscriminator, "projection": ProjectionDiscriminator}


def build_conditional_discriminator(
    cfg: Any, in_channels: int, num_classes: int, image_size: int, section: str = "model.discriminator"
) -> nn.Module:
    """Build and initialise the cGAN's discriminator that ``cfg`` (a DCGANDiscriminatorConfig node)
    describes; an unknown ``cfg.arch`` raises ConfigError naming ``section.arch`` and the choices."""
    arch = str(cfg.arch)
    if arch not in CONDITIONAL_DISCRIMINATORS:
        raise ConfigError(f"{section}.arch={arch} is not a cGAN discriminator; use one of: {', '.join(CONDITIONAL_DISCRIMINATORS)}")
    net = CONDITIONAL_DISCRIMINATORS[arch](in_channels, num_classes, image_size, cfg.ndf, str(cfg.norm), cfg.spectral_norm)
    return init_weights(net, cfg.init_type, cfg.init_gain)


class NLayerDiscriminator(nn.Module):
    """The PatchGAN discriminator of pix2pix/CycleGAN: one logit per overlapping input patch (no sigmoid).

    Conv4/s2 (bias) + LeakyReLU(0.2); ``n_layers - 1`` times Conv4/s2 -> norm -> LeakyReLU with
    ``ndf * min(2**n, 8)`` channels; Conv4/s1 -> norm -> LeakyReLU; Conv4/s1 to one channel. All padding 1.
    Receptive field: 16x16 for ``n_layers=1``, 70x70 for 3 (``basic``), 286x286 for 5.
    ``spectral_norm`` normalises every convolution. ``antialias`` (CUT's default, after Zhang 2019): each
    stride-2 convolution becomes a stride-1 one followed by a
    :class:`~translate.networks.antialias.BlurDownsample` after its activation, in the layer order of CUT's
    code; 256x256 still gives 30x30.

    Shapes: ``[N, input_nc, H, W] -> [N, 1, H', W']``; 256x256 gives 30x30 with ``n_layers=3``.
    """

    def __init__(
        self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch", spectral_norm: bool = False, antialias: bool = False
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(
                f"n_layers={n_layers} is not supported by NLayerDiscriminator; use n_layers >= 1 (PixelDiscriminator is the 1x1 case)"
            )
        make_norm, bias = norm_layer(norm), uses_bias(norm)
        channels = [ndf * min(2**n, 8) for n in range(n_layers + 1)]
        down = 1 if antialias else 2
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=down, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        if antialias:
            layers.append(BlurDownsample(ndf))
        for n in range(1, n_layers + 1):
            last = n == n_layers
            layers += [
                nn.Conv2d(channels[n - 1], channels[n], kernel_size=4, stride=1 if last else down, padding=1, bias=bias),
                make_norm(channels[n]),
                nn.LeakyReLU(0.2, True),
            ]
            if antialias and not last:
                layers.append(BlurDownsample(channels[n]))
        layers.append(nn.Conv2d(channels[-1], 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        if spectral_norm:
            add_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """The 1x1 PatchGAN ("pixelGAN"): classifies every pixel on its own, from its colour alone.

    Conv1 (bias) -> LeakyReLU(0.2) -> Conv1 (2ndf) -> norm -> LeakyReLU(0.2) -> Conv1 to one channel,
    in a Sequential called ``net`` as in the reference. ``spectral_norm`` normalises every convolution.

    Shapes: ``[N, input_nc, H, W] -> [N, 1, H, W]``.
    """

    def __init__(self, input_nc: int, ndf: int = 64, norm: str = "batch", spectral_norm: bool = False) -> None:
        super().__init__()
        make_norm, bias = norm_layer(norm), uses_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, bias=bias),
            make_norm(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, bias=bias),
        )
        if spectral_norm:
            add_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_discriminator(cfg: Any, input_nc: int, section: str = "model.discriminator") -> nn.Module:
    """Build and initialise the discriminator that ``cfg`` (a DiscriminatorConfig node) describes.

    ``cfg.arch``: ``basic`` (the 70x70 PatchGAN, 3 layers), ``n_layers`` (depth from ``cfg.n_layers``;
    0 means the pixel discriminator) or ``pixel``; ``cfg.spectral_norm`` normalises it. Presets combine with ``n_layers`` as
    :func:`~translate.networks.generators.resolve_preset` describes. Bad values raise ConfigError
    naming ``section.<key>``.
    """
    _, n_layers = resolve_preset(section, DISCRIMINATOR_ARCHS, cfg)
    try:
        if n_layers == 0:
            if cfg.antialias:
                raise ValueError("antialias: the pixel discriminator has no stride to anti-alias; set it false")
            net: nn.Module = PixelDiscriminator(input_nc, cfg.ndf, str(cfg.norm), cfg.spectral_norm)
        else:
            net = NLayerDiscriminator(input_nc, cfg.ndf, n_layers, str(cfg.norm), cfg.spectral_norm, cfg.antialias)
        return init_weights(net, cfg.init_type, cfg.init_gain)
    except ValueError as err:
        raise ConfigError(f"{section}.{err}") from None


def receptive_field(net: nn.Module, input_nc: int, size: int = 512) -> int:
    """Measure the receptive field (in pixels, along the height) of the centre output of ``net``.

    Works on a float64 CPU copy whose norm layers are replaced by identities (instance norm would couple
    every pixel) and whose conv weights are positive constants, so that every input pixel connected to
    the centre output gets a strictly positive gradient; dropout is off. ``net`` itself is untouched.
    Raises ValueError when the field reaches the border of the ``size`` x ``size`` probe.
    """
    probe = copy.deepcopy(net).to("cpu", torch.float64).eval()
    norms = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)
    swaps = [(parent, name) for parent in probe.modules() for name, child in parent.named_children() if isinstance(child, norms)]
    for parent, name in swaps:
        setattr(parent, name, nn.Identity())
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, nn.modules.conv._ConvNd):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
    x = torch.ones(1, input_nc, size, size, dtype=torch.float64, requires_grad=True)
    out = probe(x)
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    assert x.grad is not None
    hit = x.grad[0].abs().sum(0) > 0
    rows = hit.any(1).nonzero().flatten()
    cols = hit.any(0).nonzero().flatten()
    if min(rows[0], cols[0]) == 0 or max(rows[-1], cols[-1]) == size - 1:
        raise ValueError(f"the receptive field reaches the border of a {size}x{size} probe; pass a larger size")
    return int(rows[-1] - rows[0] + 1)
