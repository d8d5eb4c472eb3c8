"""An exponential moving average of a model's generators (``model.ema``), kept beside the raw weights.

``torch.optim.swa_utils.AveragedModel`` does the averaging (parameters and buffers); this module decides when
it runs and with which decay, saves and restores it, and swaps the averaged weights into the model for
validation, the image grid and checkpoints that translate-test and translate-export read.

The decay ramps up as TensorFlow's ``ExponentialMovingAverage(num_updates=n)`` does: the n-th update after
``start_step`` uses ``min(decay, (1 + n) / (10 + n))``. With a fixed 0.999 from the first update, the
initial random weights would still make up 0.999 ** 1500 = 22% of the average after 1,500 steps (and the
weights of the first few hundred steps much of the rest): the cGAN's averaged generator then drew one blob
for every class (measured: classifier accuracy 10%, against 97.6% for its raw weights; docs/results.md). The
ramp reaches 0.999 after about 9,000 updates, so long runs average as before.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Mapping, Sequence, Union

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel


def ramped_decay(decay: float, updates: int) -> float:
    """The decay of the update that follows ``updates`` averaged ones: ``min(decay, (1 + n) / (10 + n))``."""
    return min(decay, (1 + updates) / (10 + updates))


class GeneratorEMA:
    """EMA copies of ``nets`` (name -> generator). :meth:`update` after each generator update at ``step``:
    before ``start_step`` each copy follows its network; from then on it moves by ``1 - d`` with ``d`` the
    :func:`ramped_decay` of ``decay``."""

    def __init__(self, nets: Mapping[str, nn.Module], decay: float, start_step: int) -> None:
        self.nets = dict(nets)
        self.decay = decay
        self.start_step = start_step
        # Updates averaged so far (AveragedModel's n_averaged, kept here too so that no update reads a
        # device tensor back to the host).
        self.updates = 0
        self.averaged = {
            name: AveragedModel(net, multi_avg_fn=self._lerp, use_buffers=True).requires_grad_(False) for name, net in self.nets.items()
        }

    @torch.no_grad()
    def _lerp(self, averaged: Sequence[torch.Tensor], current: Sequence[torch.Tensor], _: Union[torch.Tensor, int]) -> None:
        weight = 1 - ramped_decay(self.decay, self.updates)
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(list(averaged), list(current), weight)
        else:  # integer buffers (batch norm's num_batches_tracked), as AveragedModel's own EMA treats them
            for a, c in zip(averaged, current):
                a.copy_(a * (1 - weight) + c * weight)

    @torch.no_grad()
    def update(self, step: int) -> None:
        if step < self.start_step:
            # AveragedModel copies the weights at its first update: keep it at its first until start_step.
            for averaged in self.averaged.values():
                averaged.n_averaged.zero_()
            self.updates = 0
        for name, net in self.nets.items():
            self.averaged[name].update_parameters(net)
        self.updates += 1

    def state_dict(self) -> Dict[str, Any]:
        """``{network: AveragedModel state}`` (``module.<key>`` weights and ``n_averaged``), for checkpoints."""
        return {name: averaged.state_dict() for name, averaged in self.averaged.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, averaged in self.averaged.items():
            averaged.load_state_dict(state[name])
        self.updates = int(next(iter(self.averaged.values())).n_averaged)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The averaged weights in the networks themselves for the duration (validation, the grid)."""
        raw = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in self.nets.items()}
        try:
            for name, net in self.nets.items():
                net.load_state_dict(self.averaged[name].module.state_dict())
            yield
        finally:
            for name, net in self.nets.items():
                net.load_state_dict(raw[name])
