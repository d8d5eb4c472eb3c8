"""Train the MNIST classifier that judges the cGAN, test it, and ship its weights in the package.

Runs, from the repository root (``--root`` holds ``MNIST/raw`` in torchvision's layout):

    translate-train model=classifier data=mnist data.root=<root> device=cpu data.num_workers=0 \\
        trainer.progress_bar=false seed=0 hydra.run.dir=<run dir>
    translate-test run=<run dir> device=cpu

then writes network ``C`` of ``<run dir>/checkpoints/latest.pt`` (the last epoch, not one picked on the
test set) as a plain float32 state_dict to ``src/translate/assets/mnist_classifier.pt``, and prints its
test accuracy from ``<run dir>/test_latest/metrics.json``.

The shipped file was made with ``python scripts/train_mnist_classifier.py --root /work/shared/data`` on
2026-11-24 (torch 2.14.1, CPU, OMP_NUM_THREADS=1, 8 epochs of 469 steps):
test accuracy 99.26% on the 10,000 MNIST test digits (98.0% to 99.8% per class); 241,898 parameters,
0.98 MB; training took 402 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "translate" / "assets" / "mnist_classifier.pt"


def run(*args: str) -> None:
    command = [str(Path(sys.executable).parent / args[0]), *args[1:]]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="folder holding MNIST/raw/ (torchvision layout)")
    parser.add_argument("--run-dir", type=Path, default=REPO / "outputs" / "classifier" / "mnist_shipped")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    run(
        "translate-train",
        "model=classifier",
        "data=mnist",
        f"data.root={args.root}",
        "device=cpu",
        "data.num_workers=0",
        "trainer.progress_bar=false",
        "seed=0",
        f"hydra.run.dir={args.run_dir}",
    )
    run("translate-test", f"run={args.run_dir}", "device=cpu")
    accuracy = json.loads((args.run_dir / "test_latest" / "metrics.json").read_text())["accuracy"]
    state = torch.load(args.run_dir / "checkpoints" / "latest.pt", map_location="cpu", weights_only=True)
    weights = {name: tensor.contiguous() for name, tensor in state["networks"]["C"].items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(weights, args.out)
    params = sum(t.numel() for n, t in weights.items() if not n.endswith(("running_mean", "running_var", "num_batches_tracked")))
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {params:,} parameters): test accuracy "
        f"{100 * accuracy['mean']:.2f}% on {accuracy['num_images']} digits"
    )


if __name__ == "__main__":
    main()
