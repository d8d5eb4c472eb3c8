"""Data-parallel training over the processes that ``torchrun`` starts (one per GPU, or several on a CPU).

Each process trains a full copy of the model on its own share of every epoch; after each backward pass
the gradients of the networks being updated are averaged over the processes (:func:`average_gradients`),
so every copy takes the same optimiser step and the copies stay identical. torch's DistributedDataParallel
does not fit a GAN step: its reducer expects each wrapped module to run forward once per backward with a
fixed set of parameters requiring gradients, while a GAN step runs a discriminator several times (real,
fake), freezes it during the generator's update, and backpropagates several losses through the same
networks before their optimisers step. Batch-norm statistics stay per process, as with DistributedDataParallel's default,
unless ``device.sync_bn`` converts the networks with :func:`sync_batch_norm`.

SLURM's tasks (``srun``, submitit) join the same way: :mod:`translate.training.cluster` gives them torchrun's
variables. Without either (no ``WORLD_SIZE`` > 1 in the environment) every function here is a no-op for one process.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from datetime import datetime
from typing import Any, Deque, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce

from translate.training.cluster import adopt_slurm_env


def init_from_env() -> None:
    """Join the process group that torchrun or a multi-task SLURM step describes in the environment (gloo for
    CPU tensors, NCCL for CUDA ones when there is a GPU); nothing when launched as one process or already joined."""
    adopt_slurm_env()
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


def average_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Average the gradients of ``params`` (one optimiser's) over the processes, in place, with one flat
    all-reduce after the backward pass, as NVlabs' StyleGAN2-ADA and StyleGAN3 do for every update. A
    parameter that this process's loss left without a gradient sends zeros and receives the mean, so every
    copy takes the same step; a frozen one (``requires_grad`` false everywhere) keeps no gradient.

    One flat call rather than DistributedDataParallel's buckets overlapped with the backward pass: an earlier
    version launched buckets from gradient hooks, measured 9% slower on the CPU (two gloo processes, see
    docs/results.md), and no GPU measurement ever showed it gaining."""
    _, world = rank_and_world()
    if world == 1 or not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    for p, grad in zip(params, torch.split(flat, [p.numel() for p in params])):
        if p.grad is not None:
            p.grad.copy_(grad.view_as(p.grad))
        elif p.requires_grad:
            p.grad = grad.view_as(p).clone()


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


class StopVote:
    """Whether any process received a stop signal, agreed by every process without holding up each step.

    Reading a per-step all-reduce of the flag straight back would make every step wait for the slowest
    process and, on a GPU, for the device to finish all the work queued so far. Instead each step's vote is an
    asynchronous all-reduce (on CUDA, copied to pinned host memory behind the step's kernels) whose result is
    read ``lag`` votes later, when it has long completed. Every process casts the same votes in the same order
    and reads the same one at the same step, so they all stop after the same step, at most ``lag`` steps after
    the signal. One process alone needs no vote: its own flag is the answer at once.
    """

    def __init__(self, device: torch.device, lag: int = 2) -> None:
        self.device = device
        self.lag = lag
        self._votes: Deque[Tuple[Any, torch.Tensor]] = deque()

    def cast(self, signum: int) -> int:
        """Vote this process's signal number (0: none) for this step; returns the vote cast ``lag`` votes ago:
        the largest signal number any process had then, 0 when none had one."""
        if not dist.is_initialized():
            return signum
        # torch.full launches a fill kernel; torch.tensor([...], device="cuda") would copy and wait for the device.
        value = torch.full((1,), signum, dtype=torch.int32, device=self.device)
        work = dist.all_reduce(value, op=dist.ReduceOp.MAX, async_op=True)
        if value.is_cuda:
            work.wait()  # NCCL: the stream waits for the collective, the host does not
            host = torch.empty(1, dtype=torch.int32, pin_memory=True)
            host.copy_(value, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self._votes.append((done, host))
        else:
            self._votes.append((work, value))
        if len(self._votes) <= self.lag:
            return 0
        return self._read()

    def _read(self) -> int:
        handle, value = self._votes.popleft()
        if isinstance(handle, torch.cuda.Event):
            handle.synchronize()
        else:
            handle.wait()
        return int(value.item())

    def drain(self) -> None:
        """Wait for the votes still in flight (every process has cast the same ones) before the group is left."""
        while self._votes:
            self._read()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def gather_to_main(value: Any) -> Optional[List[Any]]:
    """Every process's ``value``, in rank order, on rank 0 (a collective call); None on the other ranks and
    when not distributed."""
    if not dist.is_initialized():
        return None
    rank, world = rank_and_world()
    gathered: Optional[List[Any]] = [None] * world if rank == 0 else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


class _SyncBatchNorm(nn.SyncBatchNorm):
    """torch's SyncBatchNorm, which also runs on CPU tensors (gloo): torch's fused kernels for it exist for
    GPUs only, so on the CPU the batch statistics over every process are summed with a differentiable
    all-reduce (two passes: mean, then variance about it, as one process computes them)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.device.type != "cpu" or not (self.training and dist.is_initialized()):
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = torch.tensor([float(input.numel() // input.size(1))])
        dist.all_reduce(count)
        n = count.item()
        mean = differentiable_all_reduce(input.sum(dims)) / n
        centred = input - mean.view(shape)
        var = differentiable_all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            assert self.num_batches_tracked is not None and self.running_mean is not None and self.running_var is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(var.detach() * (n / max(n - 1, 1)), alpha=factor)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        return out * self.weight.view(shape) + self.bias.view(shape) if self.affine else out


def sync_batch_norm(module: nn.Module) -> nn.Module:
    """Every batch-norm layer of ``module`` (in place) normalising with the statistics of the whole batch over
    all processes, as one process with the whole batch would: torch's ``convert_sync_batchnorm``, with the
    layers' class extended to CPU tensors."""
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for layer in converted.modules():
        if type(layer) is nn.SyncBatchNorm:
            layer.__class__ = _SyncBatchNorm
    return converted
