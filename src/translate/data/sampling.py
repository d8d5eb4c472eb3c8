"""Deterministic epoch order and per-sample randomness.

The sampler yields ``(index, seed)`` keys instead of bare indices. The order of an epoch and the seed
of every sample are functions of ``(run seed, epoch)`` alone, so random crops, flips and unaligned
partners do not depend on how many DataLoader workers there are, and a run resumed in the middle of
an epoch sees exactly the samples, with exactly the augmentations, it would have seen.
"""

from __future__ import annotations

from typing import Iterator, Tuple, Union

import torch
from torch.utils.data import Sampler

SampleKey = Union[int, Tuple[int, int]]


def sample_rng(key: SampleKey) -> Tuple[int, torch.Generator]:
    """Split a sampler key into (index, generator). A bare int (test-time access) seeds with itself."""
    index, seed = key if isinstance(key, tuple) else (key, key)
    return int(index), torch.Generator().manual_seed(int(seed))


class EpochSampler(Sampler[Tuple[int, int]]):
    """Yields ``(index, seed)`` for one epoch, optionally starting part-way through it.

    Over ``world`` processes, process ``rank`` takes every ``world``-th key of the epoch from position
    ``rank`` on, and each takes ``length // world`` of them (the last few keys of an epoch are dropped so
    that all take the same number of steps): batch ``b`` of every process together is batch ``b`` of
    one process with ``world`` times the batch size."""

    def __init__(self, length: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1) -> None:
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world = world
        self.epoch = 0
        self.start = 0

    @property
    def per_process(self) -> int:
        """The keys each process draws in a whole epoch."""
        return self.length // self.world

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch to draw and the number of its samples this process already consumed."""
        self.epoch = epoch
        self.start = start

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.length, generator=gen) if self.shuffle else torch.arange(self.length)
        seeds = torch.randint(0, 2**62, (self.length,), generator=gen)
        for j in range(self.start, self.per_process):
            i = j * self.world + self.rank
            yield int(order[i]), int(seeds[i])

    def __len__(self) -> int:
        return self.per_process - self.start
