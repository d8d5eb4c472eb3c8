"""Speed without a change in what is trained: the optimiser implementation and a non-finite skip decided on
the device.

- Adam's ``fused=True`` kernel updates every parameter of a group in one pass. On the CPU the default (a
  per-tensor loop) costs as much as several convolutions: for CycleGAN's 28 M parameters it was about
  8 s against 1 s for the fused kernel on the 2-core reference machine, a large part of a 128 x 128 step. On
  CUDA it is one kernel launch instead of hundreds. Same arithmetic: the weights match the default's to
  rounding (tests/test_speed.py).
- A fused Adam also reads ``optimizer.found_inf`` (the attribute ``GradScaler`` sets for such optimisers):
  when it is 1 the kernel leaves the parameters, the moments and the step count as they were. So an update
  whose loss or gradient is not finite can be left out without the host reading the flag first; the engine
  reads the flags of the whole step once, at its end, to report and count the skip.
"""

from __future__ import annotations

from typing import Iterable, List, Tuple

import torch
import torch.distributed as dist


def fused_adam_supported(params: Iterable[torch.nn.Parameter]) -> bool:
    """Whether Adam's fused kernel can update ``params``: floating point, all on the CPU or all on CUDA (MPS
    has it only for some dtypes and versions, so it keeps the default)."""
    devices = {(p.device.type, p.dtype.is_floating_point) for p in params}
    return len(devices) == 1 and next(iter(devices)) in {("cpu", True), ("cuda", True)}


def build_adam(params: List[torch.nn.Parameter], **kwargs) -> torch.optim.Adam:
    """``torch.optim.Adam(params, **kwargs)``, fused where :func:`fused_adam_supported` says it can be."""
    return torch.optim.Adam(params, fused=fused_adam_supported(params) or None, **kwargs)


def supports_found_inf(optimizer: torch.optim.Optimizer) -> bool:
    """A fused optimiser skips its own update when ``optimizer.found_inf`` is set (GradScaler's protocol)."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False)) and all(g.get("fused") for g in optimizer.param_groups)


def any_process_nonfinite(finite: torch.Tensor) -> torch.Tensor:
    """``finite`` (a 0-d bool tensor) AND-ed over the processes, on the device: every copy skips together."""
    if not dist.is_initialized():
        return finite
    flag = (~finite).to(torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return flag == 0


def conditional_step(optimizer: torch.optim.Optimizer, finite: torch.Tensor) -> None:
    """``optimizer.step()`` that leaves everything as it was when ``finite`` is False, without a host sync."""
    # The fused kernels read it on the device (GradScaler's protocol sets the same attribute).
    optimizer.found_inf = (~finite).to(torch.float32)  # type: ignore[attr-defined]
    try:
        optimizer.step()
    finally:
        delattr(optimizer, "found_inf")


def read_flags(flags: List[Tuple[str, torch.Tensor]]) -> List[str]:
    """The names whose finite flag is False: one read back to the host for the whole step."""
    if not flags:
        return []
    values = torch.stack([f for _, f in flags]).tolist()
    return [name for (name, _), ok in zip(flags, values) if not ok]


def keep_fused(optimizer: torch.optim.Optimizer) -> None:
    """After ``load_state_dict``: the checkpoint's param groups replaced ours, ``fused`` included, so a run
    saved before Adam was fused (or on a device without the kernel) would resume on the slow path. Use the
    kernel this machine has, with the step counts where the fused kernel reads them (beside the parameters)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    fused = fused_adam_supported(params)
    if not isinstance(optimizer, torch.optim.Adam) or all(bool(g.get("fused")) == fused for g in optimizer.param_groups):
        return
    for group in optimizer.param_groups:
        group["fused"] = fused or None
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if "step" in state and torch.is_tensor(state["step"]):
                state["step"] = state["step"].to(dtype=torch.float32, device=p.device if fused else "cpu")
