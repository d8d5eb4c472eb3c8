"""A stop signal reaches the training process, not its DataLoader workers.

A cancelled or preempted job gets SIGTERM in every process of its process group (SLURM signals every process
of a job step; ``kill -- -<pgid>`` and a terminal's Ctrl-C do the same). torch's workers die of it, and the
main process then fails with ``DataLoader worker (pid ...) is killed by signal`` before it could save. Workers
started by :func:`preemptible_loader` leave the stop signals to the main process instead, which acts on
them (finish the step, write ``latest.pt``, exit 0); the workers are shut down as usual when the loop stops.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Iterator

from torch.utils.data import DataLoader

#: Ctrl-C, SIGTERM (cancel, preemption) and SIGUSR2 (SLURM's warning before the time limit, which submitit asks for).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR2") if hasattr(signal, name))


def _leave_stop_signals_to_the_main_process(worker_id: int) -> None:
    """A worker's first act (the stop signals are still blocked, as they were when it was forked): ignore
    Ctrl-C and SIGUSR2, discarding any that arrived since the fork, and keep SIGTERM for a thread that exits
    the worker only when its parent sent it (the DataLoader's own shutdown, and interpreter exit, terminate
    workers that way); a SIGTERM from anyone else (a whole process group, a job step) is dropped."""
    others = [s for s in STOP_SIGNALS if s != signal.SIGTERM]
    for signum in others:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, others)
    parent = os.getppid()

    def wait_for_sigterm() -> None:
        while True:
            if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
                os._exit(0)

    threading.Thread(target=wait_for_sigterm, name="sigterm", daemon=True).start()


class _PreemptibleLoader:
    """Iterates a DataLoader; the stop signals stay blocked while its workers are started, so none can be
    killed in the moment between its fork and its ``worker_init_fn`` (the main process gets them right after)."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        # The rest is the DataLoader's own (num_workers, pin_memory, dataset, ...). "loader" itself is
        # looked up here only before __init__ set it (a copy being unpickled): no recursion into it.
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator[Any]:
        if self.loader.num_workers == 0:
            return iter(self.loader)
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            return iter(self.loader)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def preemptible_loader(dataset: Any, **kwargs: Any) -> _PreemptibleLoader:
    """``DataLoader(dataset, **kwargs)`` whose worker processes leave the stop signals to the main process."""
    return _PreemptibleLoader(DataLoader(dataset, worker_init_fn=_leave_stop_signals_to_the_main_process, **kwargs))
