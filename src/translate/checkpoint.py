"""Checkpoint files: atomic writes, safe loads, and the random-number state that makes resume exact.

A checkpoint holds only tensors, numbers, strings and plain containers, so it loads with
``torch.load(weights_only=True)``: opening one never executes code from the file.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Union

import torch

FORMAT = "translate-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit the model; the message names the file."""


def atomic_write(path: Union[str, Path], write: Any) -> None:
    """Call ``write(tmp_path)`` then rename the result over ``path``, so a crash or ``kill -9`` at any
    moment leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(state: Dict[str, Any], path: Union[str, Path]) -> None:
    atomic_write(path, lambda tmp: torch.save({"format": FORMAT, "version": VERSION, **state}, tmp))


def resolve_checkpoint(path: Union[str, Path]) -> Path:
    """A checkpoint file, or a run directory meaning its ``checkpoints/latest.pt``."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "latest.pt"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass a run directory holding checkpoints/latest.pt or a .pt file")
    return path


def load_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Load one of our checkpoints on the CPU without executing code; clear errors for anything else."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated, corrupt or not a torch file): {first}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a translate checkpoint (a reference-format generator file belongs in checkpoint=... of translate-test)")
    return state


def capture_rng() -> Dict[str, Any]:
    state: Dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` needs tuples; a round trip through a checkpoint may give lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
