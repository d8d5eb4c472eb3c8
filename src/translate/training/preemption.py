"""A stop signal reaches the training process, not its DataLoader workers.

A cancelled or preempted job gets SIGTERM in every process of its process group (SLURM signals every process
of a job step; ``kill -- -<pgid>`` and a terminal's Ctrl-C do the same). torch's workers die of it, and the
main process then fails with ``DataLoader worker (pid ...) is killed by signal`` before it could save. Workers
started by :func:`preemptible_loader` ignore the stop signals instead, so only the main process acts on them
(finish the step, write ``latest.pt``, exit 0); the workers are shut down as usual when the loop stops.
"""

from __future__ import annotations

import signal
from typing import Any, Iterator

from torch.utils.data import DataLoader

#: Ctrl-C, SIGTERM (cancel, preemption) and SIGUSR2 (SLURM's warning before the time limit, which submitit asks for).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR2") if hasattr(signal, name))


def _ignore_stop_signals(worker_id: int) -> None:
    """A worker's first act: ignore the stop signals, then unblock them (any that arrived since the fork is
    discarded rather than delivered)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class _PreemptibleLoader:
    """Iterates a DataLoader; the stop signals stay blocked while its workers are started, so none can be
    killed in the moment between its fork and its ``worker_init_fn`` (the main process gets them right after)."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

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
    return _PreemptibleLoader(DataLoader(dataset, worker_init_fn=_ignore_stop_signals, **kwargs))
