"""What every test file shares: configs composed the way the entry points compose them, training through
the Python API, the installed console scripts run as real processes, and readers for what a run wrote
(checkpoints, TensorBoard events)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from translate.cli.app import config_dir, register_schemas
from translate.settings.schema import TrainConfig
from translate.settings.validate import validate_train
from translate.training.engine import Trainer

register_schemas()

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


def compose_config(config_name: str, *overrides: str) -> DictConfig:
    """The config Hydra composes for ``translate-<config_name> *overrides``, without the ``hydra`` node
    (what the training and test tasks receive)."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name="pytest"):
        return compose(config_name, overrides=list(overrides), return_hydra_config=False)


def train_config(*overrides: str) -> TrainConfig:
    """The typed config ``translate-train *overrides`` trains with."""
    return validate_train(compose_config("train", *overrides))


def train(run_dir: Path, *overrides: str) -> Trainer:
    """Train as ``translate-train *overrides`` would, into ``run_dir``; return the Trainer as fit left it."""
    trainer = Trainer(train_config(*overrides), run_dir)
    trainer.fit()
    return trainer


def cli_env(cwd: Path) -> Dict[str, str]:
    """The environment of a console script started from ``cwd``."""
    # A user's HYDRA_FULL_ERROR would turn the one-line errors under test into tracebacks.
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    # One thread: the test machine's few cores are shared, and tiny convolutions slow down many times over
    # when threads compete for them.
    env.update(OMP_NUM_THREADS="1", TRANSLATE_DATA_DIR=str(Path(cwd) / "data"))
    return env


def run_cli(script: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``run_cli("translate-train", *args, cwd=dir)``: run an installed console script to completion from
    ``cwd`` (the tests never run one from the repository), capturing its output as text."""
    return subprocess.run([str(BIN / script), *args], cwd=cwd, env=cli_env(cwd), capture_output=True, text=True, timeout=timeout)


def expect_clear_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """A failed command that explains itself in a few lines naming ``needles``, with no traceback."""
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "Traceback" not in text, text
    assert len(text.strip().splitlines()) <= 15, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in: {text}"
    return text


def load_ckpt(path: Path) -> Dict[str, Any]:
    """A checkpoint opened as a user would open it: no code executed, tensors on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


def read_events(tb_dir: Path):
    """Every TensorBoard event file under ``tb_dir``, loaded (no sampling: all scalars and images kept)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def tensors(tree: Any, prefix: str = "") -> Iterator[Tuple[str, torch.Tensor]]:
    """Every tensor in a nested dict/list, with its path."""
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from tensors(value, f"{prefix}/{key}")
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from tensors(value, f"{prefix}/{i}")


def assert_same_tensors(a: Any, b: Any) -> None:
    """Same tensor paths, and every tensor equal bit for bit."""
    left, right = dict(tensors(a)), dict(tensors(b))
    assert left.keys() == right.keys()
    different = [k for k in left if not torch.equal(left[k], right[k])]
    assert not different, f"{len(different)} of {len(left)} tensors differ, e.g. {different[:3]}"
