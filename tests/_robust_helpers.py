"""Helpers of test_robustness.py: tiny runs of each model, the training CLI in-process and as a real
process, and image folders with the damage a scraped dataset has."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, List, Tuple

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

import helpers
from translate.cli import train as train_cli
from translate.data.configs import ImageDataConfig
from translate.training.engine import Trainer

#: Settings every test run shares: CPU, no TensorBoard, no progress bar, no validation, reads in the
#: main process.
COMMON: List[str] = [
    "device=cpu",
    "logger=none",
    "trainer.progress_bar=false",
    "trainer.val_every_n_epochs=null",
    "data.num_workers=0",
]

#: A constant epoch then linear decay (so the learning rate changes at the first epoch boundary),
#: and a checkpoint every epoch.
SCHEDULE: List[str] = ["trainer.n_epochs=1", "trainer.n_epochs_decay=4", "trainer.save_every_n_epochs=1"]
#: Each model with networks of a few thousand parameters; on 12 digits (cGAN) or 3 images or pairs
#: (``model_overrides``), 3 steps an epoch. The U-Net needs 5 downsamplings at least, hence 32 px.
CGAN: List[str] = [
    "model=cgan",
    "data=mnist_subset",
    "data.image_size=16",
    "data.max_dataset_size=12",
    "trainer.batch_size=4",
    "model.generator.ngf=4",
    "model.discriminator.ndf=4",
    "model.z_dim=8",
]
PIX2PIX: List[str] = [
    "model=pix2pix",
    "data=aligned",
    "data.load_size=36",
    "data.crop_size=32",
    "trainer.batch_size=1",
    "model.generator.arch=unet",
    "model.generator.num_downs=5",
    "model.generator.ngf=4",
    "model.discriminator.ndf=4",
    "model.discriminator.arch=n_layers",
    "model.discriminator.n_layers=1",
]
CYCLEGAN: List[str] = [
    "model=cyclegan",
    "data=unaligned",
    "data.load_size=20",
    "data.crop_size=16",
    "trainer.batch_size=1",
    "model.generator.arch=resnet",
    "model.generator.n_blocks=1",
    "model.generator.ngf=4",
    "model.discriminator.ndf=4",
    "model.discriminator.arch=n_layers",
    "model.discriminator.n_layers=1",
    "model.pool_size=2",
]


def noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random RGB image, ``[height, width, 3]`` uint8."""
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def save_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def aligned_folder(root: Path, n: int = 3, side: int = 32, splits: Tuple[str, ...] = ("train",)) -> Path:
    """``root/<split>/<i>.png``: ``n`` random A|B pairs of ``side`` px side by side per split."""
    rng = np.random.default_rng(0)
    for split in splits:
        for i in range(n):
            save_png(root / split / f"{i}.png", noise(rng, 2 * side, side))
    return root


def unaligned_folder(root: Path, n: int = 3, side: int = 16) -> Path:
    """``root/trainA`` with ``n`` random images, ``root/trainB`` with ``n - 1``."""
    rng = np.random.default_rng(1)
    for domain, count in (("A", n), ("B", n - 1)):
        for i in range(count):
            save_png(root / f"train{domain}" / f"{i}.png", noise(rng, side, side))
    return root


def model_overrides(model: str, data_root: Path) -> List[str]:
    """The tiny ``model`` (cgan, pix2pix, cyclegan) on data made under ``data_root`` (3 steps an epoch)."""
    if model == "cgan":
        return list(CGAN)
    if model == "pix2pix":
        return [*PIX2PIX, f"data.root={aligned_folder(data_root)}"]
    return [*CYCLEGAN, f"data.root={unaligned_folder(data_root)}"]


def image_data(root: Path, **values: Any) -> Any:
    """A typed image-folder data config for ``root``: no resizing, cropping or flipping unless asked."""
    defaults = {"root": str(root), "preprocess": "none", "flip": False}
    return OmegaConf.merge(OmegaConf.structured(ImageDataConfig), {**defaults, **values})


def fit(run_dir: Path, *overrides: str) -> Trainer:
    """:func:`helpers.train` after :data:`COMMON` and :data:`SCHEDULE`: train into ``run_dir``, return the Trainer."""
    return helpers.train(run_dir, *COMMON, *SCHEDULE, *overrides)


def run_cli_inprocess(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> Tuple[int, str]:
    """Run ``translate-train *args`` through its entry point in this process; return (exit code, stderr).

    The entry point is what the console script calls, so argument handling, resume and the error
    messages are the real ones, without a second Python start-up per case."""
    monkeypatch.setattr(sys, "argv", ["translate-train", *args])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    capsys.readouterr()
    try:
        train_cli.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, stderr: str, *needles: str) -> str:
    """The CLI failed with exit code 2 and a single ``translate-train: error:`` line naming ``needles``."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("translate-train: error: ")]
    assert code == 2 and len(errors) == 1, f"exit {code}, stderr:\n{stderr[-3000:]}"
    assert "Traceback" not in stderr, stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def start_cli(cwd: Path, *args: str) -> Tuple[subprocess.Popen, Path]:
    """Start ``translate-train *args`` as a real process in ``cwd``; return it and the file that
    receives its stdout and stderr (a file, not a pipe, which a long run could fill and block on)."""
    output = cwd / "translate-train.out"
    with open(output, "w") as sink:
        proc = subprocess.Popen(
            [str(helpers.BIN / "translate-train"), *args],
            cwd=cwd,
            env=helpers.cli_env(cwd),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return proc, output
