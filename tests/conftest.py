"""Shared fixtures: compose configs the way the entry points do, run the real console scripts, and
read what a run wrote (checkpoints, TensorBoard events)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from translate.cli import config_dir

# The machines that run these tests have few cores, shared: one thread per process avoids the
# oversubscription that makes tiny convolutions many times slower.
torch.set_num_threads(1)

IMAGE_SIZE = 16
#: The cGAN's class grid at IMAGE_SIZE: 10 classes x 10 noise vectors, make_grid's 2-pixel padding around each.
GRID_SIDE = 2 + 10 * (IMAGE_SIZE + 2)

#: A cGAN small enough to train a step in a fraction of a second on one CPU core, on the bundled digits.
TINY: List[str] = [
    "data=mnist_subset",
    "debug=smoke",
    "device=cpu",
    "model.generator.ngf=8",
    "model.discriminator.ndf=8",
    f"data.image_size={IMAGE_SIZE}",
]

#: The console scripts sit next to the interpreter of the environment they were installed into.
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def compose_config() -> Callable[..., DictConfig]:
    """``compose_config("train", *overrides)``: the config Hydra composes for that command line, without
    the ``hydra`` node (what the training and test tasks receive)."""

    def _compose(config_name: str, *overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name="pytest"):
            return compose(config_name, overrides=list(overrides), return_hydra_config=False)

    return _compose


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli("translate-train", *args, cwd=dir)``: run an installed console script to completion,
    capturing its output as text, from ``cwd`` (the tests never run one from the repository)."""

    def _run(script: str, *args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
        # A user's HYDRA_FULL_ERROR would turn the one-line errors under test into tracebacks.
        env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        env.update(TRANSLATE_DATA_DIR=str(Path(cwd) / "data"), OMP_NUM_THREADS="1")
        return subprocess.run(
            [str(BIN / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )

    return _run


def load_ckpt(path: Path) -> Dict:
    """A checkpoint as a user opens it: safe unpickling, tensors on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


def read_events(tb_dir: Path):
    """Every TensorBoard event file under ``tb_dir``, loaded (no sampling: all scalars and images kept)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def expect_clear_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """A failed command that explains itself in a few lines naming ``needles``, with no traceback."""
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "Traceback" not in text, text
    assert len(text.strip().splitlines()) <= 15, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in: {text}"
    return text


def assert_same_tensors(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

