"""model.generator.upsample: the papers' transposed convolutions by default (published weights keep loading),
resize-convolutions on request, in every generator, and the checkerboard they leave (or do not)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf

import helpers
from translate.cli.compose import check_command_line
from translate.errors import ConfigError
from translate.evaluation.image_metrics import checkerboard_energy
from translate.networks.configs import GeneratorConfig, Upsample
from translate.networks.generators import ConditionalGenerator, ResizeConv2d, ResnetGenerator, UnetGenerator, build_generator


def gen_cfg(**kw):
    return OmegaConf.structured(GeneratorConfig(**kw))


def shapes(net: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


#: Every generator family, tiny: (class, its arguments).
GENERATORS = {
    "unet": (UnetGenerator, {"input_nc": 1, "output_nc": 1, "num_downs": 5, "ngf": 4}),
    "resnet": (ResnetGenerator, {"input_nc": 1, "output_nc": 1, "ngf": 4, "n_blocks": 1}),
    "cgan": (ConditionalGenerator, {"z_dim": 8, "num_classes": 10, "image_size": 32, "ngf": 4}),
    "cgan_cbn": (ConditionalGenerator, {"z_dim": 8, "num_classes": 10, "image_size": 32, "ngf": 4, "conditional_bn": True}),
}


def build(name: str, **extra) -> nn.Module:
    torch.manual_seed(0)
    cls, kwargs = GENERATORS[name]
    return cls(**kwargs, **extra)


def forward(name: str, net: nn.Module) -> torch.Tensor:
    if name.startswith("cgan"):
        return net(torch.randn(3, 8), torch.tensor([0, 4, 9]))
    return net(torch.rand(3, 1, 32, 32) * 2 - 1)


@pytest.mark.parametrize("name", GENERATORS)
def test_resize_conv_keeps_every_output_shape_and_replaces_every_strided_transposed_conv(name):
    plain, resized = build(name), build(name, upsample="resize_conv")
    assert forward(name, resized).shape == forward(name, plain).shape == (3, 1, 32, 32)
    strided = [m for m in plain.modules() if isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2)]
    assert strided and len([m for m in resized.modules() if isinstance(m, ResizeConv2d)]) == len(strided)
    # the cGAN's first layer (1 x 1 noise to 4 x 4, a dense projection with no overlap) stays transposed
    assert not any(isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2) for m in resized.modules())


@pytest.mark.parametrize("name", GENERATORS)
def test_the_default_is_the_transposed_network_tensor_for_tensor(name):
    default = build(name)
    helpers.assert_same_tensors(default.state_dict(), build(name, upsample="transposed").state_dict())
    assert not any(isinstance(m, ResizeConv2d) for m in default.modules())


def test_the_cgan_generator_keeps_its_state_dict_keys():
    # the cGAN's checkpoints from before the option load as they did: every key and shape pinned
    sd = shapes(build("cgan"))
    assert sd == {
        "model.0.weight": (18, 16, 4, 4),
        **{f"model.1.{k}": v for k, v in BATCH_NORM(16).items()},
        "model.3.weight": (16, 8, 4, 4),
        **{f"model.4.{k}": v for k, v in BATCH_NORM(8).items()},
        "model.6.weight": (8, 4, 4, 4),
        **{f"model.7.{k}": v for k, v in BATCH_NORM(4).items()},
        "model.9.weight": (4, 1, 4, 4),
        "model.9.bias": (1,),
    }


def BATCH_NORM(c: int) -> dict[str, tuple[int, ...]]:
    return {"weight": (c,), "bias": (c,), "running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()}


def test_the_config_default_builds_the_reference_keys_and_resize_conv_only_renames_the_upsampling_layers():
    # ResNet: model.19 and model.22 are the reference's two upsampling layers (see test_networks.py)
    default = build_generator(gen_cfg(arch="resnet_6blocks", norm="instance", ngf=4), 3, 3)
    assert gen_cfg().upsample == "transposed"
    resized = build_generator(gen_cfg(arch="resnet_6blocks", norm="instance", ngf=4, upsample="resize_conv"), 3, 3)
    before, after = shapes(default), shapes(resized)
    renamed = {k for k in before if k.startswith(("model.16.", "model.19."))}
    assert renamed == {"model.16.weight", "model.16.bias", "model.19.weight", "model.19.bias"}
    assert {k: v for k, v in before.items() if k not in renamed} == {
        k: v for k, v in after.items() if not k.startswith(("model.16.", "model.19."))
    }
    assert after["model.16.conv.weight"] == (8, 16, 3, 3) and after["model.19.conv.weight"] == (4, 8, 3, 3)


def test_a_resize_convolution_cannot_put_a_checkerboard_on_a_flat_input():
    # A transposed convolution with a kernel its stride does not divide evenly (3 over 2, as in the ResNet)
    # turns a constant map into a period-2 pattern; nearest resize + convolution gives a constant interior.
    torch.manual_seed(0)
    x = torch.ones(1, 4, 8, 8)
    transposed = nn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=1, bias=False)
    nn.init.uniform_(transposed.weight, 0.5, 1.0)
    resized = ResizeConv2d(4, 1, 3, bias=False)
    nn.init.uniform_(resized.conv.weight, 0.5, 1.0)
    with torch.no_grad():
        t, r = transposed(x)[..., 2:-2, 2:-2], resized(x)[..., 2:-2, 2:-2]  # the interior, away from the zero padding
    assert checkerboard_energy(t).item() > 0.5
    assert torch.allclose(r, r.mean().expand_as(r), rtol=1e-5)


def test_checkerboard_energy_tells_a_checkerboard_from_a_smooth_image():
    i = torch.arange(32.0)
    board = ((i[:, None] + i[None, :]) % 2)[None, None].repeat(2, 3, 1, 1)
    stripes = (i[:, None] % 2).expand(32, 32)[None, None]
    smooth = (torch.sin(i / 32 * 2 * torch.pi)[:, None] * torch.cos(i / 32 * 4 * torch.pi)[None, :])[None, None]
    assert checkerboard_energy(board).tolist() == pytest.approx([1.0, 1.0])
    assert checkerboard_energy(stripes).item() == pytest.approx(1.0)
    assert checkerboard_energy(smooth).item() < 1e-10
    assert checkerboard_energy(torch.full((1, 1, 8, 8), 0.3)).item() == 0.0
    # a faint checkerboard on a smooth image: its share of the power, whatever the image's value range
    mixed = smooth + 0.1 * (board[:1, :1] * 2 - 1)
    assert 0.01 < checkerboard_energy(mixed).item() < 0.5
    assert checkerboard_energy(mixed * 255 + 7).item() == pytest.approx(checkerboard_energy(mixed).item())
    with pytest.raises(ValueError, match="even H and W"):
        checkerboard_energy(torch.zeros(1, 1, 7, 8))


def test_upsample_is_a_validated_config_key_of_every_generator():
    for model in ("cgan", "pix2pix", "cyclegan"):
        data = [] if model == "cgan" else ["data=aligned" if model == "pix2pix" else "data=unaligned", "data.root=x"]
        cfg = helpers.train_config(f"model={model}", *data)
        assert str(cfg.model.generator.upsample) == "transposed"
        cfg = helpers.train_config(f"model={model}", *data, "model.generator.upsample=resize_conv")
        assert str(cfg.model.generator.upsample) == "resize_conv"
        with pytest.raises(ConfigError, match=r"model.generator.upsample: .*bilinear.*\[transposed, resize_conv\]"):
            check_command_line("train", [f"model={model}", *data, "model.generator.upsample=bilinear"])


def test_antialiased_upsampling_and_resize_conv_are_one_choice():
    # CUT upsamples with blur layers (antialias_up=true): the preset's resize_conv is refused before any build
    with pytest.raises(
        ConfigError, match=r"model.generator.upsample=resize_conv and model.generator.antialias_up=true .*antialias_up=false"
    ):
        helpers.train_config("model=cut", "data=unaligned", "data.root=x", "experiment=resize_conv")
    cfg = helpers.train_config("model=cut", "data=unaligned", "data.root=x", "experiment=resize_conv", "model.generator.antialias_up=false")
    assert str(cfg.model.generator.upsample) == "resize_conv"
    with pytest.raises(ConfigError, match="antialias_up=true each replace"):
        build_generator(GeneratorConfig(arch="resnet_6blocks", antialias_up=True, upsample=Upsample.resize_conv), 3, 3)
