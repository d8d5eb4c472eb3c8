"""The benchmark suite: training and test throughput of every speed setting, as ratios to a baseline measured
side by side in the same run.

For each case (CycleGAN 128 and 256, pix2pix 256, the cGAN at 32) it builds, in one process:

- ``baseline: reference``: the authors' reference training step as its users run it, written here as a plain
  loop over translate's networks (``translate.networks`` builders, the same weights init), independent of our
  engine: eager fp32, NCHW, the reference's update order (discriminators frozen in the generator step, one
  Adam for both generators and one for both discriminators), no AMP, channels_last or compile;
- ``baseline: copy-paste``: the common variant of that loop: nothing frozen, one Adam per network;
- ``engine ...``: ``translate-train``'s own step (``Trainer.build()`` + ``Trainer.train_step``) with each
  speed setting: fp32, channels_last, bf16 / fp16 autocast, torch.compile, a larger batch.

Every runner is warmed up first (compilation, cuDNN autotuning, allocator), then the runners take turns:
window 1 of every runner, window 2 of every runner, ... so that a machine whose load changes (a shared CPU)
slows them alike. A figure is the median over the windows; a ratio is the median over windows of
baseline time / runner time per image, each pair measured in the same round. Test time: translate-test's
evaluation loop (``translate.evaluation.loop.evaluate`` with the protocol's per-image metrics, batch 8)
against a batch-1 eager loop over the same images. The data loader alone: images/s of the engine's
``DataLoader`` (synthetic PNGs on disk, the configured workers), to show where input saturates.

Settings a device lacks are listed as skipped, with the reason. Writes ``benchmark.json`` and
``benchmark.md`` to ``--out``:

    python scripts/benchmark.py                    # the full suite on the GPU (about 10 minutes)
    python scripts/benchmark.py --quick            # the CPU subset (about 15 minutes on 2 cores)
    python scripts/benchmark.py --quick --only cyclegan128   # one case
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from translate.cli.app import register_schemas
from translate.cli.compose import compose_config
from translate.data.registry import build_dataset
from translate.evaluation.loop import evaluate
from translate.evaluation.protocols import protocol_for
from translate.models.base import build_model
from translate.networks.discriminators import ConditionalDiscriminator, build_discriminator
from translate.networks.generators import ConditionalGenerator, build_generator
from translate.networks.init import init_weights
from translate.settings.schema import TrainConfig
from translate.settings.validate import validate_train
from translate.training.engine import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import make_images  # noqa: E402  (a sibling script, not a package)

# -- the cases ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    model: str
    size: int
    batch: int
    #: translate-train overrides beyond the model, the data and the size.
    overrides: List[str] = field(default_factory=list)
    #: Steps (or test images) per timed window.
    steps: int = 10


def cases(quick: bool) -> List[Case]:
    if quick:
        # The 2-core CPU: CycleGAN 256 and pix2pix at batch > 1 would take the whole budget alone.
        return [
            Case("cyclegan128", "cyclegan", 128, 1, steps=1),
            Case("pix2pix256", "pix2pix", 256, 1, steps=1),
            Case("cgan32", "cgan", 32, 64, steps=2),
        ]
    # CycleGAN 256 first: the GPU targets are its figures, and a run cut short keeps the cases it finished.
    return [
        Case("cyclegan256", "cyclegan", 256, 1),
        Case("pix2pix256", "pix2pix", 256, 1),
        Case("cyclegan128", "cyclegan", 128, 1),
        Case("cgan32", "cgan", 32, 64, steps=20),
    ]


@dataclass
class Setting:
    name: str
    overrides: List[str]
    #: batch size multiplier over the case's batch
    batch_factor: int = 1
    #: why it does not run on this device, or None
    skip: Optional[str] = None


def settings(device: torch.device, quick: bool) -> List[Setting]:
    cuda = device.type == "cuda"
    cpu_fp16 = None if cuda else "fp16 autocast on the CPU: no fast kernels (and GradScaler is a GPU tool); CUDA only"
    rows = [
        Setting("engine fp32", []),
        Setting("engine channels_last", ["device.channels_last=true"]),
        Setting("engine bf16", ["device.amp=bf16"]),
        Setting("engine bf16 + channels_last", ["device.amp=bf16", "device.channels_last=true"]),
        Setting("engine fp16 + channels_last", ["device.amp=fp16", "device.channels_last=true"], skip=cpu_fp16),
        Setting("engine compile", ["device.compile=true"]),
        Setting("engine compile + channels_last", ["device.compile=true", "device.channels_last=true"]),
        Setting("engine compile + bf16 + channels_last", ["device.compile=true", "device.amp=bf16", "device.channels_last=true"]),
        Setting("engine bf16 + channels_last (batch x4)", ["device.amp=bf16", "device.channels_last=true"], batch_factor=4),
        # Batch 1 leaves most of a large GPU idle; 16 images a step show the rate of a busy one.
        Setting(
            "engine compile + bf16 + channels_last (batch x16)",
            ["device.compile=true", "device.amp=bf16", "device.channels_last=true"],
            batch_factor=16,
            skip=None if cuda else "a GPU-sized batch: on a CPU, batch x4 shows the same effect",
        ),
        Setting(
            "CUDA graphs",
            [],
            skip="not offered: the image pools and the non-finite checks run on the host between the updates" if cuda else "CUDA only",
        ),
    ]
    if quick:
        # Each compiled variant costs minutes of compilation on 2 cores; keep the ones that tell something.
        keep = {
            "engine fp32",
            "engine channels_last",
            "engine bf16",
            "engine bf16 + channels_last",
            "engine fp16 + channels_last",
            "engine compile",
            "engine compile + bf16 + channels_last",
            "CUDA graphs",
        }
        rows = [s for s in rows if s.name in keep]
    return rows


# -- configs and data --------------------------------------------------------------------------------------


def compose_train(overrides: List[str]) -> TrainConfig:
    register_schemas()
    return validate_train(compose_config("train", overrides))


def case_overrides(case: Case, data_dir: Path, device: torch.device) -> List[str]:
    """The translate-train overrides of a case: the model, synthetic data of its size, nothing logged."""
    common = [
        f"model={case.model}",
        f"device={device.type}",
        f"trainer.batch_size={case.batch}",
        "logger=none",
        "trainer.progress_bar=false",
        "trainer.val_every_n_epochs=null",
        # The image grid every 1,000 steps is not part of a step; it would land in one window at random.
        "trainer.image_every_n_steps=1000000",
        f"paths.output_dir={data_dir}/out",
    ]
    if case.model == "cgan":
        return [*common, "data=mnist_subset", f"data.image_size={case.size}"]
    root = data_dir / case.name
    if not root.exists():
        make_images(root, case.model, case.size, 16)
    data = ["data=aligned" if case.model == "pix2pix" else "data=unaligned", f"data.root={root}"]
    return [*common, *data, f"data.load_size={case.size}", f"data.crop_size={case.size}", *case.overrides]


# -- runners: one training step (or one test window) per call ----------------------------------------------


class Runner:
    name: str
    images_per_call: int
    #: bytes of device memory at its peak over building and warm-up, above what was allocated before it
    peak_bytes: Optional[int] = None

    def __call__(self) -> None:
        raise NotImplementedError


class ReferencePool:
    """The reference's image pool (pool_size 50): half the time a stored fake is returned in place of the new one."""

    def __init__(self, size: int = 50) -> None:
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.random() > 0.5:
                i = random.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


def _adam(params: Any, cfg: Any) -> torch.optim.Adam:
    # The default Adam, as the reference builds it (no fused or foreach choice).
    return torch.optim.Adam(params, lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2))


def _freeze(nets: List[torch.nn.Module], frozen: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(not frozen)


class BaselineRunner(Runner):
    """The reference training step as a plain eager loop. ``reference``: discriminators frozen during the
    generator update, one Adam per group; else (``copy-paste``): nothing frozen, one Adam per network."""

    def __init__(self, cfg: Any, case: Case, device: torch.device, reference: bool) -> None:
        self.name = "baseline: reference" if reference else "baseline: copy-paste (no freezing, Adam per network)"
        self.images_per_call = case.batch
        self.reference = reference
        m = cfg.model
        self.model = case.model
        gen = torch.Generator().manual_seed(0)
        if case.model == "cgan":
            g, d = m.generator, m.discriminator
            self.nets = {
                "G": init_weights(ConditionalGenerator(m.z_dim, m.num_classes, 1, case.size, g.ngf), g.init_type, g.init_gain),
                "D": init_weights(ConditionalDiscriminator(1, m.num_classes, case.size, d.ndf, d.norm), d.init_type, d.init_gain),
            }
            self.z_dim = m.z_dim
            self.batch = {
                "image": torch.rand(case.batch, 1, case.size, case.size, generator=gen) * 2 - 1,
                "label": torch.randint(0, m.num_classes, (case.batch,), generator=gen),
            }
        elif case.model == "pix2pix":
            self.nets = {"G": build_generator(m.generator, 3, 3), "D": build_discriminator(m.discriminator, 6)}
            self.batch = {k: torch.rand(case.batch, 3, case.size, case.size, generator=gen) * 2 - 1 for k in "AB"}
        else:
            self.nets = {
                "G_A": build_generator(m.generator, 3, 3),
                "G_B": build_generator(m.generator, 3, 3),
                "D_A": build_discriminator(m.discriminator, 3),
                "D_B": build_discriminator(m.discriminator, 3),
            }
            self.batch = {k: torch.rand(case.batch, 3, case.size, case.size, generator=gen) * 2 - 1 for k in "AB"}
            self.pools = {"A": ReferencePool(m.pool_size), "B": ReferencePool(m.pool_size)}
        for net in self.nets.values():
            net.to(device).train()
        self.batch = {k: v.to(device) for k, v in self.batch.items()}
        self.cfg = m
        gens = [n for n in self.nets if n.startswith("G")]
        discs = [n for n in self.nets if n.startswith("D")]
        if reference:
            self.opts = {
                "G": _adam([p for n in gens for p in self.nets[n].parameters()], m),
                "D": _adam([p for n in discs for p in self.nets[n].parameters()], m),
            }
        else:
            self.opts = {n: _adam(self.nets[n].parameters(), m) for n in self.nets}
        self.gens, self.discs = gens, discs

    def _zero(self, names: List[str]) -> None:
        for key in ["G" if names is self.gens else "D"] if self.reference else names:
            self.opts[key].zero_grad()

    def _update(self, names: List[str]) -> None:
        for key in ["G" if names is self.gens else "D"] if self.reference else names:
            self.opts[key].step()

    def _freeze_discs(self, frozen: bool) -> None:
        if self.reference:
            _freeze([self.nets[n] for n in self.discs], frozen)

    def __call__(self) -> None:
        getattr(self, f"_{self.model}")()

    def _cyclegan(self) -> None:
        n, m, A, B = self.nets, self.cfg, self.batch["A"], self.batch["B"]
        fake_B = n["G_A"](A)
        rec_A = n["G_B"](fake_B)
        fake_A = n["G_B"](B)
        rec_B = n["G_A"](fake_A)
        self._freeze_discs(True)
        self._zero(self.gens)
        pred_A, pred_B = n["D_A"](fake_B), n["D_B"](fake_A)
        loss_G = (
            F.mse_loss(pred_A, torch.ones_like(pred_A))
            + F.mse_loss(pred_B, torch.ones_like(pred_B))
            + F.l1_loss(rec_A, A) * m.lambda_A
            + F.l1_loss(rec_B, B) * m.lambda_B
        )
        if m.lambda_identity > 0:
            loss_G = (
                loss_G
                + F.l1_loss(n["G_A"](B), B) * m.lambda_B * m.lambda_identity
                + F.l1_loss(n["G_B"](A), A) * m.lambda_A * m.lambda_identity
            )
        loss_G.backward()
        self._update(self.gens)
        self._freeze_discs(False)
        self._zero(self.discs)
        for D, real, fake in ((n["D_A"], B, self.pools["B"].query(fake_B)), (n["D_B"], A, self.pools["A"].query(fake_A))):
            pred_real, pred_fake = D(real), D(fake.detach())
            loss_D = (F.mse_loss(pred_real, torch.ones_like(pred_real)) + F.mse_loss(pred_fake, torch.zeros_like(pred_fake))) * 0.5
            loss_D.backward()
        self._update(self.discs)

    def _pix2pix(self) -> None:
        G, D, A, B = self.nets["G"], self.nets["D"], self.batch["A"], self.batch["B"]
        bce = F.binary_cross_entropy_with_logits
        fake_B = G(A)
        self._freeze_discs(False)
        self._zero(self.discs)
        pred_fake, pred_real = D(torch.cat([A, fake_B], 1).detach()), D(torch.cat([A, B], 1))
        ((bce(pred_fake, torch.zeros_like(pred_fake)) + bce(pred_real, torch.ones_like(pred_real))) * 0.5).backward()
        self._update(self.discs)
        self._freeze_discs(True)
        self._zero(self.gens)
        pred = D(torch.cat([A, fake_B], 1))
        (bce(pred, torch.ones_like(pred)) + F.l1_loss(fake_B, B) * self.cfg.lambda_L1).backward()
        self._update(self.gens)

    def _cgan(self) -> None:
        G, D = self.nets["G"], self.nets["D"]
        real, labels = self.batch["image"], self.batch["label"]
        bce = F.binary_cross_entropy_with_logits
        fake = G(torch.randn(real.size(0), self.z_dim, device=real.device), labels)
        self._zero(self.discs)
        pred_real, pred_fake = D(real, labels), D(fake.detach(), labels)
        (bce(pred_real, torch.ones_like(pred_real)) + bce(pred_fake, torch.zeros_like(pred_fake))).backward()
        self._update(self.discs)
        self._freeze_discs(True)
        self._zero(self.gens)
        pred = D(fake, labels)
        bce(pred, torch.ones_like(pred)).backward()
        self._update(self.gens)
        self._freeze_discs(False)


class EngineRunner(Runner):
    """translate-train's step: ``Trainer.build()`` and ``Trainer.train_step`` on batches the loader yielded
    (read once before timing, so the step alone is timed; the loader is measured on its own)."""

    def __init__(self, name: str, overrides: List[str], run_dir: Path) -> None:
        self.name = name
        cfg = compose_train(overrides)
        self.trainer = Trainer(cfg, run_dir)
        self.trainer.build()
        self.trainer.model.train()
        self.batches = []
        for batch in self.trainer.loader:
            self.batches.append(batch)
            if len(self.batches) == 4:
                break
        self.images_per_call = int(cfg.trainer.batch_size)
        self.calls = 0

    def __call__(self) -> None:
        self.trainer.train_step(self.batches[self.calls % len(self.batches)])
        self.calls += 1


class TestRunner(Runner):
    """Test time, a window of ``images`` test images. ``loop``: translate-test's evaluation loop (the model's
    ``translate``, the protocol's per-image metrics, batch 8); else a batch-1 eager loop over the same images."""

    def __init__(self, overrides: List[str], images: int, loop: bool, device: torch.device) -> None:
        cfg = compose_train(overrides)
        info = build_dataset(cfg.data, "train", train=False).info
        self.model = build_model(cfg.model, info).to(device).eval()
        self.protocol = protocol_for(self.model)
        # The datasets translate-test runs through (CycleGAN: the A images one way, the B images the other).
        self.datasets = self.protocol.datasets(self.model, cfg.data, "train")
        self.images, self.loop, self.device = images, loop, device
        self.name = "test: translate-test loop (batch 8)" if loop else "test baseline: batch-1 eager loop"
        self.images_per_call = images * len(self.datasets)

    def __call__(self) -> None:
        if self.loop:
            evaluate(self.model, self.protocol.metrics, self.datasets, 8, self.device, limit=self.images, progress=False)
            return
        with torch.no_grad():
            for dataset in self.datasets:
                for batch in DataLoader(dataset, batch_size=1, sampler=range(self.images)):
                    batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                    self.protocol.metrics(self.model.translate(batch))


# -- timing ------------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(make: Callable[[], Runner], device: torch.device, warmup: int) -> Runner:
    """Build a runner and warm it up, recording its device-memory peak above what others already hold."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    runner = make()
    started = time.perf_counter()
    for _ in range(warmup):
        runner()
    sync(device)
    print(f"   built {runner.name}; {warmup} warm-up call(s) in {time.perf_counter() - started:.1f} s", flush=True)
    sync(device)
    if device.type == "cuda":
        runner.peak_bytes = torch.cuda.max_memory_allocated() - before
    return runner


def interleaved(runners: List[Runner], windows: int, calls: int, device: torch.device) -> Dict[str, List[float]]:
    """Seconds per image of each runner, one list entry per window; the runners take turns every window."""
    times: Dict[str, List[float]] = {r.name: [] for r in runners}
    for _ in range(windows):
        for runner in runners:
            sync(device)
            started = time.perf_counter()
            for _ in range(calls):
                runner()
            sync(device)
            times[runner.name].append((time.perf_counter() - started) / (calls * runner.images_per_call))
            print(f"   {runner.name}: {times[runner.name][-1] * runner.images_per_call:.3f} s per call", flush=True)
    return times


def summarise(times: Dict[str, List[float]], baseline: str, runners: List[Runner]) -> List[Dict[str, Any]]:
    rows = []
    for runner in runners:
        own = times[runner.name]
        ratios = [b / t for b, t in zip(times[baseline], own)]
        rows.append(
            {
                "setting": runner.name,
                "images_per_s": round(1 / statistics.median(own), 3),
                "s_per_image": round(statistics.median(own), 4),
                "speedup_vs_baseline": round(statistics.median(ratios), 3),
                "windows_s_per_image": [round(t, 4) for t in own],
                "peak_mem_gb": None if runner.peak_bytes is None else round(runner.peak_bytes / 2**30, 3),
            }
        )
    return rows


def run_case(case: Case, device: torch.device, tmp: Path, args: Any) -> Dict[str, Any]:
    print(f"== {case.name}", flush=True)
    overrides = case_overrides(case, tmp, device)
    cfg = compose_train(overrides)
    warmup = args.warmup
    runners: List[Runner] = []
    skipped = []
    for reference in (True, False):
        runners.append(build(functools.partial(BaselineRunner, cfg, case, device, reference), device, warmup))
    for setting in settings(device, args.quick):
        if args.settings and setting.name not in args.settings.split(","):
            continue
        if setting.skip:
            skipped.append({"setting": setting.name, "skipped": setting.skip})
            continue
        if case.model == "cgan" and "channels_last" in setting.name and "compile" not in setting.name and args.quick:
            skipped.append({"setting": setting.name, "skipped": "--quick: left out to fit the CPU time budget"})
            continue
        batch = case.batch * setting.batch_factor
        extra = [*setting.overrides, f"trainer.batch_size={batch}"]
        run_dir = tmp / "runs" / f"{case.name}-{len(runners)}"
        # Compiled runners recompile on their first steps (train graphs, frozen-discriminator graphs).
        warm = warmup + (2 if "compile" in setting.name else 0)
        try:
            runners.append(build(functools.partial(EngineRunner, setting.name, [*overrides, *extra], run_dir), device, warm))
        except Exception as err:  # a setting the device refuses (e.g. bf16 on an old GPU) is a row, not a crash
            skipped.append({"setting": setting.name, "skipped": f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"})
            continue
    times = interleaved(runners, args.windows, case.steps, device)
    rows = summarise(times, runners[0].name, runners)
    result: Dict[str, Any] = {"case": case.name, "model": case.model, "size": case.size, "batch": case.batch, "train": rows + skipped}

    loader = next((r for r in runners if isinstance(r, EngineRunner)), None)
    if loader is not None and case.model != "cgan":
        result["loader"] = measure_loader(loader.trainer, args.loader_batches)
    del runners
    gc.collect()

    if case.model != "cgan":
        test_images = 2 if args.quick else 16
        tests = [build(functools.partial(TestRunner, overrides, test_images, loop, device), device, 1) for loop in (False, True)]
        test_times = interleaved(tests, args.windows, 1, device)
        result["test"] = summarise(test_times, tests[0].name, tests)
    return result


def measure_loader(trainer: Trainer, batches: int) -> Dict[str, Any]:
    """Images/s of the engine's DataLoader alone (decode, crop, flip, collate; its workers, pinned memory)."""
    loader = trainer.loader
    iterator = iter(loader)
    next(iterator)  # worker start-up is a one-off with persistent workers
    started, images = time.perf_counter(), 0
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        images += len(next(iter(batch.values())))
    elapsed = time.perf_counter() - started
    return {
        "images_per_s": round(images / elapsed, 1),
        "num_workers": loader.num_workers,
        "persistent_workers": loader.persistent_workers,
        "pin_memory": loader.pin_memory,
    }


# -- report ------------------------------------------------------------------------------------------------


def machine(device: torch.device) -> Dict[str, Any]:
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if device.type == "cuda":
        info["device"] = torch.cuda.get_device_name()
    else:
        info["device"] = f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
        try:
            name = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
            info["device"] = f"CPU: {name.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
        except (OSError, StopIteration):
            pass
    return info


def markdown(report: Dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Device: {m['device']}; torch {m['torch']}; {m['date']}; {m['threads']} threads; load average at start "
        f"{m['load_average_at_start']}, at end {m.get('load_average_at_end')}; command: `{report['command']}`",
        "",
        "| case | setting | images/s | x baseline (median of paired windows) | peak memory (GB) |",
        "|---|---|---:|---:|---:|",
    ]
    for case in report["cases"]:
        label = f"{case['case']} (batch {case['batch']})"
        for row in case["train"] + case.get("test", []):
            if "skipped" in row:
                lines.append(f"| {label} | {row['setting']} | skipped: {row['skipped']} | | |")
                continue
            mem = "n/a (CPU)" if row["peak_mem_gb"] is None else f"{row['peak_mem_gb']:.2f}"
            lines.append(f"| {label} | {row['setting']} | {row['images_per_s']:.3g} | {row['speedup_vs_baseline']:.2f} | {mem} |")
        if "loader" in case:
            ld = case["loader"]
            best = max(r["images_per_s"] for r in case["train"] if "images_per_s" in r)
            verdict = "not the bottleneck" if ld["images_per_s"] > 2 * best else "close to the training rate: input-bound"
            lines.append(
                f"| {label} | data loader alone ({ld['num_workers']} workers, persistent={ld['persistent_workers']}, pinned={ld['pin_memory']}) | "
                f"{ld['images_per_s']:.3g} | {verdict} | |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the CPU subset (fewer cases, settings and windows)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--only", default="", help="comma-separated case names (cyclegan128, cyclegan256, pix2pix256, cgan32)")
    parser.add_argument(
        "--settings", default="", help='comma-separated setting names to run (default: all), e.g. "engine fp32,engine compile"'
    )
    parser.add_argument("--windows", type=int, default=None, help="timed windows per runner (default 5, also with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls per runner (default 5, --quick 2)")
    parser.add_argument("--loader-batches", type=int, default=40)
    parser.add_argument("--out", default="benchmark", help="folder for benchmark.json and benchmark.md")
    args = parser.parse_args()
    args.windows = args.windows or 5
    # On the CPU a runner's first window after a single warm-up call took about twice its later ones
    # (allocator, oneDNN's kernel choice): two calls settle it.
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 5)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    wanted = {s for s in args.only.split(",") if s}
    unknown = wanted - {c.name for c in cases(False)}
    unknown |= {s for s in args.settings.split(",") if s} - {s.name for s in settings(device, False)}
    if unknown:
        parser.error(f"unknown case or setting names: {', '.join(sorted(unknown))}; see the names in scripts/benchmark.py")
    report: Dict[str, Any] = {"command": " ".join(["python scripts/benchmark.py", *sys.argv[1:]]), "machine": machine(device), "cases": []}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # A private inductor cache: the compile rows time this run's compilation, not another's leftovers.
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(tmp) / "inductor"))
        for case in cases(args.quick):
            if wanted and case.name not in wanted:
                continue
            report["cases"].append(run_case(case, device, Path(tmp), args))
            report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            report["wall_s"] = round(time.perf_counter() - started, 1)
            # Written after every case, so a run cut short keeps what it measured.
            (out / "benchmark.json").write_text(json.dumps(report, indent=2))
            (out / "benchmark.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {out / 'benchmark.json'} and {out / 'benchmark.md'} in {report.get('wall_s')} s")


if __name__ == "__main__":
    main()
