"""Synthetic training images for the benchmarks, without torch (so that a benchmark's parent process, which
only starts and measures others, stays small)."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image


def make_images(root: Path, model: str, size: int, count: int) -> list[str]:
    """Random RGB images in the layout ``model`` trains on (pix2pix: A and B side by side; else trainA and
    trainB folders); returns the data overrides that point at them."""
    rng = random.Random(0)

    def save(path: Path, width: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.frombytes("RGB", (width, size), rng.randbytes(size * width * 3)).save(path)

    if model == "pix2pix":
        for i in range(count):
            save(root / "train" / f"{i}.png", 2 * size)
        return ["data=aligned", f"data.root={root}"]
    for side in "AB":
        for i in range(count):
            save(root / f"train{side}" / f"{i}.png", size)
    return ["data=unaligned", f"data.root={root}"]
