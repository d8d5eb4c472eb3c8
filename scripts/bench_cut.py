"""CUT and FastCUT against CycleGAN on the same unpaired data at the same image size: training speed, peak
memory, and the quality each reaches in the same training time on a translation whose answer is known.

The task: synthetic ``--size`` px images of filled circles and rectangles on a background, every colour
level drawn as 95 u^2 (u uniform, so most levels are dark). Domain A holds such images; domain B holds other
such images recoloured channel by channel, R -> R + 160, G -> 2G + 40, B -> B / 2 + 200. The answer for an A
image is its own recolouring: every shape stays where it is and only its colour changes (the skewed levels
make this the one monotone map that turns A's colour distribution into B's; an inverted image would not
match it). Quality is the held-out L1 (images in [-1, 1]) and PSNR of G(a) against that answer, over
``--val`` A images no model trained on.

For each model, in a fresh process each (so peak RSS is its own):
- speed: the paper's networks (ResNet 9 blocks, ngf 64, 70x70 PatchGAN; CUT's anti-aliased versions), batch
  1, ``--speed-steps`` timed steps after 3 untimed ones: images/s, and peak RSS (and peak CUDA memory on a
  GPU);
- quality: narrower networks (ngf = ndf = 16, ResNet 6 blocks), batch 1, constant lr 2e-4 (the papers'),
  each model's paper losses, trained for ``--budget`` seconds of this process's CPU time (CUDA: wall time)
  and scored at each quarter of it (scoring not counted), for every ``--seeds`` seed.

Each model runs with its authors' settings: CycleGAN with identity loss 0.5 and an image pool of 50, CUT with
its identity PatchNCE on Y, FastCUT (experiment=fastcut) with lambda_NCE 10 and flip-equivariance.

    python scripts/bench_cut.py                       # 64 px, 240 CPU-seconds per run, seeds 0 and 1
    python scripts/bench_cut.py --budget 60 --seeds 0 --speed-steps 5    # a quick look
    python scripts/bench_cut.py --device cuda --size 256 --budget 600

Writes ``<out>/bench_cut.json`` and ``<out>/bench_cut.md``. One thread by default (``--threads``): the
CPU-time budget then matches the wall time on an idle core, whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
from PIL import Image, ImageDraw

MODELS = {
    "CycleGAN": ["model=cyclegan"],
    "CUT": ["model=cut"],
    "FastCUT": ["experiment=fastcut"],
    # what the authors' anti-aliased resampling costs and buys (their --no_antialias --no_antialias_up);
    # without the two blur layers the same taps (the padded input, each downsampling convolution, the
    # first and the fifth residual block) sit at other indices of the generator's layers
    "CUT, no anti-aliasing": [
        "model=cut",
        "model.generator.antialias=false",
        "model.generator.antialias_up=false",
        "model.discriminator.antialias=false",
        "model.nce_layers=[0,4,7,10,14]",
    ],
}
#: The narrower networks of the quality runs (CUT's nce_layers 0,4,8,12,16 fit 6 blocks: the last is block 5).
SMALL = ["model.generator.arch=resnet_6blocks", "model.generator.ngf=16", "model.discriminator.ndf=16"]


# --- the task ---------------------------------------------------------------------------------------------


def shapes(rng: np.random.Generator, size: int) -> np.ndarray:
    """A ``[size, size, 3]`` uint8 image: 3 to 6 filled circles and rectangles over a flat background, every
    colour level 95 u^2."""

    def colour() -> tuple:
        return tuple(int(v) for v in np.round(95 * rng.random(3) ** 2))

    image = Image.new("RGB", (size, size), colour())
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 7)):
        w, h = rng.integers(size // 8, size // 2, 2)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        box = (int(x), int(y), int(x + w), int(y + h))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour())
    return np.asarray(image)


def recolour(a: np.ndarray) -> np.ndarray:
    """The known A -> B translation: R + 160, 2 G + 40, B / 2 + 200 (levels 0..95 stay within 0..255)."""
    a = a.astype(np.float64)
    return np.round(np.stack([a[..., 0] + 160, 2 * a[..., 1] + 40, a[..., 2] / 2 + 200], -1)).astype(np.uint8)


def make_task(root: Path, size: int, n_train: int, n_val: int) -> None:
    """``root/trainA``, ``root/trainB`` (other images, recoloured: nothing pairs them), ``root/valA`` and
    ``root/valB`` (for CUT's and CycleGAN's own validation folders, unused here), and ``root/truth`` (the
    answer for each ``valA`` image, same name)."""
    rng = np.random.default_rng(0)
    for folder, n, transform in (
        ("trainA", n_train, None),
        ("trainB", n_train, recolour),
        ("valA", n_val, None),
        ("valB", n_val, recolour),
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image = shapes(rng, size)
            Image.fromarray(transform(image) if transform else image).save(root / folder / f"{i:04d}.png")
            if folder == "valA":
                (root / "truth").mkdir(exist_ok=True)
                Image.fromarray(recolour(image)).save(root / "truth" / f"{i:04d}.png")


# --- one run, in its own process ------------------------------------------------------------------------


def _trainer(args: argparse.Namespace, overrides: List[str]) -> Any:
    from translate.cli.app import register_schemas
    from translate.cli.compose import compose_config
    from translate.settings.validate import validate_train
    from translate.training.engine import Trainer

    register_schemas()
    common = [
        f"data.root={args.data}",
        "data.name=bench",
        f"data.load_size={args.size}",
        f"data.crop_size={args.size}",
        "data.num_workers=0",
        f"device={args.device}",
        "logger=none",
        "trainer.progress_bar=false",
        "trainer.lr_policy=constant",
        "trainer.batch_size=1",
        "trainer.val_every_n_epochs=null",
        "trainer.image_every_n_steps=100000000",
        f"seed={args.seed}",
    ]
    cfg = validate_train(compose_config("train", [*MODELS[args.model], "data=unaligned", *common, *overrides]))
    trainer = Trainer(cfg, Path(args.run_dir))
    trainer.build()
    return trainer


def _batches(trainer: Any):
    """The training batches, epoch after epoch, each epoch in its own order (as fit would draw them)."""
    epoch = 0
    while True:
        trainer.run.sampler.set_epoch(epoch)
        yield from trainer.loader
        epoch += 1


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def worker_speed(args: argparse.Namespace) -> Dict[str, Any]:
    import torch

    trainer = _trainer(args, [])
    cuda = trainer.device.type == "cuda"
    batches = _batches(trainer)
    for _ in range(3):
        trainer.train_step(next(batches))
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(args.speed_steps):
        trainer.train_step(next(batches))
    if cuda:
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in trainer.model.networks.items()}
    # On a shared CPU the wall time counts other processes' turns; with one thread, CPU time is what the
    # step itself cost. On CUDA the wall time is the measure.
    measured = seconds if cuda else cpu_seconds
    return {
        "images_per_s": args.speed_steps / measured,
        "s_per_step": measured / args.speed_steps,
        "wall_s_per_step": seconds / args.speed_steps,
        "peak_rss_mib": _peak_rss_mib(),
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "parameters": params,
    }


def score(trainer: Any, data: Path) -> Dict[str, float]:
    """Held-out L1 and PSNR of G(a) against the known answer, over every ``valA`` image."""
    import torch

    from translate.evaluation.image_metrics import l1, psnr

    def load(folder: str) -> torch.Tensor:
        arrays = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((data / folder).glob("*.png"))]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(127.5).sub(1)

    a, truth = load("valA").to(trainer.device), load("truth").to(trainer.device)
    model = trainer.model
    netG = model.networks["G_A" if "G_A" in model.networks else "G"]
    model.eval()
    with torch.no_grad():
        fake = torch.cat([netG(a[i : i + 16]) for i in range(0, len(a), 16)])
    model.train()
    return {"L1": float(l1(fake, truth).mean()), "PSNR": float(psnr(fake, truth).mean())}


def worker_quality(args: argparse.Namespace) -> Dict[str, Any]:
    import torch

    trainer = _trainer(args, SMALL)
    cuda = trainer.device.type == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    batches = _batches(trainer)
    curve = [{"seconds": 0.0, "steps": 0, **score(trainer, Path(args.data))}]
    spent, steps = 0.0, 0
    for quarter in (1, 2, 3, 4):
        while spent < args.budget * quarter / 4:
            started = clock()
            trainer.train_step(next(batches))
            if cuda:
                torch.cuda.synchronize()
            spent += clock() - started
            steps += 1
        curve.append({"seconds": spent, "steps": steps, **score(trainer, Path(args.data))})
    return {"curve": curve}


# --- the driver --------------------------------------------------------------------------------------


def run_worker(args: argparse.Namespace, kind: str, model: str, seed: int, data: Path, tmp: Path) -> Dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--model",
        model,
        "--seed",
        str(seed),
        "--data",
        str(data),
        "--run-dir",
        str(tmp / f"{kind}_{model}_{seed}"),
        "--size",
        str(args.size),
        "--budget",
        str(args.budget),
        "--speed-steps",
        str(args.speed_steps),
        "--device",
        args.device,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"{kind} run of {model} (seed {seed}) failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spread(values: List[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def report(results: Dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"# CUT / FastCUT / CycleGAN at {args.size} px ({args.device}, {args.threads} thread(s))",
        "",
        f"Speed: the paper's networks, batch 1, {args.speed_steps} timed steps "
        f"({'wall time' if args.device == 'cuda' else 'CPU time of the one thread'}).",
        "",
        "| model | images/s | s/step | peak RSS (MiB) | peak CUDA (MiB) | parameters (M) |",
        "|---|---|---|---|---|---|",
    ]
    for model, s in results["speed"].items():
        cuda = f"{s['peak_cuda_mib']:.0f}" if s["peak_cuda_mib"] is not None else "-"
        params = sum(s["parameters"].values()) / 1e6
        lines.append(f"| {model} | {s['images_per_s']:.3f} | {s['s_per_step']:.3f} | {s['peak_rss_mib']:.0f} | {cuda} | {params:.2f} |")
    clock = "wall seconds" if args.device == "cuda" else "CPU seconds"
    lines += [
        "",
        f"Quality: ngf = ndf = 16, ResNet 6 blocks, batch 1, lr 2e-4, {args.budget:g} {clock} per run, seeds {args.seeds}; "
        f"held-out L1 (lower is better) and PSNR (dB) of G(a) against the known answer ({args.val} images), mean ± sd over seeds.",
        "",
        "| model | steps in the budget | L1 at 1/4 | L1 at 1/2 | L1 at the end | PSNR at the end |",
        "|---|---|---|---|---|---|",
    ]
    for model, runs in results["quality"].items():
        curves = [r["curve"] for r in runs]
        steps = [c[-1]["steps"] for c in curves]
        lines.append(
            f"| {model} | {statistics.mean(steps):.0f} | {spread([c[1]['L1'] for c in curves])} | {spread([c[2]['L1'] for c in curves])} | "
            f"{spread([c[-1]['L1'] for c in curves])} | {spread([c[-1]['PSNR'] for c in curves])} |"
        )
    start = results["quality"][next(iter(results["quality"]))][0]["curve"][0]
    lines += ["", f"Untrained (CycleGAN's G_A, seed {args.seeds[0]}): L1 {start['L1']:.3f}, PSNR {start['PSNR']:.2f}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--budget", type=float, default=240.0, help="training seconds per quality run (CPU time; wall time on CUDA)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--speed-steps", type=int, default=10)
    parser.add_argument("--train", type=int, default=200, help="images per training folder")
    parser.add_argument("--val", type=int, default=50, help="held-out A images scored against their answer")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path("bench_cut"))
    # internal: one run in this process
    parser.add_argument("--worker", choices=["speed", "quality"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        result = worker_speed(args) if args.worker == "speed" else worker_quality(args)
        print(json.dumps(result))
        return

    results: Dict[str, Any] = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "speed": {}, "quality": {}}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        make_task(data, args.size, args.train, args.val)
        for model in args.models:
            results["speed"][model] = run_worker(args, "speed", model, args.seeds[0], data, Path(tmp))
            print(f"{model}: {results['speed'][model]['images_per_s']:.3f} images/s", file=sys.stderr)
        for seed in args.seeds:
            for model in args.models:
                run = run_worker(args, "quality", model, seed, data, Path(tmp))
                results["quality"].setdefault(model, []).append(run)
                end = run["curve"][-1]
                print(f"{model} seed {seed}: L1 {end['L1']:.3f} PSNR {end['PSNR']:.2f} after {end['steps']} steps", file=sys.stderr)
    results["wall_seconds"] = time.time() - started
    results["load_average"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_cut.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report(results, args)
    (args.out / "bench_cut.md").write_text(table)
    print(table)
    if any(math.isnan(r["curve"][-1]["L1"]) for runs in results["quality"].values() for r in runs):
        sys.exit("a run ended with NaN")


if __name__ == "__main__":
    main()
