"""Everything a run trains with, built from its config: :func:`build_run` makes the data pipeline, the model,
its optimisers and schedulers, the moving average of its generators, its validation and the fixed batch of
its image grid, in that order, on one device."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader

from translate.data.base import SplitDataset
from translate.data.batch import move_to
from translate.data.configs import ImageDataConfig, MNISTDataConfig, evaluation_data
from translate.data.registry import build_dataset, first_split
from translate.data.sampling import EpochSampler
from translate.errors import DatasetNotFoundError, TrainingError
from translate.evaluation.protocols import Validation, protocol_for
from translate.inference.warm_start import init_networks
from translate.models.base import GANModel, build_model
from translate.settings.schema import TrainConfig
from translate.training import distributed
from translate.training.ema import GeneratorEMA
from translate.training.optimizers import build_optimizer
from translate.training.preemption import _PreemptibleLoader, preemptible_loader
from translate.training.schedulers import build_scheduler


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass
class Run:
    """The parts of a run, built (see :func:`build_run`)."""

    dataset: SplitDataset
    sampler: EpochSampler
    loader: _PreemptibleLoader
    model: GANModel
    optimizers: Dict[str, torch.optim.Optimizer]
    schedulers: Dict[str, LRScheduler]
    ema: Optional[GeneratorEMA]
    #: The model's validation (every ``trainer.val_every_n_epochs``), or None.
    validation: Optional[Validation]
    #: The batch the image grid shows, on the device.
    visual_batch: Any
    steps_per_epoch: int
    total_epochs: int
    total_steps: int


def _loader(cfg: TrainConfig, dataset: SplitDataset, sampler: EpochSampler, device: torch.device) -> _PreemptibleLoader:
    workers = cfg.data.num_workers
    return preemptible_loader(
        dataset,
        batch_size=cfg.trainer.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        # Workers live across epochs: no re-spawn (and re-import) per epoch. Safe for exact resume,
        # because every sample's crop and flip come from its sampler key, not from a worker's RNG.
        persistent_workers=workers > 0,
        # Each iterator draws its worker seed from this generator, not the global RNG, so starting an
        # iterator part-way through an epoch (resume) leaves the training randomness untouched.
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def _visual_batch(cfg: TrainConfig, device: torch.device, channels_last: bool) -> Any:
    """A fixed batch for the image grid: the first images of the validation split if there is one."""
    data = evaluation_data(cfg.data)
    _, dataset = first_split(data, ("val", "test")) or ("train", build_dataset(data, "train", train=False))
    n = min(4, len(dataset))
    return move_to(next(iter(DataLoader(dataset, batch_size=n, sampler=range(n)))), device, channels_last)


def build_run(cfg: TrainConfig, device: torch.device, rank: int = 0, world: int = 1, channels_last: bool = False) -> Run:
    """The parts of a run of ``cfg`` on ``device``, as process ``rank`` of ``world``; the global random state
    seeded from ``cfg.seed`` first, so every process builds the same networks."""
    tr = cfg.trainer
    seed_everything(cfg.seed, cfg.device.deterministic)
    dataset = build_dataset(cfg.data, "train", train=True)
    serial = isinstance(cfg.data, ImageDataConfig) and cfg.data.serial_batches
    sampler = EpochSampler(len(dataset), cfg.seed, shuffle=not serial, rank=rank, world=world)
    if sampler.per_process < tr.batch_size:
        share = f", {sampler.per_process} for each of {world} processes" if world > 1 else ""
        bundled = isinstance(cfg.data, MNISTDataConfig) and cfg.data.bundled
        where = f"the bundled {cfg.data.name}" if bundled else cfg.data.root
        raise TrainingError(
            f"trainer.batch_size={tr.batch_size} is larger than the dataset ({len(dataset)} images in {where}{share}); "
            f"use trainer.batch_size<={sampler.per_process}"
        )
    # An image smaller than the crop stops here, naming a training file, before val/test files are read.
    dataset[0]
    steps_per_epoch = math.ceil(sampler.per_process / tr.batch_size)
    total_epochs = tr.n_epochs + tr.n_epochs_decay
    total_steps = total_epochs * steps_per_epoch if tr.max_steps is None else min(total_epochs * steps_per_epoch, tr.max_steps)

    model = build_model(cfg.model, dataset.info)
    if cfg.init_from and not cfg.resume:
        # Before the optimisers and the moving average are built, so both start from these weights.
        init_networks(model, cfg.init_from)
    model.to(device)
    if cfg.device.sync_bn and world > 1:
        distributed.sync_batch_norm(model)
    distributed.broadcast_module(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizers = {
        name: build_optimizer([p for n in nets for p in model.networks[n].parameters()], cfg.model.optim, name)
        for name, nets in model.optimizer_groups.items()
    }
    schedulers = {name: build_scheduler(opt, tr) for name, opt in optimizers.items()}
    # Built before compilation, so that the averages are plain modules of their own.
    ema = (
        GeneratorEMA({name: model.networks[name] for name in model.generators}, cfg.model.ema.decay, cfg.model.ema.start_step)
        if cfg.model.ema.decay > 0 and model.generators
        else None
    )
    if cfg.device.compile:
        # Static shapes: a GAN sees a handful of fixed batch shapes (train, last batch, visuals), each
        # compiled once; dynamic-shape graphs are slower and their cached guards trip inductor's cache.
        for net in model.networks.values():
            net.compile(dynamic=False)
    validation = (
        protocol_for(model).validation(model, cfg.data, tr.batch_size, tr.val_max_images, cfg.seed, cfg.metrics)
        if tr.val_every_n_epochs
        else None
    )
    if tr.best_metric and validation is None:
        raise DatasetNotFoundError(
            f"trainer.best_metric={tr.best_metric} needs validation, but {cfg.data.root} has no val split; add one or drop trainer.best_metric"
        )
    return Run(
        dataset=dataset,
        sampler=sampler,
        loader=_loader(cfg, dataset, sampler, device),
        model=model,
        optimizers=optimizers,
        schedulers=schedulers,
        ema=ema,
        validation=validation,
        visual_batch=_visual_batch(cfg, device, channels_last),
        steps_per_epoch=steps_per_epoch,
        total_epochs=total_epochs,
        total_steps=total_steps,
    )
