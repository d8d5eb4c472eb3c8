"""What only an NVIDIA GPU can prove: the device=cuda preset (bf16 autocast and channels_last), fp16 with a
gradient scaler, torch.compile, and several processes over NCCL, each training every model on CUDA.
Skipped on machines without CUDA; the CPU versions of these paths are in test_engine, test_speed and
test_distributed."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List

import pytest
import torch

from _models_helpers import EXACT_PIX2PIX, TINY_CUT, TINY_CYCLEGAN, TINY_PIX2PIX, write_image_data
from helpers import BIN, TINY, cli_env, load_ckpt, run_cli, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

QUIET = ["data.num_workers=0", "trainer.progress_bar=false", "logger=none", "trainer.val_every_n_epochs=null"]


def overrides(model: str, root: Path) -> List[str]:
    """A tiny run of ``model`` (its data written under ``root``), without a device."""
    if model == "cgan":
        return [o for o in TINY if not o.startswith("device=")] + QUIET
    write_image_data(root, "train", 4, 4, 4)
    data = root / ("pairs" if model == "pix2pix" else "folders")
    return [*{"pix2pix": TINY_PIX2PIX, "cyclegan": TINY_CYCLEGAN, "cut": TINY_CUT}[model], f"data.root={data}", *QUIET]


def assert_finite(state: dict) -> None:
    for net, weights in state["networks"].items():
        for key, value in weights.items():
            assert not value.is_floating_point() or (value.dtype == torch.float32 and torch.isfinite(value).all()), f"{net}.{key}"


@pytest.mark.parametrize("model", ["cgan", "pix2pix", "cyclegan", "cut"])
def test_cuda_preset_trains_in_bf16_with_channels_last(model, tmp_path):
    trainer = train(tmp_path / "run", *overrides(model, tmp_path), "device=cuda", "trainer.max_steps=3")
    assert trainer.device.type == "cuda" and trainer.stepper.dtype == torch.bfloat16
    convs = [m for m in trainer.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and all(m.weight.is_cuda and m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    conv = next(m for m in convs if isinstance(m, torch.nn.Conv2d))
    with trainer.stepper.autocast():
        out = conv(torch.randn(2, conv.in_channels, 16, 16, device="cuda").contiguous(memory_format=torch.channels_last))
    assert out.dtype == torch.bfloat16
    state = load_ckpt(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert state["step"] == 3
    assert_finite(state)  # master weights stay fp32 under autocast


@pytest.mark.parametrize("model", ["cgan", "pix2pix", "cyclegan", "cut"])
def test_fp16_trains_with_a_gradient_scaler(model, tmp_path):
    train(tmp_path / "run", *overrides(model, tmp_path), "device=cuda", "device.amp=fp16", "trainer.max_steps=3")
    state = load_ckpt(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert state["step"] == 3 and state["scaler"]["scale"] > 0
    assert_finite(state)


@pytest.mark.parametrize("model", ["cgan", "pix2pix", "cyclegan", "cut"])
def test_compiled_networks_train_on_cuda(model, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    trainer = train(tmp_path / "run", *overrides(model, tmp_path), "device=cuda", "device.compile=true", "trainer.max_steps=2")
    assert all(net._compiled_call_impl is not None for net in trainer.model.networks.values())
    state = load_ckpt(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert state["step"] == 2 and not any("_orig_mod" in k for w in state["networks"].values() for k in w)
    assert_finite(state)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_train_like_one_with_twice_the_batch(tmp_path):
    write_image_data(tmp_path, "train", 8, 2, 2)
    exact = [
        *EXACT_PIX2PIX,
        f"data.root={tmp_path / 'pairs'}",
        "device=cuda",
        "device.amp=off",
        "device.channels_last=false",
        "device.deterministic=true",
    ]
    one = run_cli("translate-train", *exact, "trainer.batch_size=4", "logger=none", "hydra.run.dir=one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [
            str(BIN / "torchrun"),
            "--standalone",
            "--nproc_per_node=2",
            "--no-python",
            str(BIN / "translate-train"),
            *exact,
            "trainer.batch_size=2",
            "logger=none",
            "hydra.run.dir=two",
        ],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    a, b = (load_ckpt(tmp_path / run / "checkpoints" / "latest.pt") for run in ("one", "two"))
    for net, weights in a["networks"].items():
        for key, value in weights.items():
            torch.testing.assert_close(b["networks"][net][key], value, atol=1e-5, rtol=0, msg=f"{net}.{key}")
