"""The training engine: one loop for every model.

It owns seeding, devices, mixed precision, channels_last and compilation, epochs and steps, learning-rate
schedules, the progress bar, TensorBoard, checkpoints and exact resume. Models plug in through
``translate.models.base.GANModel``; nothing here knows which model it trains.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import signal
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader
from tqdm import tqdm

from translate.data.batch import move_to
from translate.data.registry import build_dataset, first_split
from translate.data.sampling import EpochSampler
from translate.errors import CheckpointError, ConfigError, TrainingError
from translate.evaluation.image_metrics import higher_is_better
from translate.evaluation.protocols import evaluation_data, protocol_for
from translate.hub.catalog import DATASETS as CATALOG
from translate.hub.download import ensure_dataset
from translate.models.base import GANModel, Optimization, build_model
from translate.training import distributed, speed
from translate.training.checkpoints import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from translate.training.curves import write_curves
from translate.training.devices import resolve_device
from translate.training.ema import GeneratorEMA
from translate.training.optimizers import build_optimizer
from translate.training.preemption import preemptible_loader
from translate.training.schedulers import build_scheduler
from translate.visuals import rows_to_grid, save_png

log = logging.getLogger(__name__)


def prepare_data(cfg: Any) -> None:
    """Make sure a dataset the catalog knows is on disk before training: fetch it when
    ``data.download`` is true, else stop with the ``translate-data`` command that would."""
    if str(cfg.kind) in ("aligned", "unaligned") and cfg.name in CATALOG:
        cfg.root = str(ensure_dataset(cfg.name, cfg.root, cfg.download))


def _batch_len(batch: Any) -> int:
    """The number of samples in a batch as the loader yields it (a dict of tensors and lists of paths)."""
    return len(next(iter(batch.values())))


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def _flatten(tree: Any, prefix: str) -> Dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}.{key}").items()}
    return {prefix: tree}


def _mismatch(state: Dict[str, Any], model_cfg: Any, err: BaseException) -> str:
    """Why a checkpoint's weights do not fit: the model settings changed since it was saved, else the
    first specific line of ``load_state_dict``'s error (its first line only says that loading failed)."""
    saved = _flatten(state.get("config", {}).get("model", {}), "model")
    now = _flatten(OmegaConf.to_container(model_cfg, resolve=True, enum_to_str=True), "model")
    changed = [f"{k}={saved[k]} in the checkpoint, {now[k]} now" for k in sorted(saved.keys() & now.keys()) if saved[k] != now[k]]
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    return "; ".join(changed[:3]) or lines[min(1, len(lines) - 1)][:200]


#: The config groups whose keys are a run's hyperparameters (paths, logger and resume do not change results).
HPARAM_GROUPS = ("seed", "model", "data", "trainer", "device")


def run_hparams(cfg: Any) -> Dict[str, Union[bool, int, float, str]]:
    """The config as flat ``group.key`` hyperparameters for TensorBoard's HPARAMS table; lists and null
    become text."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    flat = {k: v for group in HPARAM_GROUPS for k, v in _flatten(container[group], group).items()}
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat.items()}


class _EngineOptimization(Optimization):
    """Backward and update for one named optimiser, with AMP and an optional gradient scaler."""

    def __init__(self, model: GANModel, optimizers: Dict[str, torch.optim.Optimizer], device: torch.device, amp: str) -> None:
        self.model = model
        self.optimizers = optimizers
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.device_type = device.type
        # Gradients of fp16 activations underflow without loss scaling; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        self.track_norms = False
        self.grad_norms: Dict[str, torch.Tensor] = {}
        self.nonfinite: list[str] = []
        # (optimiser name, finite flag on the device) of the updates a fused Adam decided on the device.
        self.flags: list[tuple[str, torch.Tensor]] = []
        self.updates = 0
        self.reducers = {
            name: distributed.GradientReducer(p for group in opt.param_groups for p in group["params"]) for name, opt in optimizers.items()
        }

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    def step(self, name: str, loss: torch.Tensor) -> None:
        # A non-finite loss, or a finite one with a non-finite gradient (an overflow inside the backward
        # pass), would poison the weights and Adam's moments: leave this update out and report it. Over
        # several processes they all leave it out when any one must, so the copies stay the same.
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        self.reducers[name].prepare()
        self.scaler.scale(loss).backward()
        self.reducers[name].finish()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        finite = torch.isfinite(loss.detach())
        if not self.scaler.is_enabled():
            # With fp16 the scaler itself skips steps whose scaled gradients overflowed, and lowers the scale.
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                finite = finite & torch.isfinite(torch.nn.utils.get_total_norm(grads))
        if not self.scaler.is_enabled() and speed.supports_found_inf(optimizer):
            # No host sync here: a fused Adam leaves the update out itself when the flag says so, and the
            # step's flags are read once, after every update of the step is queued (see read_nonfinite).
            finite = speed.any_process_nonfinite(finite)
            self.flags.append((name, finite))
            self._track_norms(name, optimizer)
            speed.conditional_step(optimizer, finite)
            return
        if not distributed.all_agree(bool(finite), loss.device):
            optimizer.zero_grad(set_to_none=True)
            self.nonfinite.append(name)
            return
        self._track_norms(name, optimizer)
        self.scaler.step(optimizer)
        self.updates += 1

    def _track_norms(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        if self.track_norms:
            self.scaler.unscale_(optimizer)
            for net_name in self.model.optimizer_groups[name]:
                grads = [p.grad.detach().float().norm() for p in self.model.networks[net_name].parameters() if p.grad is not None]
                if grads:
                    self.grad_norms[net_name] = torch.stack(grads).norm()

    def read_nonfinite(self) -> None:
        """Move the names of this step's left-out updates into ``nonfinite`` (one host read per step)."""
        self.nonfinite += speed.read_flags(self.flags)
        self.flags = []


class Trainer:
    """Train ``cfg.model`` on ``cfg.data``, writing checkpoints, TensorBoard events and samples to ``run_dir``."""

    def __init__(self, cfg: Any, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        distributed.init_from_env()
        self.rank, self.world = distributed.rank_and_world()
        self.device = distributed.local_device(resolve_device(cfg.device.accelerator))
        if self.rank != 0:  # one log is enough; warnings still come from every process
            logging.getLogger("translate").setLevel(logging.WARNING)
        self.channels_last = bool(cfg.device.channels_last) and self.device.type != "mps"
        # The signal this process received, and the one all processes agreed to stop for (see _stopping).
        self._signal_received: Optional[int] = None
        self._stop_signal: Optional[int] = None
        self._stop_vote = distributed.StopVote(self.device)
        self._own_rng_restored = False
        # fit() opens the TensorBoard writer and the progress bar; steps taken outside it log nowhere.
        self._writer: Any = None
        self._bar: Any = tqdm(disable=True)
        #: Set once fit has built the run and begins to train: a failure from then on keeps the run directory.
        self.training_started = False

    def build(self) -> None:
        """Build the run: data, model, optimisers, schedulers, validation. :meth:`fit` calls it; a caller that
        drives steps itself (a benchmark) calls it and then :meth:`train_step`."""
        cfg, tr = self.cfg, self.cfg.trainer
        seed_everything(cfg.seed, cfg.device.deterministic)
        prepare_data(cfg.data)
        self.dataset = build_dataset(cfg.data, "train", train=True)
        self.sampler = EpochSampler(
            len(self.dataset), cfg.seed, shuffle=not cfg.data.get("serial_batches", False), rank=self.rank, world=self.world
        )
        if self.sampler.per_process < tr.batch_size:
            share = f", {self.sampler.per_process} for each of {self.world} processes" if self.world > 1 else ""
            raise TrainingError(
                f"trainer.batch_size={tr.batch_size} is larger than the dataset ({len(self.dataset)} images in "
                f"{'the bundled ' + cfg.data.name if cfg.data.get('bundled') else cfg.data.root}{share}); "
                f"use trainer.batch_size<={self.sampler.per_process}"
            )
        # An image smaller than the crop stops here, naming a training file, before val/test files are read.
        self.dataset[0]
        workers = int(cfg.data.num_workers)
        self.loader = preemptible_loader(
            self.dataset,
            batch_size=tr.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            # Workers live across epochs: no re-spawn (and re-import) per epoch. Safe for exact resume,
            # because every sample's crop and flip come from its sampler key, not from a worker's RNG.
            persistent_workers=workers > 0,
            # Each iterator draws its worker seed from this generator, not the global RNG, so starting an
            # iterator part-way through an epoch (resume) leaves the training randomness untouched.
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        self.steps_per_epoch = math.ceil(self.sampler.per_process / tr.batch_size)
        self.total_epochs = tr.n_epochs + tr.n_epochs_decay
        total = self.total_epochs * self.steps_per_epoch
        self.total_steps = min(total, tr.max_steps) if tr.max_steps is not None else total

        self.model = build_model(cfg.model, self.dataset.info).to(self.device)
        if cfg.device.sync_bn and self.world > 1:
            distributed.sync_batch_norm(self.model)
        distributed.broadcast_module(self.model)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizers = {
            name: build_optimizer([p for n in nets for p in self.model.networks[n].parameters()], cfg.model.optim, name)
            for name, nets in self.model.optimizer_groups.items()
        }
        self.schedulers = {name: build_scheduler(opt, tr) for name, opt in self.optimizers.items()}
        self.opt = _EngineOptimization(self.model, self.optimizers, self.device, str(cfg.device.amp))
        if tr.d_steps_per_g_step < 1:
            raise ConfigError(f"trainer.d_steps_per_g_step={tr.d_steps_per_g_step} must be >= 1 (5 is the WGAN paper's)")
        self.ema = self._build_ema()
        if cfg.device.compile:
            problem = self.model.compile_problem()
            if problem:
                raise ConfigError(problem)
            # Static shapes: a GAN sees a handful of fixed batch shapes (train, last batch, visuals), each
            # compiled once; dynamic-shape graphs are slower and their cached guards trip inductor's cache.
            for net in self.model.networks.values():
                net.compile(dynamic=False)
        if tr.keep_last_n is not None and tr.keep_last_n < 0:
            raise ConfigError(f"trainer.keep_last_n={tr.keep_last_n} must be >= 0 (or null to keep every epoch_<n>.pt)")
        # Temporary files of checkpoints a killed process was writing: never complete, never needed.
        for stale in self.ckpt_dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        # sample_in_epoch: this process's samples of the current epoch already trained on (a position in
        # samples, not batches, so that a resume with another batch size continues where the run stopped).
        self.step, self.epoch, self.sample_in_epoch = 0, 0, 0
        self.skipped_nonfinite = 0
        self.visual_batch = self._visual_batch()
        self.validation = (
            protocol_for(self.model).validation(self.model, cfg.data, tr.batch_size, tr.val_max_images, cfg.seed, cfg.metrics)
            if tr.val_every_n_epochs
            else None
        )
        self.best: Optional[Dict[str, Any]] = None
        #: The last value of every logged training scalar and validation metric, for the HPARAMS table.
        self.final_metrics: Dict[str, float] = {}
        self._check_best_metric()

    def _build_ema(self) -> Optional[GeneratorEMA]:
        """The moving average of the generators that ``model.ema.decay`` asks for, or None (decay 0)."""
        ema = self.cfg.model.get("ema")
        if ema is None or ema.decay == 0:
            return None
        if not 0 < ema.decay < 1:
            raise ConfigError(f"model.ema.decay={ema.decay} must be in (0, 1), e.g. 0.999 (0 turns the average off)")
        # Built before compilation, so that the averages are plain modules of their own.
        return GeneratorEMA({name: self.model.networks[name] for name in self.model.generators}, ema.decay, ema.start_step)

    def _check_best_metric(self) -> None:
        """Refuse a ``trainer.best_metric`` that validation will not produce, or whose direction is
        unknown, before training (a validation on one input tells the metrics' names)."""
        metric, mode = self.cfg.trainer.best_metric, self.cfg.trainer.best_mode
        if not metric:
            return
        if self.validation is None:
            raise ConfigError(
                f"trainer.best_metric={metric} needs validation, but this run has none: set "
                "trainer.val_every_n_epochs and use data with a val split (a generator needs none)"
            )
        names = [f"val/{key}" for key in self._validation_metrics(probe=True)]
        if metric not in names:
            raise ConfigError(f"trainer.best_metric={metric} is not a validation metric of this run; it has {', '.join(names)}")
        if mode is None and higher_is_better(metric) is None:
            raise ConfigError(f"trainer.best_mode: say max or min for trainer.best_metric={metric}")

    def _visual_batch(self) -> Any:
        """A fixed batch for the image grid: the first images of the validation split if there is one."""
        data = evaluation_data(self.cfg.data)
        _, dataset = first_split(data, ("val", "test")) or ("train", build_dataset(data, "train", train=False))
        n = min(4, len(dataset))
        return move_to(next(iter(DataLoader(dataset, batch_size=n, sampler=range(n)))), self.device, self.channels_last)

    # -- checkpoints -------------------------------------------------------------------------------

    def _state(self, rng_ranks: Optional[list] = None) -> Dict[str, Any]:
        return {
            "model": self.cfg.model.name,
            "info": dict(self.dataset.info),
            "networks": {name: net.state_dict() for name, net in self.model.networks.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "schedulers": {name: s.state_dict() for name, s in self.schedulers.items()},
            "scaler": self.opt.scaler.state_dict(),
            "extra": self.model.extra_state(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "step": self.step,
            "epoch": self.epoch,
            # The position in the epoch over all processes, so that a resume on another number of them keeps it too.
            "samples_in_epoch": self.sample_in_epoch * self.world,
            "skipped_nonfinite": self.skipped_nonfinite,
            "world_size": self.world,
            "best": self.best,
            "rng": capture_rng(),
            # Every process's own state (noise, dropout), so that a resumed multi-process run goes on exactly.
            "rng_ranks": rng_ranks,
            "config": OmegaConf.to_container(self.cfg, resolve=True, enum_to_str=True),
        }

    def save(self, *names: str, every_process: bool = True) -> Path:
        """Write the checkpoint(s) from rank 0; ``every_process``: all processes call this (they send their
        random state), False when rank 0 alone does (best.pt, written during rank 0's validation)."""
        rng_ranks = distributed.gather_to_main(capture_rng()) if every_process else None
        if self.rank != 0:  # the processes hold the same weights; one writes them
            return self.ckpt_dir / names[0]
        state = self._state(rng_ranks)
        for name in names:
            save_checkpoint(state, self.ckpt_dir / name)
        self._prune()
        return self.ckpt_dir / names[0]

    def _prune(self) -> None:
        keep = self.cfg.trainer.keep_last_n
        if keep is None:
            return
        epochs = sorted(self.ckpt_dir.glob("epoch_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        for old in epochs[: max(0, len(epochs) - keep)]:
            old.unlink(missing_ok=True)

    def _resume(self, path: str) -> None:
        state = load_checkpoint(path)
        if state.get("model") != self.cfg.model.name:
            raise CheckpointError(
                f"resume={path} holds a {state.get('model')!r} model but this run is model={self.cfg.model.name}; "
                f"resume it with model={state.get('model')}"
            )
        for name, net in self.model.networks.items():
            try:
                net.load_state_dict(state["networks"][name])
            except (KeyError, RuntimeError) as err:
                raise CheckpointError(
                    f"resume={path}: network {name} does not match this config's architecture "
                    f"({_mismatch(state, self.cfg.model, err)}); resume with the config the run was trained with"
                ) from None
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
            speed.keep_fused(opt)  # the saved param groups carry the saving machine's fused flag
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        self.opt.scaler.load_state_dict(state["scaler"])
        self.model.load_extra_state(state["extra"])
        if self.ema is not None:
            if state.get("ema") is None:
                log.warning(
                    "resume=%s kept no average of the generators; model.ema starts from the weights at step %d", path, state["step"]
                )
                self.ema.update(-1)
            else:
                self.ema.load_state_dict(state["ema"])
        self.step, self.epoch = state["step"], state["epoch"]
        position = state.get("samples_in_epoch")
        if position is None:  # checkpoints written before positions were kept in samples
            position = state["batch_in_epoch"] * state["config"]["trainer"]["batch_size"] * state.get("world_size", 1)
        self.sample_in_epoch = position // self.world
        self.best = state.get("best")
        if state.get("world_size", 1) != self.world:
            log.warning(
                "resume=%s trained on %d process(es) and resumes on %d: the batch in all becomes %d%s",
                path,
                state.get("world_size", 1),
                self.world,
                self.cfg.trainer.batch_size * self.world,
                f", and {position % self.world} image(s) of epoch {self.epoch + 1} are left out" if position % self.world else "",
            )
        # trainer.skip_nonfinite is a budget for the whole run, not for each resumed part of it.
        self.skipped_nonfinite = state.get("skipped_nonfinite", 0)
        ranks = state.get("rng_ranks")
        self._own_rng_restored = ranks is not None and len(ranks) == self.world
        restore_rng(ranks[self.rank] if self._own_rng_restored else state["rng"])
        log.info("resumed from %s at step %d (epoch %d, after %d of its images)", path, self.step, self.epoch + 1, position)

    # -- logging -----------------------------------------------------------------------------------

    def _open_writer(self) -> Any:
        if not self.cfg.logger.enabled or self.rank != 0:
            return None
        # TensorBoard's writer loads tensorboard and protobuf, seconds of imports: only when logging is on.
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a crashed run wrote after its last checkpoint, so curves do not fork.
        return SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step + 1 if self.step else None)

    def _log_scalars(self, writer: Any, losses: Dict[str, float]) -> None:
        if writer is None:
            return
        for key, value in losses.items():
            writer.add_scalar(f"train/{key}", value, self.step)
        for name, norm in self.opt.grad_norms.items():
            writer.add_scalar(f"train/grad_norm/{name}", norm.item(), self.step)
        for name, opt in self.optimizers.items():
            writer.add_scalar(f"train/lr/{name}", opt.param_groups[0]["lr"], self.step)

    def _log_images(self, writer: Any, png_name: Optional[str] = None) -> None:
        if self.rank != 0:
            return
        self.model.eval()
        rows = self.model.visuals(self.visual_batch)
        if self.ema is not None:
            with self.ema.swapped_in():
                # The average's images below the raw generator's; the inputs are the same, so shown once.
                rows.update(
                    {f"ema_{k}": v for k, v in self.model.visuals(self.visual_batch).items() if not k.startswith(("real", "input"))}
                )
        grid = rows_to_grid(rows)
        self.model.train()
        if writer is not None:
            writer.add_image("train/visuals", grid, self.step)
        if png_name:
            save_png(grid, self.run_dir / "samples" / png_name)

    def _log_hparams(self) -> None:
        """The run's hyperparameters with its final metrics (``final/<tag>``, and ``best/<metric>``), so
        that TensorBoard's HPARAMS tab compares the runs of a sweep in one table."""
        if self._writer is None:
            return
        metrics = {f"final/{tag}": value for tag, value in self.final_metrics.items()}
        if self.best is not None:
            metrics[f"best/{self.best['metric']}"] = self.best["value"]
        # run_name "." keeps the summary in this run's tb/ folder rather than a new timestamped one.
        self._writer.add_hparams(run_hparams(self.cfg), metrics, run_name=".", global_step=self.step)

    def _validation_metrics(self, probe: bool = False) -> Dict[str, Dict[str, Any]]:
        """The model's test metrics on the first ``val_max_images`` of the validation split or, for a
        generator, the scores of a fixed set of its samples; ``probe``: on one input (or one per class)."""
        self.model.eval()
        # With model.ema, the average is what translate-test and translate-export use: validate that.
        with self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext():
            metrics = self.validation(self.model, self.device, probe)
        self.model.train()
        return metrics

    def _validate(self) -> None:
        metrics = self._validation_metrics()
        for key, value in metrics.items():
            self.final_metrics[f"val/{key}"] = value["mean"]
            if self._writer is not None:
                self._writer.add_scalar(f"val/{key}", value["mean"], self.step)
        log.info("validation at epoch %d: %s", self.epoch, ", ".join(f"{k}={v['mean']:.4f}" for k, v in metrics.items()))
        self._keep_best(metrics)

    def _keep_best(self, metrics: Dict[str, Dict[str, Any]]) -> None:
        """Write checkpoints/best.pt when ``trainer.best_metric`` beats its best value so far."""
        metric, mode = self.cfg.trainer.best_metric, self.cfg.trainer.best_mode
        if not metric:
            return
        value = metrics[str(metric).removeprefix("val/")]["mean"]
        higher = str(mode) == "max" if mode is not None else higher_is_better(metric)
        if math.isnan(value) or (self.best is not None and not (value > self.best["value"] if higher else value < self.best["value"])):
            return
        self.best = {"metric": str(metric), "value": value, "step": self.step, "epoch": self.epoch}
        self.save("best.pt", every_process=False)
        log.info("best %s so far: %.4f at epoch %d; wrote %s", metric, value, self.epoch, self.ckpt_dir / "best.pt")

    # -- the loop ----------------------------------------------------------------------------------

    def _request_stop(self, signum: int, frame: Any) -> None:
        self._signal_received = signum

    def _stopping(self) -> bool:
        """A signal reached this process or, when distributed, another one: all stop after the same step."""
        agreed = self._stop_vote.cast(self._signal_received or 0)
        if agreed and self._stop_signal is None:
            self._stop_signal = agreed
        return self._stop_signal is not None

    def _end_epoch(self) -> None:
        for sched in self.schedulers.values():
            sched.step()
        self.epoch += 1
        self.sample_in_epoch = 0
        # Validation comes before the checkpoints, so that latest.pt holds the best value so far and a
        # resumed run compares against it.
        if self.validation is not None and self.epoch % self.cfg.trainer.val_every_n_epochs == 0 and self.rank == 0:
            self._validate()
        names = ["latest.pt"]
        if self.epoch % self.cfg.trainer.save_every_n_epochs == 0:
            names.insert(0, f"epoch_{self.epoch}.pt")
        self.save(*names)
        self._log_images(self._writer, png_name=f"epoch_{self.epoch:04d}.png")
        log.info("epoch %d/%d done at step %d", self.epoch, self.total_epochs, self.step)

    def _check_finite(self, losses: Dict[str, torch.Tensor]) -> None:
        """Stop on a step whose losses or gradients are not finite, or skip it while ``trainer.skip_nonfinite`` allows."""
        if not self.opt.nonfinite:
            return
        skipped, self.opt.nonfinite = self.opt.nonfinite, []
        terms = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
        what = "loss" if not all(bool(torch.isfinite(v).all()) for v in losses.values()) else "gradient (the losses are finite)"
        self.skipped_nonfinite += 1
        if self.skipped_nonfinite <= self.cfg.trainer.skip_nonfinite:
            log.warning(
                "step %d: non-finite %s (%s); skipped the %s update(s) (%d of trainer.skip_nonfinite=%d)",
                self.step + 1,
                what,
                terms,
                "/".join(skipped),
                self.skipped_nonfinite,
                self.cfg.trainer.skip_nonfinite,
            )
            return
        latest = self.ckpt_dir / "latest.pt"
        hint = f"the last good checkpoint is {latest}" if latest.exists() else "no checkpoint was written yet"
        raise TrainingError(
            f"non-finite {what} at step {self.step + 1}: {terms}; {hint}; lower model.optim.lr, try device.amp=off, "
            f"or allow skipping with trainer.skip_nonfinite=N"
        )

    def train_step(self, batch: Any) -> Dict[str, torch.Tensor]:
        """One optimisation step on ``batch`` (as the loader yields it), with its logging; returns its losses."""
        tr = self.cfg.trainer
        batch = move_to(batch, self.device, self.channels_last)
        self.opt.track_norms = (self.step + 1) % tr.log_every_n_steps == 0
        self.opt.generator_step = (self.step + 1) % tr.d_steps_per_g_step == 0
        buffers = [b.clone() for b in self.model.buffers()] if tr.skip_nonfinite else []
        losses = self.model.training_step(batch, self.opt)
        self.opt.read_nonfinite()
        if self.opt.nonfinite:
            # A skipped step must not leave non-finite batch-norm statistics behind either.
            for now, before in zip(self.model.buffers(), buffers):
                if now.is_floating_point() and not torch.isfinite(now).all():
                    now.copy_(before)
        if self.opt.updates:  # the scaler may only adjust after at least one scaled step
            self.opt.scaler.update()
            self.opt.updates = 0
        self._check_finite(losses)
        if self.ema is not None and self.opt.generator_step:
            self.ema.update(self.step)
        self.step += 1
        self.sample_in_epoch += _batch_len(batch)
        self._bar.update(1)
        if self.opt.track_norms:
            values = distributed.mean_scalars(losses)
            self.final_metrics.update({f"train/{k}": v for k, v in values.items()})
            self._log_scalars(self._writer, values)
            self._bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k.startswith("loss")}, refresh=False)
        if self.step % tr.image_every_n_steps == 0:
            self._log_images(self._writer)
        return losses

    def fit(self) -> Path:
        """Train until the epochs or ``trainer.max_steps`` run out; return the latest checkpoint."""
        self.build()
        if self.cfg.resume:
            self._resume(self.cfg.resume)
        tr = self.cfg.trainer
        if self.world > 1:
            log.info(
                "training on %d processes: batch %d each, %d in all; %d steps per epoch",
                self.world,
                tr.batch_size,
                tr.batch_size * self.world,
                self.steps_per_epoch,
            )
        if self.world > 1 and not self._own_rng_restored:
            # Each process draws its own noise and dropout (its data is its own share of each epoch).
            torch.manual_seed(self.cfg.seed * 1_000_003 + self.rank * 10_007 + self.step)
        self._writer = self._open_writer()
        self.training_started = True
        previous = {s: signal.signal(s, self._request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        self._bar = tqdm(
            total=self.total_steps, initial=self.step, disable=not tr.progress_bar or self.rank != 0, dynamic_ncols=True, desc="train"
        )
        self.model.train()
        started, first_step = time.perf_counter(), self.step
        try:
            if self.step == 0:
                self._log_images(self._writer)
            while self.step < self.total_steps and self.epoch < self.total_epochs and not self._stopping():
                self.sampler.set_epoch(self.epoch, start=self.sample_in_epoch)
                for batch in self.loader:
                    self.train_step(batch)
                    if self.step >= self.total_steps or self._stopping():
                        break
                if self.sample_in_epoch >= self.sampler.per_process:
                    self._end_epoch()
            if self.sample_in_epoch or self.step == first_step:
                self.save("latest.pt")
            self._log_images(self._writer, png_name="final.png")
            self._log_hparams()
        finally:
            self._bar.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
            if self._writer is not None:
                self._writer.close()
        if self._writer is not None:  # rank 0 with TensorBoard on, its events complete now
            write_curves(self.run_dir / "tb", self.run_dir / "curves.png")
        self._stop_vote.drain()
        distributed.barrier()  # every process returns once rank 0 has written the last checkpoint
        elapsed = time.perf_counter() - started
        log.info("%d steps in %.1f s (%.1f steps/s)", self.step - first_step, elapsed, (self.step - first_step) / max(elapsed, 1e-9))
        if self._stop_signal is None and tr.max_steps is not None and self.step >= tr.max_steps and self.epoch < self.total_epochs:
            partial = f" and {self.sample_in_epoch} of {self.sampler.per_process} images of the next" if self.sample_in_epoch else ""
            log.info(
                "stopped at trainer.max_steps=%d as asked: %d of %d epochs done%s", tr.max_steps, self.epoch, self.total_epochs, partial
            )
        if self._stop_signal is not None and self.rank == 0:
            log.warning(
                "stopped by signal %d at step %d; checkpoint saved. Continue with: %stranslate-train resume=%s",
                self._stop_signal,
                self.step,
                f"torchrun --nproc_per_node={self.world} --no-python " if self.world > 1 else "",
                self.run_dir,
            )
        return self.ckpt_dir / "latest.pt"
