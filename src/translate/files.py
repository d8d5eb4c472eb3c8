"""The files translate reads and writes: atomic writes, weights-only loads, and the checkpoint format.

A checkpoint holds only tensors, numbers, strings and plain containers, so it loads with
``torch.load(weights_only=True)``: opening one never executes code from the file.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping, Union

import torch

from translate.errors import CheckpointError

FORMAT = "translate-checkpoint"
# 2: depth keys (num_downs, n_blocks, n_layers) are null unless set, and a set one wins over the arch preset.
VERSION = 2


def atomic_write(path: Union[str, Path], write: Any) -> None:
    """Call ``write(tmp_path)`` then rename the result over ``path``, so a crash or ``kill -9`` at any
    moment leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; outputs are meant to be shared like any other file
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_checkpoint(path: Union[str, Path]) -> Path:
    """A checkpoint file, or a run directory meaning its ``checkpoints/latest.pt``."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "latest.pt"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass a run directory holding checkpoints/latest.pt or a .pt file")
    return path


def read_weights(path: Union[str, Path]) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: only tensors, numbers, strings and plain
    containers come back, and a file that would need anything else, or that is not a torch file at
    all, raises CheckpointError with a one-line message naming it. Nothing in the file is executed."""
    path = Path(path)
    try:
        file = open(path, "rb")
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        with file, warnings.catch_warnings():
            # Plain pickles of protocol > 2 load fine; the notice would only add noise to the error path.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(file, map_location="cpu", weights_only=True)
    # A damaged or hostile file can fail anywhere in the unpickler, with any exception type; a
    # truncated zip archive even raises OSError(EINVAL).
    except Exception as err:  # noqa: BLE001
        text = str(err)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            raise CheckpointError(
                f"{path} refers to the Python object {found.group(1)}, which weights never need; refusing to load "
                "it (translate never runs code from a checkpoint; re-save the tensors alone if you trust the file)"
            ) from None
        detail = next((line.strip() for line in text.splitlines() if "Unsupported" in line), "")
        detail = detail or (text.strip().splitlines()[0] if text.strip() else type(err).__name__)
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated, corrupt or not a torch file): {detail}") from None


def is_translate_checkpoint(obj: Any) -> bool:
    """Whether ``obj`` (what :func:`read_weights` returned) is one of translate's own checkpoints."""
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT
