"""Training checkpoints: saving and loading a run's state, and the random-number state that makes resume exact."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, Union

import torch

from translate.errors import CheckpointError
from translate.files import FORMAT, VERSION, atomic_write, is_translate_checkpoint, read_weights, resolve_checkpoint


def save_checkpoint(state: Dict[str, Any], path: Union[str, Path]) -> None:
    atomic_write(path, lambda tmp: torch.save({"format": FORMAT, "version": VERSION, **state}, tmp))


def load_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Load one of our checkpoints (a file, or a run directory's latest) on the CPU without executing code."""
    path = resolve_checkpoint(path)
    state = read_weights(path)
    if not is_translate_checkpoint(state):
        raise CheckpointError(
            f"{path} is not a translate checkpoint (a reference-format generator file belongs in checkpoint=... of translate-test)"
        )
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
