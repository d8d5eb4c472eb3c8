"""Build the small real-MNIST subset that ships with the package (for the offline demo and tests).

Takes the first N images of each class from the real MNIST files (torchvision's layout) and writes
``src/translate/assets/mnist_subset.pt.gz``: a gzip'd ``torch.save`` of uint8 images and labels.

    python scripts/make_mnist_subset.py --root ../shared/data --train-per-class 600 --test-per-class 100
"""

from __future__ import annotations

import argparse
import gzip
import io
from pathlib import Path

import torch
from torchvision.datasets import MNIST

OUT = Path(__file__).resolve().parents[1] / "src" / "translate" / "assets" / "mnist_subset.pt.gz"


def first_per_class(images: torch.Tensor, labels: torch.Tensor, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    keep = torch.cat([(labels == c).nonzero().flatten()[:per_class] for c in range(10)]).sort().values
    return images[keep].clone(), labels[keep].to(torch.uint8).clone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="folder holding MNIST/raw/ (torchvision layout)")
    parser.add_argument("--train-per-class", type=int, default=600)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    state = {}
    for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
        ds = MNIST(args.root, train=split == "train", download=False)
        state[f"{split}_images"], state[f"{split}_labels"] = first_per_class(ds.data, ds.targets, per_class)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(args.out, "wb", compresslevel=9, mtime=0) as f:
        f.write(buffer.getvalue())
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in state.items()))


if __name__ == "__main__":
    main()
