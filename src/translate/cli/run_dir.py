"""What becomes of a run directory when ``translate-train`` stops on an error.

Hydra creates the directory, its ``.hydra/`` and ``train.log`` before the task runs, so a run that fails
while it reads its data would leave an empty directory behind, and "the newest run" would be a dead one.
A run that never started training is removed; one that did (or a resumed one, which holds an earlier run's
work) is kept, and the error goes to its ``train.log`` as well as to the terminal.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from translate.errors import TranslateError

log = logging.getLogger("translate")

#: What a run directory holds before training writes anything of its own (tb/, samples/, checkpoints/).
BEFORE_TRAINING = frozenset({".hydra", "train.log", "config.yaml"})


def holds_more(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds anything but what Hydra and translate-train write before training: a
    ``hydra.run.dir`` that named an earlier run's folder is never removed."""
    return run_dir.is_dir() and any(entry.name not in BEFORE_TRAINING for entry in run_dir.iterdir())


def _log_files(run_dir: Path) -> list[logging.FileHandler]:
    """The root logger's file handlers that write into ``run_dir`` (Hydra's train.log)."""
    return [
        h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler) and Path(h.baseFilename).parent == run_dir.resolve()
    ]


def settle_failed_run(run_dir: Path, err: BaseException, keep: bool) -> None:
    """Append ``err`` to the train.log of ``run_dir`` (only there: the caller prints it) when ``keep``
    (training started, or a resumed run) or the directory holds more than this attempt wrote; else
    remove the directory."""
    run_dir = Path(run_dir)
    here = Path.cwd()
    if keep or holds_more(run_dir) or run_dir.resolve() in (here, *here.parents):
        # A user's error is one line; anything else is a bug whose traceback belongs in the log.
        exc_info = None if isinstance(err, TranslateError) else (type(err), err, err.__traceback__)
        record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "stopped: %s", (str(err).strip(),), exc_info)
        for handler in _log_files(run_dir):
            handler.handle(record)
        return
    for handler in _log_files(run_dir):
        # Closed and detached first: a later log line would otherwise reopen train.log in a removed folder.
        logging.getLogger().removeHandler(handler)
        handler.close()
    shutil.rmtree(run_dir, ignore_errors=True)
    # The folders Hydra made for it (outputs/<model>/<data>/) go too when nothing else is in them.
    for parent in run_dir.resolve().parents:
        if parent == here or here not in parent.parents or any(parent.iterdir()):
            break
        parent.rmdir()
