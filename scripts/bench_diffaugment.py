"""Does DiffAugment help pix2pix on a few hundred pairs? Train with and without it, test both, print a table.

Builds an aligned dataset from real MNIST (torchvision's layout under ``--mnist-root``): A = the Sobel edge
magnitude of a digit, B = the digit, 32 x 32 grey, ``--train`` pairs from the training set and ``--test``
from the test set, written side by side (the reference layout) into a temporary folder. Then, for each
variant, the same ``translate-train`` run (same seed, same ``--steps``) with and without
``model.diffaugment='color,translation,cutout'``, and ``translate-test`` on the held-out pairs. Prints the
held-out L1 and PSNR (and SSIM) of each, with its training wall time.

    python scripts/bench_diffaugment.py --mnist-root path/holding/MNIST --steps 1500
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

BIN = Path(sys.executable).parent
VARIANTS = {"no DiffAugment": [], "DiffAugment color,translation,cutout": ["model.diffaugment='color,translation,cutout'"]}


def edge_pairs(root: Path, mnist_root: str, n_train: int, n_test: int, size: int = 32) -> None:
    """``root/{train,test}/<i>.png``: A (Sobel magnitude) | B (digit), each ``size`` px, grey."""
    from torchvision.datasets import MNIST

    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel, sobel.T]).unsqueeze(1)
    for split, n, train in (("train", n_train, True), ("test", n_test, False)):
        digits = MNIST(mnist_root, train=train, download=False).data[:n].float().div(255).unsqueeze(1)
        digits = F.interpolate(digits, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
        grad = F.conv2d(digits, kernels, padding=1)
        edges = grad.norm(dim=1, keepdim=True)
        edges = edges / edges.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
        pairs = (torch.cat([edges, digits], dim=3) * 255).round().to(torch.uint8)
        (root / split).mkdir(parents=True, exist_ok=True)
        for i, pair in enumerate(pairs):
            Image.fromarray(pair[0].numpy(), mode="L").save(root / split / f"{i:04d}.png")


def run(args: list[str], cwd: Path) -> float:
    """Run a console script to completion; return its wall time in seconds (stop on failure with its output)."""
    started = time.perf_counter()
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-root", required=True, help="folder holding MNIST/raw (torchvision's layout)")
    parser.add_argument("--train", type=int, default=300, help="training pairs")
    parser.add_argument("--test", type=int, default=100, help="held-out test pairs")
    parser.add_argument("--steps", type=int, default=1500, help="training steps of each variant")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--ndf", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep data and runs here (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        edge_pairs(work / "pairs", args.mnist_root, args.train, args.test)
        common = [
            "model=pix2pix",
            "data=aligned",
            f"data.root={work / 'pairs'}",
            "data.input_nc=1",
            "data.output_nc=1",
            "data.load_size=32",
            "data.crop_size=32",
            "data.num_workers=0",
            "model.generator.arch=unet",
            "model.generator.num_downs=5",
            f"model.generator.ngf={args.ngf}",
            f"model.discriminator.ndf={args.ndf}",
            f"trainer.batch_size={args.batch_size}",
            f"trainer.max_steps={args.steps}",
            "trainer.n_epochs=100000",
            "trainer.n_epochs_decay=0",
            "trainer.lr_policy=constant",
            "trainer.val_every_n_epochs=null",
            "trainer.save_every_n_epochs=100000",
            "trainer.progress_bar=false",
            "logger=none",
            "device=cpu",
            f"seed={args.seed}",
        ]
        rows = []
        for name, extra in VARIANTS.items():
            run_dir = work / ("diffaugment" if extra else "plain")
            wall = run(["translate-train", *common, *extra, f"hydra.run.dir={run_dir}"], work)
            run(["translate-test", f"run={run_dir}", "device=cpu", "metrics.fid=false"], work)
            metrics = json.loads((run_dir / "test_latest" / "metrics.json").read_text())
            rows.append((name, wall, metrics))
        print(
            f"pix2pix, MNIST edges -> digits, 32 px: {args.train} training pairs, {args.test} held-out pairs; {args.steps} steps "
            f"of batch {args.batch_size}, ngf {args.ngf}, ndf {args.ndf}, seed {args.seed}; CPU ({os.cpu_count()} cores)\n"
        )
        print("| variant | train wall s | L1 (lower) | PSNR dB (higher) | SSIM (higher) | test images |")
        print("|---|---|---|---|---|---|")
        for name, wall, m in rows:
            print(
                f"| {name} | {wall:.0f} | {m['L1']['mean']:.4f} | {m['PSNR']['mean']:.2f} | {m['SSIM']['mean']:.4f} | {m['L1']['num_images']} |"
            )


if __name__ == "__main__":
    main()
