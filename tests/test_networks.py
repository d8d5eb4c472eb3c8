"""The pix2pix/CycleGAN networks match the reference layouts, so its checkpoints load and its settings hold."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from translate.errors import ConfigError
from translate.networks.configs import DiscriminatorConfig, GeneratorConfig, check_image_size, input_multiple
from translate.networks.discriminators import (
    NLayerDiscriminator,
    PixelDiscriminator,
    build_discriminator,
    receptive_field,
)
from translate.networks.generators import (
    ResnetGenerator,
    UnetGenerator,
    UnetSkipConnectionBlock,
    build_generator,
    generator_input_multiple,
)


def gen_cfg(**kw):
    return OmegaConf.structured(GeneratorConfig(**kw))


def disc_cfg(**kw):
    return OmegaConf.structured(DiscriminatorConfig(**kw))


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def layer_types(seq: nn.Sequential) -> list[type]:
    return [type(m) for m in seq]


# --- parameter counts from the reference ---------------------------------------------------------------


def test_unet_256_batch_norm_parameter_count():
    net = build_generator(gen_cfg(arch="unet_256", norm="batch", dropout=True), 3, 3)
    assert round(n_params(net) / 1000) == 54414


def test_resnet_9blocks_instance_norm_parameter_count():
    net = build_generator(gen_cfg(arch="resnet_9blocks", norm="instance"), 3, 3)
    assert n_params(net) == 11_378_179


def test_pix2pix_patchgan_parameter_count():
    assert n_params(build_discriminator(disc_cfg(arch="basic", norm="batch"), 6)) == 2_768_705


# --- state_dict keys ----------------------------------------------------------------------------------


def resnet_keys(n_blocks: int, ups: tuple[int, int], last: int) -> set[str]:
    names = [f"model.{i}" for i in (1, 4, 7, *ups, last)]
    names += [f"model.{b}.conv_block.{c}" for b in range(10, 10 + n_blocks) for c in (1, 5)]
    return {f"{n}.{p}" for n in names for p in ("weight", "bias")}


@pytest.mark.parametrize("n_blocks, ups, last", [(9, (19, 22), 26), (6, (16, 19), 23)])
def test_resnet_state_dict_keys_match_reference(n_blocks, ups, last):
    net = ResnetGenerator(3, 3, ngf=4, norm="instance", n_blocks=n_blocks)
    # instance norm has neither parameters nor buffers, so the keys are exactly the convolutions'
    assert set(net.state_dict()) == resnet_keys(n_blocks, ups, last)
    assert net.model[0].padding == (3, 3, 3, 3) and isinstance(net.model[0], nn.ReflectionPad2d)
    assert isinstance(net.model[ups[0]], nn.ConvTranspose2d) and net.model[ups[0]].output_padding == (1, 1)
    assert isinstance(net.model[-1], nn.Tanh)


def test_resnet_block_layout_and_dropout_position():
    plain = ResnetGenerator(3, 3, ngf=4, n_blocks=1).model[10]
    assert layer_types(plain.conv_block) == [
        nn.ReflectionPad2d,
        nn.Conv2d,
        nn.InstanceNorm2d,
        nn.ReLU,
        nn.ReflectionPad2d,
        nn.Conv2d,
        nn.InstanceNorm2d,
    ]
    dropped = ResnetGenerator(3, 3, ngf=4, n_blocks=1, dropout=True).model[10].conv_block
    assert isinstance(dropped[4], nn.Dropout) and dropped[4].p == 0.5
    assert isinstance(dropped[6], nn.Conv2d)


def test_resnet_padding_types():
    replicate = ResnetGenerator(3, 3, ngf=4, n_blocks=1, padding_type="replicate").model[10].conv_block
    assert isinstance(replicate[0], nn.ReplicationPad2d)
    zero = ResnetGenerator(3, 3, ngf=4, n_blocks=1, padding_type="zero").model[10].conv_block
    assert layer_types(zero) == [nn.Conv2d, nn.InstanceNorm2d, nn.ReLU, nn.Conv2d, nn.InstanceNorm2d]
    assert zero[0].padding == (1, 1)
    with pytest.raises(ValueError, match="padding_type='circular' is not supported; use one of reflect, replicate, zero"):
        ResnetGenerator(3, 3, ngf=4, n_blocks=0, padding_type="circular")


def unet_prefix(depth: int) -> str:
    """State-dict prefix of the U-Net block ``depth`` levels inside the outermost (depth >= 1)."""
    return "model.model.1.model." + "3.model." * (depth - 1)


def test_unet_state_dict_keys_match_reference():
    ngf = 2
    sd = UnetGenerator(3, 1, num_downs=8, ngf=ngf, norm="batch").state_dict()
    assert sd["model.model.0.weight"].shape == (ngf, 3, 4, 4)
    assert "model.model.0.bias" not in sd  # batch norm: convolutions carry no bias
    assert sd["model.model.3.weight"].shape == (2 * ngf, 1, 4, 4)
    assert sd["model.model.3.bias"].shape == (1,)
    assert sd["model.model.1.model.1.weight"].shape == (2 * ngf, ngf, 4, 4)
    for depth in range(1, 7):
        assert f"{unet_prefix(depth)}1.weight" in sd and f"{unet_prefix(depth)}5.weight" in sd
    inner = unet_prefix(7)
    assert sd[f"{inner}1.weight"].shape == (8 * ngf, 8 * ngf, 4, 4)
    assert sd[f"{inner}3.weight"].shape == (8 * ngf, 8 * ngf, 4, 4)
    assert f"{inner}4.running_mean" in sd
    assert not any(k.startswith(unet_prefix(8)) for k in sd)


def test_unet_innermost_layout_and_dropout_blocks():
    net = UnetGenerator(3, 3, num_downs=8, ngf=2, norm="batch", dropout=True)
    assert layer_types(net.model.model) == [nn.Conv2d, UnetSkipConnectionBlock, nn.ReLU, nn.ConvTranspose2d, nn.Tanh]
    inner = net.get_submodule(unet_prefix(7)[:-1])
    assert layer_types(inner) == [nn.LeakyReLU, nn.Conv2d, nn.ReLU, nn.ConvTranspose2d, nn.BatchNorm2d]
    middle = [nn.LeakyReLU, nn.Conv2d, nn.BatchNorm2d, UnetSkipConnectionBlock, nn.ReLU, nn.ConvTranspose2d, nn.BatchNorm2d]
    # dropout closes the num_downs - 5 = 3 blocks just outside the innermost
    for depth in range(1, 7):
        block = net.get_submodule(unet_prefix(depth)[:-1])
        assert layer_types(block) == middle + ([nn.Dropout] if depth >= 4 else [])


# --- forward shapes and size checks -------------------------------------------------------------------


def test_generators_keep_image_shape():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    unet = UnetGenerator(3, 1, num_downs=5, ngf=2)
    resnet = ResnetGenerator(3, 1, ngf=2, n_blocks=1)
    for net in (unet, resnet):
        y = net(x)
        assert y.shape == (2, 1, 32, 32) and y.abs().max() <= 1


def test_basic_discriminator_gives_30x30_patches_on_256():
    out = NLayerDiscriminator(6, ndf=2, n_layers=3)(torch.zeros(1, 6, 256, 256))
    assert out.shape == (1, 1, 30, 30)


def test_pixel_discriminator_layout_and_shape():
    net = PixelDiscriminator(3, ndf=4, norm="batch")
    assert layer_types(net.net) == [nn.Conv2d, nn.LeakyReLU, nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU, nn.Conv2d]
    assert net(torch.zeros(2, 3, 5, 7)).shape == (2, 1, 5, 7)


def test_patchgan_channel_multiplier_caps_at_8():
    net = NLayerDiscriminator(3, ndf=1, n_layers=5)
    convs = [m for m in net.model if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [1, 2, 4, 8, 8, 8, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 2, 2, 1, 1]


@pytest.mark.parametrize("n_layers, field", [(0, 1), (1, 16), (3, 70), (5, 286)])
def test_measured_receptive_fields(n_layers, field):
    net = build_discriminator(disc_cfg(arch="n_layers", n_layers=n_layers, ndf=1), 3)
    assert isinstance(net, PixelDiscriminator if n_layers == 0 else NLayerDiscriminator)
    assert receptive_field(net, 3, size=320) == field


def test_receptive_field_rejects_a_probe_too_small():
    with pytest.raises(ValueError, match="reaches the border of a 64x64 probe"):
        receptive_field(NLayerDiscriminator(3, ndf=1, n_layers=3), 3, size=64)


def test_unet_forward_rejects_sizes_it_cannot_halve():
    net = UnetGenerator(3, 3, num_downs=5, ngf=2)
    message = r"input of size 48x48 does not fit UnetGenerator\(num_downs=5\): image sides must be multiples of 32 \(e.g. 32, 64\)"
    with pytest.raises(ValueError, match=message):
        net(torch.zeros(1, 3, 48, 48))


def test_resnet_forward_rejects_sizes_not_divisible_by_4():
    with pytest.raises(ValueError, match=r"input of size 32x30 .* multiples of 4 \(e.g. 28, 32\)"):
        ResnetGenerator(3, 3, ngf=2, n_blocks=0)(torch.zeros(1, 3, 32, 30))


@pytest.mark.parametrize(
    "cfg, size, message",
    [
        (gen_cfg(arch="unet_256"), 250, "crop size 250 does not fit unet_256: image sides must be multiples of 256 (e.g. 256, 512)"),
        (
            gen_cfg(arch="resnet_9blocks"),
            250,
            "crop size 250 does not fit resnet_9blocks: image sides must be multiples of 4 (e.g. 248, 252)",
        ),
        (
            gen_cfg(arch="unet", num_downs=6),
            100,
            "crop size 100 does not fit unet (num_downs=6): image sides must be multiples of 64 (e.g. 64, 128)",
        ),
        # the default unet_256 names the generator settings that take the crop
        (
            gen_cfg(arch="unet_256"),
            128,
            "crop size 128 does not fit unet_256: image sides must be multiples of 256 (e.g. 256, 512); "
            "for 128 use model.generator.arch=unet_128",
        ),
        (
            gen_cfg(arch="unet_256"),
            96,
            "crop size 96 does not fit unet_256: image sides must be multiples of 256 (e.g. 256, 512); "
            "for 96 use model.generator.arch=unet model.generator.num_downs=5",
        ),
        (
            gen_cfg(arch="unet_256", num_downs=7),
            192,
            "crop size 192 does not fit unet (num_downs=7): image sides must be multiples of 128 (e.g. 128, 256); "
            "for 192 use model.generator.arch=unet model.generator.num_downs=6",
        ),
    ],
)
def test_check_image_size_messages(cfg, size, message):
    with pytest.raises(ConfigError) as err:
        check_image_size(cfg, size)
    assert str(err.value) == message


def test_check_image_size_accepts_fitting_sizes():
    check_image_size(gen_cfg(arch="unet_256"), 512)
    check_image_size(gen_cfg(arch="unet_128"), 128)
    check_image_size(gen_cfg(arch="resnet_6blocks"), 252)


def test_input_multiple_from_config_and_from_network():
    assert input_multiple(gen_cfg(arch="unet_128")) == 128
    assert input_multiple(gen_cfg(arch="resnet", n_blocks=2)) == 4
    assert generator_input_multiple(UnetGenerator(3, 3, num_downs=6, ngf=2)) == 64
    assert generator_input_multiple(ResnetGenerator(3, 3, ngf=2, n_blocks=0)) == 4


# --- factories -----------------------------------------------------------------------------------------


def count_blocks(net: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in net.modules())


@pytest.mark.parametrize(
    "overrides, family, depth",
    [
        ({"arch": "unet_256"}, UnetGenerator, 8),
        ({"arch": "unet_128"}, UnetGenerator, 7),  # preset beats the schema default num_downs=8
        ({"arch": "unet_128", "num_downs": 7}, UnetGenerator, 7),
        ({"arch": "unet", "num_downs": 6}, UnetGenerator, 6),
        ({"arch": "resnet_9blocks"}, ResnetGenerator, 9),
        ({"arch": "resnet_6blocks"}, ResnetGenerator, 6),  # preset beats the schema default n_blocks=9
        ({"arch": "resnet", "n_blocks": 3}, ResnetGenerator, 3),
        ({"arch": "unet", "num_downs": None}, UnetGenerator, 8),
        # a depth set explicitly wins over the one the preset implies
        ({"arch": "resnet_9blocks", "n_blocks": 6}, ResnetGenerator, 6),
        ({"arch": "resnet_6blocks", "n_blocks": 4}, ResnetGenerator, 4),
        ({"arch": "unet_256", "num_downs": 7}, UnetGenerator, 7),
        ({"arch": "unet_128", "num_downs": 6}, UnetGenerator, 6),
    ],
)
def test_build_generator_honours_presets(overrides, family, depth):
    net = build_generator(gen_cfg(ngf=1, norm="instance", **overrides), 3, 3)
    assert isinstance(net, family)
    if family is UnetGenerator:
        assert net.num_downs == depth and count_blocks(net, UnetSkipConnectionBlock) == depth
    else:
        assert sum(type(m).__name__ == "ResnetBlock" for m in net.model) == depth


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"arch": "unet_512"},
            "model.generator.arch='unet_512' is not known; choose one of: unet_256, unet_128, unet, resnet_9blocks, resnet_6blocks, resnet",
        ),
        (
            {"arch": "unet", "num_downs": 3},
            "model.generator.num_downs=3 is too small; the U-Net needs at least 5 (unet_128 uses 7, unet_256 uses 8)",
        ),
        (
            {"arch": "resnet", "padding_type": "circular"},
            "model.generator.padding_type='circular' is not supported; use one of reflect, replicate, zero",
        ),
    ],
)
def test_build_generator_rejects_conflicts_with_named_keys(overrides, message):
    with pytest.raises(ConfigError) as err:
        build_generator(gen_cfg(ngf=1, **overrides), 3, 3)
    assert str(err.value) == message


def test_build_discriminator_archs():
    assert len(build_discriminator(disc_cfg(arch="basic", ndf=1), 3).model) == 12  # 3 layers
    assert len(build_discriminator(disc_cfg(arch="n_layers", n_layers=1, ndf=1), 3).model) == 6
    assert isinstance(build_discriminator(disc_cfg(arch="pixel", ndf=1), 3), PixelDiscriminator)
    assert len(build_discriminator(disc_cfg(arch="n_layers", ndf=1), 3).model) == 12  # the family's default depth
    # n_layers set explicitly wins over the preset's 3
    assert len(build_discriminator(disc_cfg(arch="basic", n_layers=5, ndf=1), 3).model) == 18
    with pytest.raises(ConfigError, match="model.discriminator.n_layers=-1 is not supported"):
        build_discriminator(disc_cfg(arch="n_layers", n_layers=-1), 3)


def test_factories_apply_the_configured_init():
    g = build_generator(gen_cfg(arch="resnet", n_blocks=1, ngf=16, norm="batch", init_gain=0.3), 3, 3)
    weights = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert weights.mean().abs() < 0.01 and abs(weights.std().item() - 0.3) < 0.01
    assert all((m.bias == 0).all() for m in g.modules() if isinstance(m, nn.Conv2d) and m.bias is not None)
    bn = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1) < 0.05 and bn.std() > 0
    d = build_discriminator(disc_cfg(ndf=16, init_type="normal", init_gain=0.02), 3)
    assert abs(torch.cat([m.weight.flatten() for m in d.modules() if isinstance(m, nn.Conv2d)]).std().item() - 0.02) < 0.002
