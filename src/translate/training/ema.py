"""An exponential moving average of a model's generators (``model.ema``), kept beside the raw weights.

``torch.optim.swa_utils.AveragedModel`` with its EMA update does the averaging (parameters and buffers);
this module decides when it runs, saves and restores it, and swaps the averaged weights into the model
for validation, the image grid and checkpoints that translate-test and translate-export read.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Mapping

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class GeneratorEMA:
    """EMA copies of ``nets`` (name -> generator). :meth:`update` after each generator update at ``step``:
    before ``start_step`` each copy follows its network; from then on it moves by ``1 - decay``."""

    def __init__(self, nets: Mapping[str, nn.Module], decay: float, start_step: int) -> None:
        self.nets = dict(nets)
        self.start_step = start_step
        self.averaged = {
            name: AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True).requires_grad_(False)
            for name, net in self.nets.items()
        }

    @torch.no_grad()
    def update(self, step: int) -> None:
        for name, net in self.nets.items():
            averaged = self.averaged[name]
            if step < self.start_step:
                # AveragedModel copies the weights at its first update: keep it at its first until start_step.
                averaged.n_averaged.zero_()
            averaged.update_parameters(net)

    def state_dict(self) -> Dict[str, Any]:
        """``{network: AveragedModel state}`` (``module.<key>`` weights and ``n_averaged``), for checkpoints."""
        return {name: averaged.state_dict() for name, averaged in self.averaged.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, averaged in self.averaged.items():
            averaged.load_state_dict(state[name])

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
