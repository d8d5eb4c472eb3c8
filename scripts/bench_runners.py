"""One runner of scripts/benchmark.py, in a process of its own.

scripts/benchmark.py starts this script once per runner (``python bench_runners.py REPLY_FD``) and drives it
over pipes: the first message on stdin is the runner's spec (a dict of plain values), which it builds and
warms up; each later message is a command (``window``, ``memory``, ``loader``), answered on file descriptor
REPLY_FD (stdout stays free for the progress and warnings of the code it runs). End of stdin ends it. The
runners:

- ``reference``: the authors' reference training step as its users run it, written here as a plain loop over
  translate's networks (``translate.networks`` builders, the same weights init), independent of our engine:
  eager fp32, NCHW, the reference's update order (discriminators frozen in the generator step, one Adam for
  both generators and one for both discriminators), no AMP, channels_last or compile;
- ``copy-paste``: the common variant of that loop: nothing frozen, one Adam per network;
- ``engine``: ``translate-train``'s own step (``Trainer.build()`` + ``Trainer.train_step``) under the spec's
  overrides (a speed setting);
- ``test`` / ``test-loop``: a batch-1 eager test loop, and translate-test's evaluation loop;
- ``loader``: the engine's ``DataLoader`` alone.

``python bench_runners.py --about DEVICE`` prints the torch version, threads and device as one JSON line.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bench_memory import peak_rss_bytes
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

# -- configs and data --------------------------------------------------------------------------------------


def compose_train(overrides: List[str]) -> TrainConfig:
    """The typed config ``translate-train *overrides`` trains with."""
    register_schemas()
    return validate_train(compose_config("train", overrides))


# -- runners: one training step (or one test window) per call ----------------------------------------------


class Runner:
    name: str
    images_per_call: int

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

    def __init__(self, cfg: Any, model: str, size: int, batch: int, device: torch.device, reference: bool) -> None:
        self.name = "baseline: reference" if reference else "baseline: copy-paste (no freezing, Adam per network)"
        self.images_per_call = batch
        self.reference = reference
        m = cfg.model
        self.model = model
        gen = torch.Generator().manual_seed(0)
        if model == "cgan":
            g, d = m.generator, m.discriminator
            self.nets = {
                "G": init_weights(ConditionalGenerator(m.z_dim, m.num_classes, 1, size, g.ngf), g.init_type, g.init_gain),
                "D": init_weights(ConditionalDiscriminator(1, m.num_classes, size, d.ndf, d.norm), d.init_type, d.init_gain),
            }
            self.z_dim = m.z_dim
            self.batch = {
                "image": torch.rand(batch, 1, size, size, generator=gen) * 2 - 1,
                "label": torch.randint(0, m.num_classes, (batch,), generator=gen),
            }
        elif model == "pix2pix":
            self.nets = {"G": build_generator(m.generator, 3, 3), "D": build_discriminator(m.discriminator, 6)}
            self.batch = {k: torch.rand(batch, 3, size, size, generator=gen) * 2 - 1 for k in "AB"}
        else:
            self.nets = {
                "G_A": build_generator(m.generator, 3, 3),
                "G_B": build_generator(m.generator, 3, 3),
                "D_A": build_discriminator(m.discriminator, 3),
                "D_B": build_discriminator(m.discriminator, 3),
            }
            self.batch = {k: torch.rand(batch, 3, size, size, generator=gen) * 2 - 1 for k in "AB"}
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


class LoaderRunner(Runner):
    """The engine's DataLoader under the case's own config (its workers, pinned memory), for ``measure_loader``."""

    def __init__(self, overrides: List[str], run_dir: Path) -> None:
        self.name = "data loader alone"
        self.trainer = Trainer(compose_train(overrides), run_dir)
        self.trainer.build()
        self.images_per_call = 0


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


def build(spec: Dict[str, Any]) -> Runner:
    device = torch.device(spec["device"])
    kind, overrides = spec["kind"], spec["overrides"]
    if kind in ("reference", "copy-paste"):
        case = spec["case"]
        return BaselineRunner(compose_train(overrides), case["model"], case["size"], case["batch"], device, kind == "reference")
    if kind == "engine":
        return EngineRunner(spec["name"], overrides, Path(spec["run_dir"]))
    if kind in ("test", "test-loop"):
        return TestRunner(overrides, spec["test_images"], kind == "test-loop", device)
    if kind == "loader":
        return LoaderRunner(overrides, Path(spec["run_dir"]))
    raise ValueError(f"unknown runner kind {kind!r}")


# -- timing and memory -------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def about(device: str) -> Dict[str, Any]:
    """The torch version, its threads and the device ``auto`` resolves to, for the report."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
        "cuda_name": torch.cuda.get_device_name() if device == "cuda" else None,
    }


def window(runner: Runner, device: torch.device, calls: int) -> float:
    """Seconds for ``calls`` calls of the runner."""
    sync(device)
    started = time.perf_counter()
    for _ in range(calls):
        runner()
    sync(device)
    return time.perf_counter() - started


def memory(device: torch.device) -> Dict[str, Any]:
    """Peaks over this process's life (build, warm-up, windows): resident memory and, on CUDA, the bytes
    torch allocated on the device."""
    return {
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_cuda_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
    }


def _describe(err: BaseException) -> str:
    lines = str(err).splitlines()
    return f"{type(err).__name__}: {lines[0][:200] if lines else ''}"


def serve(reply_fd: int) -> None:
    """Build the runner the first message asks for, then answer commands until stdin closes."""
    started_rss = peak_rss_bytes()  # after the imports: Python, torch and translate
    commands, replies = sys.stdin.buffer, os.fdopen(reply_fd, "wb")

    def answer(status: str, value: Any) -> None:
        pickle.dump((status, value), replies)
        replies.flush()

    spec = pickle.load(commands)
    device = torch.device(spec["device"])
    try:
        runner = build(spec)
        warmup = window(runner, device, spec.get("warmup", 0))
    except Exception as err:  # a setting the device refuses (e.g. bf16 on an old GPU): the parent records why
        answer("error", _describe(err))
        return
    answer("ok", {"name": runner.name, "images_per_call": runner.images_per_call, "warmup_s": warmup, "rss_at_start_bytes": started_rss})
    handlers: Dict[str, Callable[..., Any]] = {
        "window": lambda calls: window(runner, device, calls),
        "memory": lambda: memory(device),
        "loader": lambda batches: measure_loader(runner.trainer, batches),
    }
    while True:
        try:
            command, *args = pickle.load(commands)
        except EOFError:
            return
        try:
            answer("ok", handlers[command](*args))
        except Exception as err:
            answer("error", _describe(err))


if __name__ == "__main__":
    if sys.argv[1] == "--about":
        print(json.dumps(about(sys.argv[2])))
    else:
        serve(int(sys.argv[1]))
