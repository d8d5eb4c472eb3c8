"""Generators saved by the reference implementation, and safe loading of every checkpoint.

Reference files are built here from our own generators under the documented key names, with the stale
InstanceNorm buffers that old published CycleGAN files carry; translate-test must infer their
architecture, translate a folder with them exactly as the eager generator does, and refuse anything
that is not plain weights without running code from it.
"""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest
import torch
import torch.nn as nn

from _models_helpers import (
    as_input,
    as_png_levels,
    assert_test_outputs,
    png_error,
    read_metrics,
    read_png,
    train,
    translate_test,
    write_folder,
    write_pairs,
)
from helpers import compose_config, run_cli
from translate.cli.testing import load_trained, run_test
from translate.errors import CheckpointError, ConfigError
from translate.evaluation.image_metrics import l1
from translate.hub.reference import load_reference_generator
from translate.models.checkpoint import Checkpoint
from translate.networks.configs import DiscriminatorConfig
from translate.networks.discriminators import build_discriminator
from translate.networks.generators import ResnetGenerator, UnetGenerator
from translate.settings.validate import validate_test

SIZE = 32
SIZES = [f"data.load_size={SIZE}", f"data.crop_size={SIZE}", "data.num_workers=0", "device=cpu"]


def randomised(net: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter and BatchNorm statistic drawn at random, so that a key loaded into the wrong
    place (or not at all) changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * 0.4 + (0.8 if tensor.dim() == 1 else -0.2))
    return net.eval()


def with_stale_buffers(net: nn.Module, state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``state`` plus the running-stat buffers old PyTorch saved for every InstanceNorm layer of ``net``."""
    state = dict(state)
    for name, module in net.named_modules():
        if isinstance(module, nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.full((module.num_features,), 5.0)
            state[f"{name}.running_var"] = torch.full((module.num_features,), 9.0)
            state[f"{name}.num_batches_tracked"] = torch.tensor(7)
    return state


def save_state(state: Dict[str, torch.Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def tiny_resnet() -> ResnetGenerator:
    return randomised(ResnetGenerator(3, 3, ngf=8, norm="instance", n_blocks=2))


def expected_png(net: nn.Module, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return as_png_levels(net(as_input(image)))


def test_translate_test_runs_a_reference_resnet_file_and_infers_its_architecture(tmp_path):
    net = tiny_resnet()
    path = save_state(with_stale_buffers(net, net.state_dict()), tmp_path / "pretrained" / "tiny" / "latest_net_G.pth")
    photos = write_folder(tmp_path / "photos", 2, SIZE, seed=1, prefix="photo")

    # model=cyclegan says resnet_9blocks, ngf 64: the file's n_blocks 2, ngf 8 must win.
    proc = run_cli(
        "translate-test",
        f"checkpoint={path}",
        "model=cyclegan",
        "data=single",
        f"data.root={tmp_path / 'photos'}",
        *SIZES,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "n_blocks=2" in proc.stdout + proc.stderr

    out = path.parent / "test_latest_net_G"
    assert_test_outputs(out, {stem: ("real_A", "fake_B") for stem in photos})
    assert read_metrics(out) == {}
    for stem, image in photos.items():
        assert png_error(out / "images" / f"{stem}_fake_B.png", expected_png(net, image)) <= 1, stem


def test_unet_with_batch_norm_and_module_prefix_matches_eager_and_reports_paired_metrics(tmp_path):
    # num_downs 6: the smallest U-Net with a dropout block, so sides of 64.
    net = randomised(UnetGenerator(3, 3, num_downs=6, ngf=8, norm="batch", dropout=True), seed=3)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    path = save_state(state, tmp_path / "latest_net_G.pth")
    pairs = write_pairs(tmp_path / "pairs", "test", 3, 64, seed=2)

    sizes = ["data.load_size=64", "data.crop_size=64", "data.num_workers=0", "device=cpu"]
    cfg = compose_config("test", f"checkpoint={path}", "model=pix2pix", "data=aligned", f"data.root={tmp_path / 'pairs'}", *sizes)
    out = run_test(validate_test(cfg))

    assert out == tmp_path / "test_latest_net_G"
    assert_test_outputs(out, {stem: ("real_A", "fake_B", "real_B") for stem in pairs})
    fakes = {}
    for stem, a in pairs.items():
        with torch.no_grad():
            fakes[stem] = net(as_input(a))
        assert png_error(out / "images" / f"{stem}_fake_B.png", as_png_levels(fakes[stem])) <= 1, stem
    metrics = read_metrics(out)
    assert set(metrics) == {"L1", "PSNR", "SSIM"}
    assert all(m["num_images"] == 3 for m in metrics.values())
    expected_l1 = torch.cat([l1(fakes[s], as_input(255 - a)) for s, a in pairs.items()]).mean()
    assert metrics["L1"]["mean"] == pytest.approx(float(expected_l1), abs=1e-5)
    # The U-Net's dropout has no weights: it comes from model=pix2pix (true), used with eval_mode=paper.
    model = load_trained(cfg)[0]
    assert any(isinstance(m, nn.Dropout) for m in model.netG.modules())


@pytest.mark.parametrize(
    "make",
    [
        lambda: ResnetGenerator(1, 2, ngf=4, norm="instance", dropout=True, n_blocks=1),
        lambda: ResnetGenerator(1, 2, ngf=4, norm="batch", n_blocks=3, padding_type="zero"),
        lambda: ResnetGenerator(1, 2, ngf=4, norm="none", dropout=True, n_blocks=1, padding_type="zero"),
        lambda: UnetGenerator(1, 2, num_downs=5, ngf=4, norm="instance"),
        lambda: UnetGenerator(1, 2, num_downs=7, ngf=4, norm="none"),
    ],
    ids=["resnet-instance-dropout", "resnet-batch-zero-pad", "resnet-none-dropout-zero-pad", "unet-instance", "unet-none"],
)
def test_architecture_norm_dropout_padding_and_channels_come_from_the_keys(tmp_path, make):
    net = randomised(make(), seed=6)
    path = save_state(net.state_dict(), tmp_path / "latest_net_G.pth")
    # No config at all: every key that shapes the network must come from the file.
    loaded = load_reference_generator(path).eval()
    assert type(loaded) is type(net)
    assert [type(m) for m in loaded.modules()] == [type(m) for m in net.modules()]
    x = torch.rand(2, 1, 128, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6)


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory) -> Path:
    """A tiny CycleGAN run trained for one step (so its generators' biases are not all zero)."""
    root = tmp_path_factory.mktemp("cyclegan")
    for side in "AB":
        write_folder(root / "data" / f"train{side}", 2, SIZE, seed=4, prefix=side)
    train(
        root / "run",
        [
            "model=cyclegan",
            "data=unaligned",
            f"data.root={root / 'data'}",
            *SIZES,
            "logger=none",
            "trainer.max_steps=1",
            "model.generator.arch=resnet",
            "model.generator.n_blocks=1",
            "model.generator.ngf=8",
            "model.discriminator.ndf=8",
        ],
    )
    return root / "run"


def test_native_checkpoint_and_equivalent_reference_files_give_the_same_images(cyclegan_run, tmp_path):
    photos = write_folder(tmp_path / "photos", 2, SIZE, seed=5, prefix="p")
    data = ["data=single", f"data.root={tmp_path / 'photos'}", *SIZES]
    networks = Checkpoint.read(cyclegan_run).networks
    ref = {}
    for name in ("G_A", "G_B"):
        net = ResnetGenerator(3, 3, ngf=8, n_blocks=1)
        net.load_state_dict(networks[name])
        ref[name] = save_state(with_stale_buffers(net, networks[name]), tmp_path / "ref" / f"latest_net_{name}.pth")

    native_ab = translate_test(cyclegan_run, tmp_path / "native_ab", *data)
    native_ba = translate_test(cyclegan_run, tmp_path / "native_ba", *data, "data.direction=BtoA")
    # A reference file is the generator to apply, whatever its name: inputs are real_A, outputs fake_B.
    file_a = run_test(validate_test(compose_config("test", f"checkpoint={ref['G_A']}", *data)))
    file_b = run_test(validate_test(compose_config("test", f"checkpoint={ref['G_B']}", "model=cyclegan", *data)))

    for stem in photos:
        for native, visual, from_file in ((native_ab, "fake_B", file_a), (native_ba, "fake_A", file_b)):
            expected = read_png(native / "images" / f"{stem}_{visual}.png")
            assert np.array_equal(read_png(from_file / "images" / f"{stem}_fake_B.png"), expected), (stem, visual)
        # G_A and G_B differ, so the comparison above tells which generator a file was applied as.
        assert png_error(file_a / "images" / f"{stem}_fake_B.png", read_png(file_b / "images" / f"{stem}_fake_B.png")) > 0


def _drop(key: str) -> Callable[[Dict], Dict]:
    return lambda s: {k: v for k, v in s.items() if k != key}


def _reshape(key: str, shape) -> Callable[[Dict], Dict]:
    return lambda s: {**s, key: torch.zeros(shape)}


def _rename_block_conv(s: Dict) -> Dict:
    return {k.replace("conv_block.5.", "conv_block.7."): v for k, v in s.items()}


def _unet_too_shallow(_: Dict) -> Dict:
    state = UnetGenerator(3, 3, num_downs=5, ngf=8).state_dict()
    innermost = "model.model." + "1.model." + "3.model." * 3
    return {k: v for k, v in state.items() if not k.startswith(innermost)}


@pytest.mark.parametrize(
    "corrupt, needle",
    [
        (_drop("model.4.weight"), "missing model.4.weight"),
        (
            _reshape("model.10.conv_block.5.weight", (32, 32, 1, 1)),
            "model.10.conv_block.5.weight is [32, 32, 1, 1] in the file but [32, 32, 3, 3]",
        ),
        (_rename_block_conv, "model.generator.dropout"),
        (_unet_too_shallow, "model.generator.num_downs >= 5"),
        (lambda s: build_discriminator(DiscriminatorConfig(ndf=8), 3).state_dict(), "looks like a discriminator"),
        (lambda s: {"encoder.0.weight": torch.zeros(3)}, "not a reference ResNet or U-Net generator"),
        (lambda s: [s["model.1.weight"]], "not a generator state_dict"),
    ],
    ids=["missing", "shape", "block-layout", "unet-depth", "discriminator", "other-keys", "not-a-mapping"],
)
def test_a_file_that_does_not_fit_gives_one_line_naming_the_file_and_the_problem(tmp_path, corrupt, needle):
    path = save_state(corrupt(tiny_resnet().state_dict()), tmp_path / "latest_net_G.pth")
    with pytest.raises(CheckpointError) as err:
        load_reference_generator(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and needle in message, message


def test_translate_test_with_a_reference_file_needs_data(tmp_path):
    path = save_state(tiny_resnet().state_dict(), tmp_path / "latest_net_G.pth")
    with pytest.raises(ConfigError, match="data=single data.root="):
        run_test(validate_test(compose_config("test", f"checkpoint={path}", "device=cpu")))


class Payload:
    """Unpickling this makes a directory: what a hostile checkpoint would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


# torch notes that protocol 4 is unusual on its way to refusing the file.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control)))
    assert control.is_dir(), "the payload must really act when unpickled, or this test proves nothing"

    marker = tmp_path / "pwned"
    files = [tmp_path / "evil_torch.pth", tmp_path / "evil_p2.pth", tmp_path / "evil_p4.pth"]
    torch.save({"model.1.weight": Payload(marker)}, files[0])
    files[1].write_bytes(pickle.dumps({"model.1.weight": Payload(marker)}, protocol=2))
    files[2].write_bytes(pickle.dumps({"model.1.weight": Payload(marker)}, protocol=4))
    for path in files:
        for load in (load_reference_generator, Checkpoint.read):
            with pytest.raises(CheckpointError, match=str(path)):
                load(path)
    with pytest.raises(CheckpointError, match="posix.mkdir"):
        load_reference_generator(files[0])

    (tmp_path / "photos").mkdir()
    with pytest.raises(CheckpointError, match="refusing to load"):
        run_test(
            validate_test(compose_config("test", f"checkpoint={files[0]}", "data=single", f"data.root={tmp_path / 'photos'}", "device=cpu"))
        )
    assert not marker.exists()


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
        lambda p: p.write_bytes(b""),
        lambda p: (torch.save(tiny_resnet().state_dict(), p), p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])),
    ],
    ids=["random-bytes", "empty", "truncated"],
)
@pytest.mark.parametrize("load", [load_reference_generator, Checkpoint.read], ids=["reference", "native"])
def test_a_file_that_is_not_a_checkpoint_gives_a_checkpoint_error_naming_it(tmp_path, make, load):
    path = tmp_path / "latest_net_G.pth"
    make(path)
    with pytest.raises(CheckpointError) as err:
        load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_every_torch_load_in_the_package_is_weights_only():
    src = Path(__file__).resolve().parents[1] / "src" / "translate"
    calls = []
    for file in src.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
                if isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                    safe = any(
                        k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True for k in node.keywords
                    )
                    calls.append((f"{file.name}:{node.lineno}", safe))
    assert calls, "found no torch.load at all: the scan is broken"
    assert [where for where, safe in calls if not safe] == []
