"""How much tiles overlap: the generator's reach (half its receptive field) from its layers, checked against a
brute-force probe; the default overlap (twice the reach) agreeing with the untiled image; a smaller overlap
honoured with one warning of its cost, a tile too small for the default grown with one warning.

Generators are tiny (ngf 4 to 8) and made here; images are small random blocks.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn as nn

from _models_helpers import blocks
from translate.config import ApplyConfig
from translate.errors import ConfigError
from translate.evaluation.image_metrics import psnr
from translate.inference.tiles import default_overlap, generator_reach, plan_tiles, smallest_tile
from translate.inference.translator import Translator
from translate.networks.generators import ResnetGenerator, UnetGenerator
from translate.networks.init import init_weights

WARNINGS = "translate.inference.translator"


def tiny_resnet(n_blocks: int = 1, ngf: int = 8, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return init_weights(ResnetGenerator(3, 3, ngf=ngf, norm="instance", n_blocks=n_blocks, **kwargs))


def image(h: int, w: int) -> torch.Tensor:
    """A ``[3, h, w]`` float image in [-1, 1] of random 8 x 8 blocks."""
    pixels = blocks(np.random.default_rng(0), max(h, w), block=8)[:h, :w]
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1


# ------------------------------------------------------------------------------------ the reach


@pytest.mark.parametrize(
    "layers, reach",
    [
        ([nn.Conv2d(1, 1, 3, padding=1)] * 3, 3),  # three 3 x 3 convolutions: 7 x 7
        ([nn.ReflectionPad2d(3), nn.Conv2d(1, 1, 7), nn.ReLU()], 3),  # padding moves the field, does not widen it
        ([nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.Conv2d(1, 1, 3, padding=1)], 3),  # 1, then 1 at stride 2
        ([nn.Conv2d(1, 1, 3, padding=2, dilation=2)], 2),
        ([nn.Conv2d(1, 1, 5, padding="same"), nn.InstanceNorm2d(1), nn.Tanh()], 2),
    ],
)
def test_the_reach_of_known_layers(layers, reach):
    assert generator_reach(nn.Sequential(*layers)) == reach


def test_the_reach_of_the_papers_generators():
    assert generator_reach(ResnetGenerator(3, 3, ngf=4, n_blocks=6)) == 60
    assert generator_reach(ResnetGenerator(3, 3, ngf=4, n_blocks=9)) == 84
    assert generator_reach(UnetGenerator(3, 3, 8, ngf=4)) == 765
    assert default_overlap(84, 4) == 168 and smallest_tile(168, 4) == 340


def probed_reach(net: nn.Module, size: int) -> int:
    """How far the output of ``net`` (pointwise norms: batch norm in eval mode) changes around one perturbed
    input pixel of a random ``size`` x ``size`` image, the farthest over four neighbouring pixels (every
    position modulo the stride-4 grid), on any side."""
    net = net.double().eval()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.double) * 2 - 1
    far = 0
    with torch.no_grad():
        base = net(x)
        for c in range(size // 2, size // 2 + 4):
            y = x.clone()
            y[0, :, c, c] += 1
            moved = (net(y) - base).abs().amax(dim=(0, 1)) > 0
            rows, cols = moved.any(1).nonzero().flatten(), moved.any(0).nonzero().flatten()
            assert rows[0] > 0 and cols[-1] < size - 1, "the probe is too small for this generator"
            far = max(far, c - int(rows[0]), int(rows[-1]) - c, c - int(cols[0]), int(cols[-1]) - c)
    return far


@pytest.mark.parametrize(
    "net, size",
    [
        (ResnetGenerator(3, 3, ngf=4, norm="batch", n_blocks=2), 96),
        (ResnetGenerator(3, 3, ngf=4, norm="batch", n_blocks=2, upsample="resize_conv"), 96),
        (ResnetGenerator(3, 3, ngf=4, norm="batch", n_blocks=2, antialias=True, antialias_up=True), 96),
        (UnetGenerator(3, 3, 5, ngf=2), 256),
    ],
    ids=["resnet", "resize_conv", "antialias", "unet"],
)
def test_the_reach_is_what_perturbing_one_pixel_measures(net, size):
    assert generator_reach(net) == probed_reach(net, size)


def test_an_unknown_layer_leaves_the_old_default():
    class Odd(nn.Module):
        input_multiple = 4

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.pool = nn.AvgPool2d(3, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pool(self.conv(x))

    with pytest.raises(TypeError, match="a Odd layer"):  # its forward is its own: unknown
        generator_reach(Odd())
    g = Translator(Odd(), "odd", torch.device("cpu"))
    assert g.reach is None and g.default_overlap == 64


# --------------------------------------------------------------------------- agreement and warnings


@pytest.mark.parametrize(
    "net, h, w, tile, tiles",
    [
        (tiny_resnet(), 96, 200, 88, 8),  # reach 20: default overlap 40, smallest tile 84
        (UnetGenerator(3, 3, 5, ngf=2, norm="batch"), 416, 900, 416, 4),  # reach 93: overlap 192, smallest tile 416
    ],
    ids=["resnet", "unet"],
)
def test_the_default_overlap_gives_the_untiled_image_up_to_float_rounding(net, h, w, tile, tiles):
    g = Translator(net, "tiny", torch.device("cpu"))
    x = image(h, w)
    plan = g.plan(h, w, tile)
    assert plan.count == tiles and plan.overlap is not None and plan.overlap >= 2 * g.reach
    assert psnr(g(x, tile=tile)[None], g(x)[None]).item() >= 100


def test_an_overlap_below_the_receptive_field_costs_agreement():
    g = Translator(tiny_resnet(), "tiny", torch.device("cpu"))
    x = image(96, 200)
    whole = g(x)[None]
    assert g.plan(96, 200, 48, 8).overlap == 8 and g.plan(96, 200, 88, 32).overlap == 32
    assert psnr(g(x, tile=48, overlap=8)[None], whole).item() < 35
    assert psnr(g(x, tile=88, overlap=32)[None], whole).item() < 50


def test_neighbouring_windows_sum_to_one_with_or_without_the_reach():
    for reach, zeros in ((0, 0), (4, 4), (8, 8), (20, 0)):  # reach 8 fills the overlap: a cut in its middle
        axis = plan_tiles(96, 268, 4, 100, 16, reach).cols  # 3 tiles overlapping by 16
        assert axis.spans == ((0, 100), (84, 184), (168, 268))
        assert torch.allclose(axis.normaliser(268), torch.ones(268, dtype=torch.float64))
        assert int((axis.window(1)[:16] == 0).sum()) == zeros


def test_a_small_overlap_is_honoured_with_one_warning_naming_its_cost(caplog):
    g = Translator(tiny_resnet(), "tiny", torch.device("cpu"))
    x = image(64, 96)
    with caplog.at_level(logging.WARNING, logger=WARNINGS):
        g(x, tile=32, overlap=8)
        g([x, x], tile=32, overlap=8)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert lines[0] == (
        "overlap=8 (8 px in effect) is below this generator's receptive field: its default overlap is 40 px (20 px on each side "
        "of a pixel); tiles overlapping by 0%-25% of the default measured as low as 26 dB against the untiled image, >= 92 dB at "
        "the default (leave overlap out for it); docs/apply.md#large-images-tiles-without-seams"
    )
    assert g.plan(64, 96, 32, 8).overlap == 8  # honoured


def test_the_default_overlap_warns_only_when_it_grows_the_tile(caplog):
    g = Translator(tiny_resnet(), "tiny", torch.device("cpu"))
    x = image(96, 200)
    with caplog.at_level(logging.WARNING, logger=WARNINGS):
        g(x, tile=88)
        g(x, tile=88, overlap=40)
        g(image(40, 40), tile=48, overlap=4)  # fits in one tile: no overlap, nothing to say
    assert caplog.records == []
    with caplog.at_level(logging.WARNING, logger=WARNINGS):
        g(x, tile=48)
        g(x, tile=48)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "tile=48 is grown to 84 to hold this generator's default overlap of 40 px on both sides; give overlap= to keep "
        "tile=48, at a cost in agreement (docs/apply.md#large-images-tiles-without-seams)"
    ]
    assert g.plan(96, 200, 48).rows.spans[0] == (0, 84)


def test_translate_apply_takes_the_default_overlap_and_warns_once_per_job(tmp_path, capsys):
    from PIL import Image

    from translate.cli.apply import main as apply_main

    torch.save(tiny_resnet().state_dict(), tmp_path / "g.pth")
    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(blocks(np.random.default_rng(1), 64)).save(tmp_path / "in" / name)
    common = [f"run={tmp_path / 'g.pth'}", f"input={tmp_path / 'in'}", "device=cpu", "progress_bar=false", "tile=32"]
    apply_main([*common, f"output={tmp_path / 'small'}", "overlap=8"])
    out = capsys.readouterr().out
    assert out.count("is below this generator's receptive field") == 1 and "wrote 2 images" in out
    apply_main([*common, f"output={tmp_path / 'default'}"])
    out = capsys.readouterr().out
    assert "receptive field" not in out and out.count("tile=32 is grown to 84") == 1


def test_the_config_takes_a_null_overlap_and_checks_a_given_one():
    cfg = ApplyConfig(run="r", input="i", output="o", tile=64)
    assert cfg.overlap is None
    cfg.check()
    with pytest.raises(ConfigError, match="overlap=64 must be smaller than tile=64"):
        ApplyConfig(run="r", input="i", output="o", tile=64, overlap=64).check()
    with pytest.raises(ConfigError, match="overlap=-1 must be >= 0"):
        ApplyConfig(run="r", input="i", output="o", overlap=-1).check()
