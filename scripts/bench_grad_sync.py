"""Gradient averaging over processes: bucketed all-reduces that overlap the backward pass (what the engine
does, ``translate.training.distributed.GradientReducer``) against one flat all-reduce after it (the scheme
it replaced). Starts ``--procs`` processes on this machine (gloo over 127.0.0.1, one thread each), builds
the run as ``translate-train`` would on synthetic images, and times ``--steps`` real training steps of each
scheme after ``--warmup`` untimed ones. Prints one JSON line.

    python scripts/bench_grad_sync.py                                   # pix2pix 256 x 256, batch 1 a process
    python scripts/bench_grad_sync.py model=cyclegan --steps 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hydra import compose, initialize_config_dir

from bench_data import make_images
from translate.cli.app import config_dir
from translate.cli.validate import validate
from translate.training import distributed
from translate.training.engine import Trainer


class FlatAfterBackward:
    """The baseline: every gradient of the optimiser flattened into one tensor and all-reduced once the
    backward pass has finished, so no communication overlaps computation."""

    def __init__(self, params: Iterable[torch.nn.Parameter]) -> None:
        self.params = list(params)
        _, self.world = distributed.rank_and_world()

    def prepare(self) -> None:
        pass

    def finish(self) -> None:
        params = [p for p in self.params if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= self.world
        for p, grad in zip(params, torch.split(flat, [p.numel() for p in params])):
            p.grad.copy_(grad.view_as(p.grad))


def _time(trainer: Trainer, steps: int, warmup: int) -> float:
    done, started = 0, 0.0
    while done < warmup + steps:
        for batch in trainer.loader:
            if done == warmup:
                distributed.barrier()
                started = time.perf_counter()
            trainer.train_step(batch)
            done += 1
            if done == warmup + steps:
                break
    distributed.barrier()
    return (time.perf_counter() - started) / steps


def _worker(rank: int, world: int, port: int, overrides: list, steps: int, warmup: int, tmp: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = validate(compose("train", overrides=overrides))
    results = {}
    with distributed.process_group():
        for scheme in ("flat_after_backward", "bucketed_overlapped"):
            trainer = Trainer(cfg, Path(tmp) / scheme)
            trainer.build()
            if scheme == "flat_after_backward":
                trainer.opt.reducers = {
                    name: FlatAfterBackward(p for group in opt.param_groups for p in group["params"])
                    for name, opt in trainer.optimizers.items()
                }
            results[scheme] = _time(trainer, steps, warmup)
    if rank == 0:
        params = sum(p.numel() for p in trainer.model.parameters())
        flat, bucketed = results["flat_after_backward"], results["bucketed_overlapped"]
        print(
            json.dumps(
                {
                    "model": cfg.model.name,
                    "processes": world,
                    "parameters": params,
                    "batch_per_process": cfg.trainer.batch_size,
                    "steps": steps,
                    "s_per_step_flat_after_backward": round(flat, 4),
                    "s_per_step_bucketed_overlapped": round(bucketed, 4),
                    "speedup": round(flat / bucketed, 3),
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="translate-train overrides (default: model=pix2pix)")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    overrides = args.overrides or ["model=pix2pix"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        data = make_images(Path(tmp) / "data", cfg.model.name, int(cfg.data.get("load_size", 256)), 8)
        full = [*data, *overrides, "device=cpu", "logger=none", "trainer.progress_bar=false", "data.num_workers=0"]
        mp.spawn(_worker, args=(args.procs, port, full, args.steps, args.warmup, tmp), nprocs=args.procs)


if __name__ == "__main__":
    main()
