"""Shared by the pix2pix, CycleGAN, evaluation, export and pretrained tests: tiny image folders, training
and testing runs on the CPU as the entry points do them, and readers for what a run wrote."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

import numpy as np
import torch
from PIL import Image

import helpers
from translate.cli.testing import run_test
from translate.config import Weights
from translate.models.base import GANModel, Optimization
from translate.models.checkpoint import Checkpoint, trained_model
from translate.settings.schema import TrainConfig
from translate.settings.validate import validate_test
from translate.training.engine import Trainer

#: Overrides every run here shares: CPU, no worker processes, no progress bar, a constant learning rate.
CPU = ["device=cpu", "data.num_workers=0", "trainer.progress_bar=false", "trainer.lr_policy=constant"]


def blocks(rng: np.random.Generator, size: int, block: int = 4, channels: int = 3) -> np.ndarray:
    """A ``[size, size, channels]`` uint8 image of random flat ``block`` x ``block`` squares: structure a
    small generator can reproduce, unlike per-pixel noise."""
    cells = rng.integers(0, 256, (size // block, size // block, channels), dtype=np.uint8)
    return cells.repeat(block, 0).repeat(block, 1)


def save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_pairs(root: Path, split: str, n: int, size: int, seed: int) -> Dict[str, np.ndarray]:
    """``root/<split>/<split>_<i>.png``: A | B side by side (reference layout) with B = 255 - A; returns A by stem."""
    rng = np.random.default_rng(seed)
    images = {}
    for i in range(n):
        a = blocks(rng, size)
        stem = f"{split}_{i:02d}"
        save(np.concatenate([a, 255 - a], axis=1), root / split / f"{stem}.png")
        images[stem] = a
    return images


def write_folder(folder: Path, n: int, size: int, seed: int, prefix: str, invert: bool = False) -> Dict[str, np.ndarray]:
    """``folder/<prefix><i>.png``, colour-inverted when ``invert``; returns the images by stem."""
    rng = np.random.default_rng(seed)
    images = {}
    for i in range(n):
        image = blocks(rng, size)
        images[f"{prefix}{i}"] = 255 - image if invert else image
        save(images[f"{prefix}{i}"], folder / f"{prefix}{i}.png")
    return images


#: Tiny pix2pix (32 px pairs) and CycleGAN (16 px folders) settings, without their data.root.
TINY_IMAGES = ["model.generator.ngf=4", "model.discriminator.ndf=4", "model.discriminator.arch=n_layers", "model.discriminator.n_layers=1"]
TINY_PIX2PIX = [
    "model=pix2pix",
    "data=aligned",
    "data.load_size=32",
    "data.crop_size=32",
    "model.generator.arch=unet",
    "model.generator.num_downs=5",
    *TINY_IMAGES,
]
#: A 1-block ResNet CycleGAN on 16 px folders, its networks' widths left to the lists below.
CYCLEGAN_16 = [
    "model=cyclegan",
    "data=unaligned",
    "data.load_size=16",
    "data.crop_size=16",
    "model.generator.arch=resnet",
    "model.generator.n_blocks=1",
]
TINY_CYCLEGAN = [*CYCLEGAN_16, "model.pool_size=0", *TINY_IMAGES]
#: CUT at 16 px: a 1-block anti-aliased ResNet (its encoder layers are 0..12), PatchNCE on 16 patches per
#: layer through an 8-unit head; its networks' widths left to the lists.
CUT_16 = [
    "model=cut",
    "data=unaligned",
    "data.load_size=16",
    "data.crop_size=16",
    "model.generator.arch=resnet",
    "model.generator.n_blocks=1",
    "model.nce_layers=[0,4,8,12]",
    "model.num_patches=16",
    "model.netF_nc=8",
]
TINY_CUT = [*CUT_16, *TINY_IMAGES]


#: Small but complete networks: ngf/ndf 8 and 2-layer PatchGANs (the 3-layer one needs >= 24 px images).
SMALL_NETS = ["model.generator.ngf=8", "model.discriminator.arch=n_layers", "model.discriminator.n_layers=2", "model.discriminator.ndf=8"]
#: CYCLEGAN_16 with SMALL_NETS: every layer kind of the real CycleGAN, without its data.root.
SMALL_CYCLEGAN = [*CYCLEGAN_16, *SMALL_NETS]

#: A pix2pix without normalisation or dropout: every parameter gets a real gradient from every image, so
#: averaging the gradients of two half batches is exactly the gradient of the whole batch.
EXACT_PIX2PIX = [
    "model=pix2pix",
    "data=aligned",
    "data.load_size=32",
    "data.crop_size=32",
    "data.flip=false",
    "data.num_workers=0",
    "model.generator.arch=unet",
    "model.generator.num_downs=5",
    "model.generator.ngf=4",
    "model.generator.norm=none",
    "model.generator.dropout=false",
    "model.discriminator.ndf=4",
    "model.discriminator.norm=none",
    "trainer.progress_bar=false",
    "trainer.lr_policy=constant",
    "trainer.max_steps=4",
    "trainer.val_every_n_epochs=null",
]


def write_image_data(root: Path, split: str, n_pairs: int, n_a: int, n_b: int) -> None:
    """``root/pairs/<split>/`` (32 px pairs) and ``root/folders/<split>{A,B}/`` (16 px images)."""
    write_pairs(root / "pairs", split, n_pairs, 32, seed=len(split) + n_pairs)
    write_folder(root / "folders" / f"{split}A", n_a, 16, seed=len(split) + n_a, prefix=f"{split}A")
    write_folder(root / "folders" / f"{split}B", n_b, 16, seed=len(split) + n_b + 100, prefix=f"{split}B")


def train_config(overrides: Iterable[str]) -> TrainConfig:
    """:func:`helpers.train_config` after :data:`CPU`."""
    return helpers.train_config(*CPU, *overrides)


def train(run_dir: Path, overrides: Iterable[str]) -> Trainer:
    """:func:`helpers.train` after :data:`CPU`: train into ``run_dir``, return the finished Trainer."""
    return helpers.train(run_dir, *CPU, *overrides)


def translate_test(run_dir: Path, out: Path, *overrides: str) -> Path:
    """``translate-test run=<run_dir> output_dir=<out> <overrides>``, in this process."""
    return run_test(validate_test(helpers.compose_config("test", f"run={run_dir}", f"output_dir={out}", "device=cpu", *overrides)))


def load_run_model(run_dir: Path) -> GANModel:
    """The model of ``run_dir``'s latest checkpoint, rebuilt from the checkpoint alone, in eval mode."""
    return trained_model(Checkpoint.read(run_dir), Weights.raw)


def read_png(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


def as_input(array: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, C]`` -> the model input ``[1, C, H, W]`` in [-1, 1], as the datasets make it."""
    return torch.from_numpy(array).float().div(255).permute(2, 0, 1).unsqueeze(0) * 2 - 1


def as_png_levels(image: torch.Tensor) -> np.ndarray:
    """A model output ``[1, C, H, W]`` in [-1, 1] -> the uint8 ``[H, W, C]`` that translate-test saves."""
    unit = ((image[0].float() + 1) / 2).clamp(0, 1)
    return (unit * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def png_error(path: Path, expected: np.ndarray) -> float:
    """Largest per-pixel difference, in 8-bit levels, between a written PNG and ``expected``."""
    return float(np.abs(read_png(path).astype(int) - expected.astype(int)).max())


def assert_test_outputs(out: Path, stems: Dict[str, Sequence[str]]) -> None:
    """``out/images`` holds exactly ``<stem>_<visual>.png`` for every stem and visual, and index.html shows
    every one of them on the row of its stem."""
    expected = {f"{stem}_{visual}.png" for stem, visuals in stems.items() for visual in visuals}
    assert {p.name for p in (out / "images").iterdir()} == expected
    page = (out / "index.html").read_text()
    rows = {re.search(r"<td>([^<]*)</td>", row).group(1): row for row in page.split("<tr>") if "<img" in row}
    assert rows.keys() == stems.keys()
    for stem, visuals in stems.items():
        for visual in visuals:
            assert f'src="images/{stem}_{visual}.png"' in rows[stem], (stem, visual)


def read_metrics(out: Path) -> Dict[str, Dict[str, float]]:
    return json.loads((out / "metrics.json").read_text())


def scalar_values(acc, tag: str) -> List[float]:
    return [event.value for event in acc.Scalars(tag)]


class Recorder(Optimization):
    """Takes the loss of each update instead of applying it (one training step's: each name once)."""

    def __init__(self) -> None:
        self.losses: Dict[str, torch.Tensor] = {}

    def autocast(self):
        return contextlib.nullcontext()

    def step(self, name: str, loss: torch.Tensor) -> None:
        assert name not in self.losses, f"{name} stepped twice in one training step"
        self.losses[name] = loss.detach()
