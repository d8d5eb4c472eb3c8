"""The speed settings train the same thing: a step with torch.compile or channels_last gives the eager step's
weights (to rounding), the fused Adam the default Adam's, and a fused Adam leaves a non-finite update out
on the device. Speed itself is measured by scripts/benchmark.py, never here."""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import helpers
from _models_helpers import CPU, CUT_16, SMALL_CYCLEGAN, SMALL_NETS, write_folder
from translate.training import speed
from translate.training.engine import Trainer

SIZE = 16  # SMALL_CYCLEGAN's
LR = 2e-4

needs_compiler = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="torch.compile on the CPU needs a C compiler"
)


@pytest.fixture(scope="module")
def unaligned(tmp_path_factory):
    root = tmp_path_factory.mktemp("unaligned")
    write_folder(root / "trainA", 4, SIZE, seed=0, prefix="a")
    write_folder(root / "trainB", 4, SIZE, seed=1, prefix="b", invert=True)
    return root


def cyclegan(root, model: list[str] = SMALL_CYCLEGAN) -> list[str]:
    """A 1-block ResNet CycleGAN with 2-layer PatchGANs on 16 px images: every layer kind of the real one
    (``model``: another model's such overrides, on the same data)."""
    return [
        *CPU,
        *model,
        f"data.root={root}",
        "trainer.batch_size=2",
        "trainer.val_every_n_epochs=null",
        f"model.optim.lr={LR}",
        "logger=none",
    ]


def one_step(tmp_path, name: str, *overrides: str):
    trainer = Trainer(helpers.train_config(*overrides), tmp_path / name)
    trainer.build()
    trainer.model.train()
    batch = next(iter(trainer.loader))
    torch.manual_seed(1)  # the same noise and pool draws for every variant
    losses = trainer.train_step(batch)
    weights = {
        f"{net}.{k}": v.detach().float().contiguous().clone()
        for net, m in trainer.model.networks.items()
        for k, v in m.state_dict().items()
    }
    return trainer, losses, weights


def assert_same_step(eager, fast):
    """Same losses to float rounding, and the same weights: Adam's first update is lr * g / (|g| + eps), so a
    weight can differ by at most 2 lr where a gradient component near 0 changed sign under another
    summation order; almost all match to rounding."""
    (_, losses_a, weights_a), (_, losses_b, weights_b) = eager, fast
    for key in losses_a:
        torch.testing.assert_close(losses_b[key], losses_a[key], rtol=1e-4, atol=1e-5, msg=key)
    assert weights_a.keys() == weights_b.keys()
    diffs = torch.cat([(weights_a[k] - weights_b[k]).abs().flatten() for k in weights_a])
    assert diffs.max() <= 2 * LR + 1e-5, diffs.max()
    assert (diffs <= 1e-5).float().mean() >= 0.99, (diffs > 1e-5).sum()


def test_channels_last_step_gives_the_eager_weights(tmp_path, unaligned):
    eager = one_step(tmp_path, "eager", *cyclegan(unaligned))
    fast = one_step(tmp_path, "cl", *cyclegan(unaligned), "device.channels_last=true")
    assert next(fast[0].model.networks["G_A"].parameters()).dim() == 4
    assert_same_step(eager, fast)


@needs_compiler
@pytest.mark.parametrize("model", [SMALL_CYCLEGAN, [*CUT_16, *SMALL_NETS]], ids=["cyclegan", "cut"])
def test_compiled_channels_last_step_gives_the_eager_weights(tmp_path, unaligned, monkeypatch, model):
    # A private inductor cache: entries another run left in /tmp must not decide whether this one passes.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    eager = one_step(tmp_path, "eager", *cyclegan(unaligned, model))
    fast = one_step(tmp_path, "compiled", *cyclegan(unaligned, model), "device.compile=true", "device.channels_last=true")
    # nn.Module.compile wraps the forward in place: the module is the same, its calls go through dynamo.
    assert all(net._compiled_call_impl is not None for net in fast[0].model.networks.values())
    assert_same_step(eager, fast)
    # The checkpoint holds the plain networks' keys, so that an eager run (or translate-test) can load it.
    saved = helpers.load_ckpt(fast[0].state.save("latest.pt"))
    assert {net: set(w) for net, w in saved["networks"].items()} == {
        net: {k.split(".", 1)[1] for k in eager[2] if k.startswith(f"{net}.")} for net in saved["networks"]
    }


def test_the_engine_uses_fused_adam_on_the_cpu(tmp_path):
    trainer = Trainer(helpers.train_config(*helpers.TINY, "logger=none"), tmp_path / "run")
    trainer.build()
    assert all(g["fused"] for opt in trainer.optimizers.values() for g in opt.param_groups)
    assert all(speed.supports_found_inf(opt) for opt in trainer.optimizers.values())


def test_fused_adam_updates_as_the_default_adam_does():
    torch.manual_seed(0)
    plain = [torch.nn.Parameter(torch.randn(64, 32)), torch.nn.Parameter(torch.randn(32))]
    fused = [torch.nn.Parameter(p.detach().clone()) for p in plain]
    opt_plain = torch.optim.Adam(plain, lr=LR, betas=(0.5, 0.999))
    opt_fused = speed.build_adam(fused, lr=LR, betas=(0.5, 0.999))
    assert opt_fused.param_groups[0]["fused"]
    for _ in range(5):
        for a, b in zip(plain, fused):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        opt_plain.step()
        opt_fused.step()
    for a, b in zip(plain, fused):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


def test_a_conditional_step_leaves_everything_as_it_was_when_not_finite():
    p = torch.nn.Parameter(torch.randn(8, 8))
    opt = speed.build_adam([p], lr=LR)
    p.grad = torch.randn_like(p)
    speed.conditional_step(opt, torch.tensor(True))
    before = p.detach().clone()
    moments = {k: v.clone() for k, v in opt.state[p].items()}
    p.grad = torch.full_like(p, float("nan"))
    speed.conditional_step(opt, torch.tensor(False))
    assert torch.equal(p.detach(), before)
    for key, value in opt.state[p].items():
        assert torch.equal(value, moments[key]), key
    assert not hasattr(opt, "found_inf")
    assert speed.read_flags([("G", torch.tensor(True)), ("D", torch.tensor(False))]) == ["D"]


def test_a_resumed_unfused_optimiser_becomes_fused():
    p = torch.nn.Parameter(torch.randn(4))
    plain = torch.optim.Adam([p], lr=LR)
    p.grad = torch.randn_like(p)
    plain.step()
    opt = speed.build_adam([p], lr=LR)
    opt.load_state_dict(plain.state_dict())
    assert not opt.param_groups[0]["fused"]
    speed.keep_fused(opt)
    assert opt.param_groups[0]["fused"]
    opt.step()
    assert opt.state[p]["step"].item() == 2


def test_the_benchmark_suite_runs_a_case_end_to_end_with_each_runner_freed_before_the_next(tmp_path, monkeypatch):
    """``make bench`` is the one prepared command a GPU session runs: a tiny CycleGAN case goes through every
    part of it (both baselines, an engine setting, the loader alone, the test loop, the Markdown table), each
    runner in a process of its own. Every row has its peak memory, and when each runner was started, no
    earlier runner's process (the reference's, which the settings are paired with, excepted) still held
    memory: /proc says so, not the suite's bookkeeping."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    benchmark = importlib.import_module("benchmark")
    case = benchmark.Case("tiny", "cyclegan", SIZE, 1, overrides=[o for o in SMALL_CYCLEGAN if o.startswith("model.")], steps=1)
    args = argparse.Namespace(quick=True, settings="engine fp32", windows=2, warmup=0, loader_batches=2)
    watch = benchmark.MemoryWatch()
    try:
        result = benchmark.run_case(case, "cpu", tmp_path, args, watch)
    finally:
        watch.stop()
    rows = {row["setting"]: row for row in result["train"]}
    assert rows["baseline: reference"]["speedup_vs_baseline"] == 1.0
    assert rows["engine fp32"]["images_per_s"] > 0 and len(rows["engine fp32"]["windows_s_per_image"]) == 2
    assert "baseline: copy-paste (no freezing, Adam per network)" in rows and "engine bf16" not in rows
    assert result["loader"]["images_per_s"] > 0 and result["loader"]["num_workers"] >= 0
    assert [row["setting"] for row in result["test"]] == ["test baseline: batch-1 eager loop", "test: translate-test loop (batch 8)"]
    measured = list(rows.values()) + result["test"]
    for row in measured:
        # Peak RSS covers the build and the steps: above what the imports alone took, never below.
        assert row["peak_rss_gb"] >= row["rss_before_build_gb"] > 0, row
        assert row["peak_cuda_gb"] is None, row
        assert row["earlier_runners_resident_gb_at_start"] == 0, row
    assert result["peak_all_processes_gb"] >= max(row["peak_rss_gb"] for row in measured)
    seen = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu", "cuda_name": None}
    report = {"command": "test", "machine": benchmark.machine(seen), "cases": [result], "peak_all_processes_gb": 1.0}
    table = benchmark.markdown(report)
    assert f"| {rows['engine fp32']['peak_rss_gb']:.2f} | - |" in table


def test_the_paper_settings_memory_check_reads_the_training_process_peak(tmp_path):
    """scripts/bench_memory.py, the one command that says whether a machine can train a model, runs
    translate-train and reports the training process's own peak resident memory, not its own (it never
    loads torch), and that of all the training's processes together: pix2pix at its paper setting, 1 step."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_memory.py"
    subprocess.run([sys.executable, str(script), "--models", "pix2pix", "--steps", "1", "--out", str(tmp_path), "logger=none"], check=True)
    (result,) = json.loads((tmp_path / "memory.json").read_text())["models"]
    # The U-Net's 54 M parameters, their gradients and Adam's two moments take 0.87 GB beyond what Python and
    # torch take (0.7 GB or more): the script's own process, which loads neither, holds under 0.1 GB.
    assert result["peak_rss_training_process_gb"] > 1.5, result
    assert result["peak_rss_sum_all_processes_gb"] > 1.5, result
    assert "device=cpu" in result["overrides"] and "trainer.max_steps=1" in result["overrides"]
    assert "| pix2pix, 256 px, batch 1 | 1 |" in (tmp_path / "memory.md").read_text()


def test_the_precision_check_reads_fp32_seed_noise_and_flags_a_setting_outside_it(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    precision = importlib.import_module("bench_precision")
    overrides = [*helpers.TINY, "logger=none", "data.num_workers=0"]
    curves = [precision.losses_of_a_run([*overrides, f"seed={s}"], 3, tmp_path / f"s{s}") for s in (0, 1, 0)]
    assert set(curves[0]) == {"loss_D/real", "loss_D/fake", "loss_G/gan"} and all(len(v) == 3 for v in curves[0].values())
    assert curves[2] == curves[0] and curves[1] != curves[0]  # a run is its seed's: the spread is the seeds'
    fp32 = [{"loss": [1.0, 1.2]}, {"loss": [1.1, 1.3]}, {"loss": [0.9, 1.1]}]  # means 1.1, 1.2, 1.0: std 0.1
    rows = precision.compare(fp32, {"close": {"loss": [1.3, 1.3]}, "far": {"loss": [1.45, 1.45]}})
    assert [(r["setting"], r["deviation_in_std"], r["within_noise"]) for r in rows] == [("close", 2.0, True), ("far", 3.5, False)]
