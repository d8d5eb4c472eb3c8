"""Data-parallel training over the processes that ``torchrun`` starts (one per GPU, or several on a CPU).

Each process trains a full copy of the model on its own share of every epoch; after each backward pass
the gradients of the networks being updated are averaged over the processes, so every copy takes the same
optimiser step and the copies stay identical. torch's DistributedDataParallel is not used: its reducer
expects each wrapped module to run forward once per backward with a fixed set of parameters requiring
gradients, while a GAN step runs a discriminator several times (real, fake) and freezes it during the
generator's update. Batch-norm statistics stay per process, as with DistributedDataParallel's default.

Without torchrun (no ``WORLD_SIZE`` > 1 in the environment) every function here is a no-op for one process.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from typing import Dict, Iterable, Iterator, Tuple

import torch
import torch.distributed as dist


def init_from_env() -> None:
    """Join the process group that torchrun describes in the environment (gloo for CPU tensors, NCCL for
    CUDA ones when there is a GPU); nothing when launched as one process or already joined."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group(backend="gloo")


@contextlib.contextmanager
def process_group() -> Iterator[None]:
    """Joined for the duration of the block, then left (so NCCL shuts down cleanly)."""
    init_from_env()
    try:
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def rank_and_world() -> Tuple[int, int]:
    """This process's rank and the number of processes (0, 1 when not distributed)."""
    if not dist.is_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """The process that writes files, logs and checkpoints: rank 0."""
    return rank_and_world()[0] == 0


def local_device(device: torch.device) -> torch.device:
    """This process's own GPU (``LOCAL_RANK``) when training on CUDA over several processes."""
    if device.type != "cuda" or not dist.is_initialized():
        return device
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def shared_start_time() -> datetime:
    """The launch time of rank 0, the same in every process: it names the run directory they share."""
    stamp = [datetime.now()]
    if dist.is_initialized():
        dist.broadcast_object_list(stamp, src=0)
    return stamp[0]


def broadcast_module(module: torch.nn.Module) -> None:
    """Give every process rank 0's parameters and buffers (same seed or not, the copies start equal)."""
    if not dist.is_initialized():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace each parameter's gradient with its mean over the processes, in one collective call.

    A parameter without a gradient counts as a zero one, so every process sends the same layout."""
    _, world = rank_and_world()
    if world == 1:
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    for p, grad in zip(params, torch.split(flat, [p.numel() for p in params])):
        p.grad.copy_(grad.view_as(p.grad))


def mean_scalars(values: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Scalar tensors (a step's losses) averaged over the processes, as floats, in one collective call:
    what one process with the whole batch would have logged."""
    keys = list(values)
    if not keys:
        return {}
    stacked = torch.stack([values[k].detach().float() for k in keys])
    _, world = rank_and_world()
    if world > 1:
        dist.all_reduce(stacked)
        stacked /= world
    return dict(zip(keys, stacked.tolist()))


def all_agree(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` holds in every process (one collective call); ``flag`` alone when not distributed."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([0 if flag else 1], device=device)
    dist.all_reduce(value)
    return int(value.item()) == 0


def any_process(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` holds in at least one process."""
    return not all_agree(not flag, device)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
