"""One optimisation step of a model: the engine's side of ``GANModel.training_step``.

:class:`TrainStep` is the :class:`~translate.models.base.Optimization` a model calls (``autocast()``,
``step(name, loss)``). It owns mixed precision and the fp16 gradient scaler, averages each update's gradients
over the processes, leaves out an update whose loss or gradient is not finite (with the batch-norm statistics
the skipped step left behind rolled back), spends the run's budget of such skips, and reports the step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager, Dict, List, Mapping, Optional, Tuple

import torch

from translate.config import Amp
from translate.errors import TrainingError
from translate.models.base import GANModel, Optimization
from translate.training import distributed, speed

log = logging.getLogger(__name__)


@dataclass
class StepReport:
    """What one step did: its losses (and diagnostics), the updates it left out, the gradient norms of the
    networks when they were asked for."""

    losses: Dict[str, torch.Tensor]
    skipped: List[str] = field(default_factory=list)
    grad_norms: Dict[str, torch.Tensor] = field(default_factory=dict)


class TrainStep(Optimization):
    """Runs ``model.training_step`` with its optimisers (one per ``model.optimizer_groups`` entry).

    Args:
        model: the model, on ``device``.
        optimizers: optimiser name -> optimiser.
        device: where the model trains (its type decides the autocast device).
        amp: ``off``, ``bf16`` or ``fp16`` (fp16 scales the loss: its gradients underflow otherwise).
        skip_budget: how many steps with a non-finite loss or gradient the whole run may leave out
            (``trainer.skip_nonfinite``); the next one raises TrainingError.
        skipped: how many the run already left out (a resumed run's count).
        latest: the run's latest checkpoint, which the error of a spent budget points to.
    """

    def __init__(
        self,
        model: GANModel,
        optimizers: Mapping[str, torch.optim.Optimizer],
        device: torch.device,
        amp: Amp = Amp.off,
        skip_budget: int = 0,
        skipped: int = 0,
        latest: Optional[Path] = None,
    ) -> None:
        self.model = model
        self.optimizers = dict(optimizers)
        self.dtype = {Amp.bf16: torch.bfloat16, Amp.fp16: torch.float16}.get(Amp(amp))
        self.device_type = device.type
        # bf16 has fp32's range and needs no scaling.
        self.scaler = torch.amp.GradScaler(device.type, enabled=Amp(amp) == Amp.fp16)
        self.skip_budget = skip_budget
        self.skipped = skipped
        self.latest = latest
        self._track_norms = False
        self._report = StepReport({})
        # (optimiser name, finite flag on the device) of the updates a fused Adam decided on the device.
        self._flags: List[Tuple[str, torch.Tensor]] = []
        self._updates = 0

    def autocast(self) -> ContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    def step(self, name: str, loss: torch.Tensor) -> None:
        # A non-finite loss, or a finite one with a non-finite gradient (an overflow inside the backward
        # pass), would poison the weights and Adam's moments: leave this update out and report it. Over
        # several processes they all leave it out when any one must, so the copies stay the same.
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        distributed.average_gradients(params)
        finite = torch.isfinite(loss.detach())
        if not self.scaler.is_enabled():
            # With fp16 the scaler itself skips steps whose scaled gradients overflowed, and lowers the scale.
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                finite = finite & torch.isfinite(torch.nn.utils.get_total_norm(grads))
        if not self.scaler.is_enabled() and speed.supports_found_inf(optimizer):
            # No host sync here: a fused Adam leaves the update out itself when the flag says so, and the
            # step's flags are read once, after every update of the step is queued.
            finite = speed.any_process_nonfinite(finite)
            self._flags.append((name, finite))
            self._record_norms(name, optimizer)
            speed.conditional_step(optimizer, finite)
            return
        if not distributed.all_agree(bool(finite), loss.device):
            optimizer.zero_grad(set_to_none=True)
            self._report.skipped.append(name)
            return
        self._record_norms(name, optimizer)
        self.scaler.step(optimizer)
        self._updates += 1

    def _record_norms(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        if not self._track_norms:
            return
        self.scaler.unscale_(optimizer)
        for net_name in self.model.optimizer_groups[name]:
            grads = [p.grad.detach().float().norm() for p in self.model.networks[net_name].parameters() if p.grad is not None]
            if grads:
                self._report.grad_norms[net_name] = torch.stack(grads).norm()

    def run(self, batch: Any, step: int, generator_step: bool = True, track_norms: bool = False) -> StepReport:
        """Step ``step`` (counting from 0) on ``batch`` (on the device): the model's updates, the discriminators'
        alone unless ``generator_step``; ``track_norms``: report the gradient norm of every network.

        Raises TrainingError when the step is not finite and the budget of skipped steps is spent."""
        self.generator_step = generator_step
        self._track_norms = track_norms
        self._report = StepReport({})
        # A skipped step must not leave non-finite batch-norm statistics behind either.
        buffers = [b.clone() for b in self.model.buffers()] if self.skip_budget else []
        self._report.losses = self.model.training_step(batch, self)
        self._report.skipped += speed.read_flags(self._flags)
        self._flags = []
        if self._report.skipped:
            for now, before in zip(self.model.buffers(), buffers):
                if now.is_floating_point() and not torch.isfinite(now).all():
                    now.copy_(before)
        if self._updates:  # the scaler may only adjust after at least one scaled step
            self.scaler.update()
            self._updates = 0
        if self._report.skipped:
            self._spend_budget(step)
        return self._report

    def _spend_budget(self, step: int) -> None:
        losses = self._report.losses
        terms = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
        what = "loss" if not all(bool(torch.isfinite(v).all()) for v in losses.values()) else "gradient (the losses are finite)"
        self.skipped += 1
        if self.skipped > self.skip_budget:
            exists = self.latest is not None and self.latest.exists()
            hint = f"the last good checkpoint is {self.latest}" if exists else "no checkpoint was written yet"
            raise TrainingError(
                f"non-finite {what} at step {step + 1}: {terms}; {hint}; lower model.optim.lr, try device.amp=off, "
                "or allow skipping with trainer.skip_nonfinite=N"
            )
        log.warning(
            "step %d: non-finite %s (%s); skipped the %s update(s) (%d of trainer.skip_nonfinite=%d)",
            step + 1,
            what,
            terms,
            "/".join(self._report.skipped),
            self.skipped,
            self.skip_budget,
        )

    def state_dict(self) -> Dict[str, Any]:
        """The scaler's state (the fp16 loss scale)."""
        return self.scaler.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.scaler.load_state_dict(state)
