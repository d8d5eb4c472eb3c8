"""Training throughput and memory of any model/config, on synthetic images.

Builds the run exactly as ``translate-train`` would (same config composition, same engine step), on a
temporary folder of random images of the configured size, then times ``--steps`` optimisation steps after
``--warmup`` untimed ones (compilation, cuDNN autotuning, allocator warm-up). Prints one JSON line:
steps/s, images/s, and peak GPU memory when on CUDA.

    python scripts/bench_train.py model=cyclegan                                  # paper settings, 256x256
    python scripts/bench_train.py model=pix2pix trainer.batch_size=4 device=cuda device.amp=bf16
    python scripts/bench_train.py model=cgan --steps 50                           # the MNIST cGAN
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from bench_data import make_images
from translate.cli.app import register_schemas
from translate.cli.compose import compose_config
from translate.settings.validate import validate_train
from translate.training.engine import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="translate-train overrides, e.g. model=cyclegan device.amp=bf16")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--images", type=int, default=16, help="synthetic images per folder")
    args = parser.parse_args()

    register_schemas()
    probe = compose_config("train", args.overrides)
    model = probe.model.name
    with tempfile.TemporaryDirectory() as tmp:
        data = [] if model == "cgan" else make_images(Path(tmp) / "data", model, int(probe.data.get("load_size", 256)), args.images)
        cfg = validate_train(compose_config("train", [*data, *args.overrides, "logger=none", f"paths.output_dir={tmp}/out"]))
        trainer = Trainer(cfg, Path(tmp) / "run")
        trainer.build()
        device = trainer.device
        steps, timed, started = 0, 0, 0.0
        while timed < args.steps:
            for batch in trainer.loader:
                if steps == args.warmup:
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                        torch.cuda.reset_peak_memory_stats()
                    started = time.perf_counter()
                trainer.train_step(batch)
                steps += 1
                timed = max(0, steps - args.warmup)
                if timed >= args.steps:
                    break
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
    result = {
        "model": model,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(),
        "batch_size": cfg.trainer.batch_size,
        "image_size": trainer.model.info.image_size,
        "amp": str(cfg.device.amp),
        "channels_last": cfg.device.channels_last,
        "compile": cfg.device.compile,
        "steps": args.steps,
        "steps_per_s": round(args.steps / elapsed, 3),
        "images_per_s": round(args.steps * cfg.trainer.batch_size / elapsed, 2),
        "s_per_step": round(elapsed / args.steps, 4),
    }
    if device.type == "cuda":
        result["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
