"""The training engine: one loop for every model.

:class:`Trainer` drives a run built by :func:`~translate.training.build.build_run`: epochs and steps,
validation, checkpoints, stop signals and, over several processes, the agreement to stop at the same step.
Its parts each own one concern: :class:`~translate.training.step.TrainStep` (mixed precision, updates,
non-finite steps), :class:`~translate.training.state.RunState` (checkpoints and exact resume) and
:class:`~translate.training.reporting.RunReport` (the trackers, samples, the progress bar). Models plug in
through ``translate.models.base.GANModel``; nothing here knows which model it trains.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from translate.data.batch import move_to
from translate.devices import resolve_device
from translate.evaluation.image_metrics import higher_is_better
from translate.models.base import GANModel
from translate.settings.schema import TrainConfig
from translate.training import distributed
from translate.training.build import Run, build_run
from translate.training.reporting import RunReport, image_grid
from translate.training.state import RunState
from translate.training.step import TrainStep

log = logging.getLogger(__name__)


def _batch_len(batch: Any) -> int:
    """The number of samples in a batch as the loader yields it (a dict of tensors and lists of paths)."""
    return len(next(iter(batch.values())))


class Trainer:
    """Train ``cfg.model`` on ``cfg.data``, writing checkpoints, the trackers' logs and samples to ``run_dir``.

    :meth:`fit` trains; a caller that drives steps itself (a benchmark) calls :meth:`build` and then
    :meth:`train_step`.
    """

    def __init__(self, cfg: TrainConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        distributed.init_from_env()
        self.rank, self.world = distributed.rank_and_world()
        self.device = distributed.local_device(resolve_device(cfg.device.accelerator))
        if self.rank != 0:  # one log is enough; warnings still come from every process
            logging.getLogger("translate").setLevel(logging.WARNING)
        self.channels_last = cfg.device.channels_last and self.device.type != "mps"
        self.report = RunReport(self.run_dir, cfg, enabled=self.rank == 0)
        # The signal this process received, and the one all processes agreed to stop for (see _stopping).
        self._signal_received: Optional[int] = None
        self._stop_signal: Optional[int] = None
        self._stop_vote = distributed.StopVote(self.device)
        self._validated = False
        #: Set once fit has built the run and begins to train: a failure from then on keeps the run directory.
        self.training_started = False

    def build(self) -> None:
        """Build the run's parts (data, model, optimisers, ...), its step and its saved state."""
        self.run: Run = build_run(self.cfg, self.device, self.rank, self.world, self.channels_last)
        ckpt_dir = self.run_dir / "checkpoints"
        self.stepper = TrainStep(
            self.run.model,
            self.run.optimizers,
            self.device,
            self.cfg.device.amp,
            self.cfg.trainer.skip_nonfinite,
            latest=ckpt_dir / "latest.pt",
        )
        self.state = RunState(
            ckpt_dir,
            self.cfg,
            self.run.dataset.info,
            self.run.model,
            self.run.optimizers,
            self.run.schedulers,
            self.stepper,
            self.run.ema,
            self.rank,
            self.world,
        )

    # The parts, as tests and benchmarks read them.
    model = property(lambda self: self.run.model)
    optimizers = property(lambda self: self.run.optimizers)
    loader = property(lambda self: self.run.loader)
    dataset = property(lambda self: self.run.dataset)
    ema = property(lambda self: self.run.ema)
    step = property(lambda self: self.state.progress.step)
    epoch = property(lambda self: self.state.progress.epoch)
    sample_in_epoch = property(lambda self: self.state.progress.sample_in_epoch)
    best = property(lambda self: self.state.progress.best)
    final_metrics = property(lambda self: self.report.final)

    # -- one step ----------------------------------------------------------------------------------

    def train_step(self, batch: Any) -> Dict[str, torch.Tensor]:
        """One optimisation step on ``batch`` (as the loader yields it), with its logging; returns its losses."""
        tr, progress = self.cfg.trainer, self.state.progress
        generator_step = (progress.step + 1) % tr.d_steps_per_g_step == 0
        track_norms = (progress.step + 1) % tr.log_every_n_steps == 0
        step = self.stepper.run(move_to(batch, self.device, self.channels_last), progress.step, generator_step, track_norms)
        if self.run.ema is not None and generator_step:
            self.run.ema.update(progress.step)
        progress.step += 1
        progress.sample_in_epoch += _batch_len(batch)
        self.report.step_done()
        if track_norms:
            lrs = {name: opt.param_groups[0]["lr"] for name, opt in self.run.optimizers.items()}
            self.report.scalars(progress.step, distributed.mean_scalars(step.losses), step.grad_norms, lrs)
        if progress.step % tr.image_every_n_steps == 0:
            self._images()
        return step.losses

    def _images(self, png_name: Optional[str] = None) -> None:
        if self.rank == 0:
            self.report.images(self.state.progress.step, image_grid(self.run.model, self.run.visual_batch, self.run.ema), png_name)

    # -- validation --------------------------------------------------------------------------------

    def validate(self) -> Dict[str, Dict[str, Any]]:
        """The validation metrics now (rank 0), logged, and checkpoints/best.pt written when they beat the best
        so far. With model.ema, the average is what translate-test and translate-export use: that is validated."""
        assert self.run.validation is not None
        model: GANModel = self.run.model
        model.eval()
        # Validation builds a judge network on first use: its initialisation must not draw from the training's
        # random stream, or a run validated at another step than its resumed twin would train differently.
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices), self.run.ema.swapped_in() if self.run.ema is not None else contextlib.nullcontext():
            metrics = self.run.validation(model, self.device)
        model.train()
        self._validated = True
        self.report.validation(self.state.progress.step, metrics)
        log.info("validation at epoch %d: %s", self.state.progress.epoch, ", ".join(f"{k}={v['mean']:.4f}" for k, v in metrics.items()))
        self._keep_best(metrics)
        return metrics

    def _keep_best(self, metrics: Dict[str, Dict[str, Any]]) -> None:
        tr, progress = self.cfg.trainer, self.state.progress
        if not tr.best_metric:
            return
        value = metrics[tr.best_metric.removeprefix("val/")]["mean"]
        higher = tr.best_mode == "max" if tr.best_mode is not None else higher_is_better(tr.best_metric)
        best = progress.best
        if math.isnan(value) or (best is not None and not (value > best["value"] if higher else value < best["value"])):
            return
        progress.best = {"metric": tr.best_metric, "value": value, "step": progress.step, "epoch": progress.epoch}
        self.state.save("best.pt", every_process=False)
        log.info("best %s so far: %.4f at epoch %d; wrote %s", tr.best_metric, value, progress.epoch, self.state.ckpt_dir / "best.pt")

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
        progress = self.state.progress
        for sched in self.run.schedulers.values():
            sched.step()
        progress.epoch += 1
        progress.sample_in_epoch = 0
        # Validation comes before the checkpoints, so that latest.pt holds the best value so far and a
        # resumed run compares against it.
        every = self.cfg.trainer.val_every_n_epochs
        if self.run.validation is not None and every and progress.epoch % every == 0:
            self._validated = True  # on every process, which all decide the same about the final validation
            if self.rank == 0:
                self.validate()
        names = ["latest.pt"]
        if progress.epoch % self.cfg.trainer.save_every_n_epochs == 0:
            names.insert(0, f"epoch_{progress.epoch}.pt")
        self.state.save(*names)
        self._images(png_name=f"epoch_{progress.epoch:04d}.png")
        log.info("epoch %d/%d done at step %d", progress.epoch, self.run.total_epochs, progress.step)

    def fit(self) -> Path:
        """Train until the epochs or ``trainer.max_steps`` run out; return the latest checkpoint."""
        self.build()
        if self.cfg.resume:
            self.state.resume(self.cfg.resume)
        run, progress, tr = self.run, self.state.progress, self.cfg.trainer
        if self.world > 1:
            log.info(
                "training on %d processes: batch %d each, %d in all; %d steps per epoch",
                self.world,
                tr.batch_size,
                tr.batch_size * self.world,
                run.steps_per_epoch,
            )
            if not self.state.own_rng_restored:
                # Each process draws its own noise and dropout (its data is its own share of each epoch).
                torch.manual_seed(self.cfg.seed * 1_000_003 + self.rank * 10_007 + progress.step)
        self.training_started = True
        if self.rank == 0:
            log.info("run directory: %s", self.run_dir)
        previous = {s: signal.signal(s, self._request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        run.model.train()
        started, first_step = time.perf_counter(), progress.step
        try:
            with self.report.opened(progress.step, run.total_steps):
                if progress.step == 0:
                    self._images()
                while progress.step < run.total_steps and progress.epoch < run.total_epochs and not self._stopping():
                    run.sampler.set_epoch(progress.epoch, start=progress.sample_in_epoch)
                    for batch in run.loader:
                        self.train_step(batch)
                        if progress.step >= run.total_steps or self._stopping():
                            break
                    if progress.sample_in_epoch >= run.sampler.per_process:
                        self._end_epoch()
                # A run that stopped before its first validation (a short sweep trial) validates once, so it
                # reports an objective; a stopped one hurries to its checkpoint instead.
                final_validation = self._stop_signal is None and run.validation is not None and not self._validated
                if final_validation and self.rank == 0:
                    self.validate()
                if progress.sample_in_epoch or progress.step == first_step or final_validation:
                    self.state.save("latest.pt")
                self._images(png_name="final.png")
                self.report.summary(progress.step, progress.best)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        self.report.curves()
        self._stop_vote.drain()
        distributed.barrier()  # every process returns once rank 0 has written the last checkpoint
        self._log_end(time.perf_counter() - started, progress.step - first_step)
        return self.state.latest

    def _log_end(self, elapsed: float, steps: int) -> None:
        progress, tr = self.state.progress, self.cfg.trainer
        log.info("%d steps in %.1f s (%.1f steps/s)", steps, elapsed, steps / max(elapsed, 1e-9))
        if (
            self._stop_signal is None
            and tr.max_steps is not None
            and progress.step >= tr.max_steps
            and progress.epoch < self.run.total_epochs
        ):
            per_process = self.run.sampler.per_process
            partial = f" and {progress.sample_in_epoch} of {per_process} images of the next" if progress.sample_in_epoch else ""
            log.info(
                "stopped at trainer.max_steps=%d as asked: %d of %d epochs done%s",
                tr.max_steps,
                progress.epoch,
                self.run.total_epochs,
                partial,
            )
        if self._stop_signal is not None and self.rank == 0:
            log.warning(
                "stopped by signal %d at step %d; checkpoint saved. Continue with: %stranslate-train resume=%s",
                self._stop_signal,
                progress.step,
                f"torchrun --nproc_per_node={self.world} --no-python " if self.world > 1 else "",
                self.run_dir,
            )
