"""A run's saved state: where training stands (:class:`Progress`), and :class:`RunState`, which writes it with
everything exact resume needs into ``checkpoints/`` as a :class:`~translate.models.checkpoint.Checkpoint`
and reads it back."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch.optim.lr_scheduler import LRScheduler

from translate.config import plain
from translate.errors import CheckpointError
from translate.models.base import GANModel
from translate.models.checkpoint import Checkpoint
from translate.settings.schema import TrainConfig
from translate.training import distributed, speed
from translate.training.ema import GeneratorEMA
from translate.training.step import TrainStep

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where training stands."""

    step: int = 0
    #: Epochs completed.
    epoch: int = 0
    #: This process's samples of the current epoch already trained on: a position in samples, not batches,
    #: so that a resume with another batch size continues where the run stopped.
    sample_in_epoch: int = 0
    #: ``{"metric", "value", "step", "epoch"}`` of trainer.best_metric's best validation so far.
    best: Optional[Dict[str, Any]] = None


def capture_rng() -> Dict[str, Any]:
    state: Dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` needs tuples; a round trip through a checkpoint may give lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _flatten(tree: Any, prefix: str) -> Dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}.{key}").items()}
    return {prefix: tree}


class RunState:
    """Saves and resumes one run: its networks, optimisers, schedulers, loss scale, the model's own state
    (image pools), the generators' average, :class:`Progress`, and every process's random state.

    Args:
        ckpt_dir: the run's ``checkpoints/``.
        cfg: the run's config, saved with every checkpoint.
        info: what the model was sized for (the dataset's ``info``).
        rank, world: this process and the number of processes.
    """

    def __init__(
        self,
        ckpt_dir: Path,
        cfg: TrainConfig,
        info: Mapping[str, Any],
        model: GANModel,
        optimizers: Mapping[str, torch.optim.Optimizer],
        schedulers: Mapping[str, LRScheduler],
        step: TrainStep,
        ema: Optional[GeneratorEMA],
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.ckpt_dir = ckpt_dir
        self.cfg = cfg
        self.info = dict(info)
        self.model, self.optimizers, self.schedulers, self.step, self.ema = model, dict(optimizers), dict(schedulers), step, ema
        self.rank, self.world = rank, world
        self.progress = Progress()
        #: Whether resume gave this process its own random state back (a run over as many processes).
        self.own_rng_restored = False
        # Temporary files of checkpoints a killed process was writing: never complete, never needed.
        for stale in ckpt_dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)

    @property
    def latest(self) -> Path:
        return self.ckpt_dir / "latest.pt"

    def checkpoint(self, rng_ranks: Optional[List[Dict[str, Any]]] = None) -> Checkpoint:
        """The run's state now, as a checkpoint."""
        p = self.progress
        return Checkpoint(
            model=self.cfg.model.name,
            config=plain(self.cfg),
            info=self.info,
            networks={name: net.state_dict() for name, net in self.model.networks.items()},
            ema=self.ema.state_dict() if self.ema is not None else None,
            optimizers={name: opt.state_dict() for name, opt in self.optimizers.items()},
            schedulers={name: s.state_dict() for name, s in self.schedulers.items()},
            scaler=self.step.state_dict(),
            extra=self.model.extra_state(),
            step=p.step,
            epoch=p.epoch,
            # The position over all processes, so that a resume on another number of them keeps it too.
            samples_in_epoch=p.sample_in_epoch * self.world,
            skipped_nonfinite=self.step.skipped,
            world_size=self.world,
            best=p.best,
            rng=capture_rng(),
            rng_ranks=rng_ranks,
        )

    def save(self, *names: str, every_process: bool = True) -> Path:
        """Write the checkpoint(s) ``names`` from rank 0; ``every_process``: all processes call this (they send
        their random state), False when rank 0 alone does (best.pt, written during its validation)."""
        rng_ranks = distributed.gather_to_main(capture_rng()) if every_process else None
        if self.rank != 0:  # the processes hold the same weights; one writes them
            return self.ckpt_dir / names[0]
        ckpt = self.checkpoint(rng_ranks)
        for name in names:
            ckpt.write(self.ckpt_dir / name)
        self._prune()
        return self.ckpt_dir / names[0]

    def _prune(self) -> None:
        keep = self.cfg.trainer.keep_last_n
        if keep is None:
            return
        epochs = sorted(self.ckpt_dir.glob("epoch_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        for old in epochs[: max(0, len(epochs) - keep)]:
            old.unlink(missing_ok=True)

    def resume(self, path: str) -> None:
        """Continue from the checkpoint at ``path`` (a run directory or a file): every saved part back in
        place, and the random state of this process (rank 0's when the process count changed)."""
        ckpt = Checkpoint.read(path)
        if ckpt.model != self.cfg.model.name:
            raise CheckpointError(
                f"resume={path} holds a {ckpt.model!r} model but this run is model={self.cfg.model.name}; resume it with model={ckpt.model}"
            )
        for name, net in self.model.networks.items():
            try:
                net.load_state_dict(ckpt.networks[name])
            except (KeyError, RuntimeError) as err:
                raise CheckpointError(
                    f"resume={path}: network {name} does not match this config's architecture "
                    f"({self._mismatch(ckpt, err)}); resume with the config the run was trained with"
                ) from None
        for name, opt in self.optimizers.items():
            opt.load_state_dict(ckpt.optimizers[name])
            speed.keep_fused(opt)  # the saved param groups carry the saving machine's fused flag
        for name, sched in self.schedulers.items():
            sched.load_state_dict(ckpt.schedulers[name])
        self.step.load_state_dict(ckpt.scaler)
        # trainer.skip_nonfinite is a budget for the whole run, not for each resumed part of it.
        self.step.skipped = ckpt.skipped_nonfinite
        self.model.load_extra_state(ckpt.extra)
        if self.ema is not None:
            if ckpt.ema is None:
                log.warning("resume=%s kept no average of the generators; model.ema starts from the weights at step %d", path, ckpt.step)
                self.ema.update(-1)
            else:
                self.ema.load_state_dict(ckpt.ema)
        position = ckpt.samples_in_epoch
        self.progress = Progress(ckpt.step, ckpt.epoch, position // self.world, ckpt.best)
        if ckpt.world_size != self.world:
            log.warning(
                "resume=%s trained on %d process(es) and resumes on %d: the batch in all becomes %d%s",
                path,
                ckpt.world_size,
                self.world,
                self.cfg.trainer.batch_size * self.world,
                f", and {position % self.world} image(s) of epoch {ckpt.epoch + 1} are left out" if position % self.world else "",
            )
        ranks = ckpt.rng_ranks
        self.own_rng_restored = ranks is not None and len(ranks) == self.world
        restore_rng(ranks[self.rank] if ranks is not None and self.own_rng_restored else ckpt.rng)
        log.info("resumed from %s at step %d (epoch %d, after %d of its images)", path, ckpt.step, ckpt.epoch + 1, position)

    def _mismatch(self, ckpt: Checkpoint, err: BaseException) -> str:
        """Why a checkpoint's weights do not fit: the model settings changed since it was saved, else the
        first specific line of ``load_state_dict``'s error (its first line only says that loading failed)."""
        saved = _flatten(ckpt.config.get("model", {}), "model")
        now = _flatten(plain(self.cfg.model), "model")
        changed = [f"{k}={saved[k]} in the checkpoint, {now[k]} now" for k in sorted(saved.keys() & now.keys()) if saved[k] != now[k]]
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        return "; ".join(changed[:3]) or lines[min(1, len(lines) - 1)][:200]
