"""How translate writes and reads its files: atomic writes, and weights-only loads that never execute code
from a file. The checkpoint format itself is ``translate.models.checkpoint``'s."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Union

import torch

from translate.errors import CheckpointError


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


@contextlib.contextmanager
def folders_removed_on_failure(folder: Union[str, Path]) -> Iterator[None]:
    """The folders on the way to ``folder`` that do not exist yet and that the block creates are removed
    again, if they are still empty, when the block fails: a failed download leaves no empty ``data/``."""
    folder = Path(folder).absolute()
    new = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        yield
    except BaseException:
        for path in new:  # deepest first
            with contextlib.suppress(OSError):  # not empty (a resumable .part), or never made
                path.rmdir()
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
