"""What a run shows while it trains: its trackers (TensorBoard, CSV, W&B, MLflow: scalars, image grids,
the config and the summary a sweep is compared by, see :mod:`translate.training.trackers`), ``samples/*.png``,
the progress bar, and ``curves.png`` at the end. Rank 0 reports; the other processes of a multi-process run
get a report that writes nothing."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch
from tqdm import tqdm

from translate.config import plain
from translate.models.base import GANModel
from translate.settings.schema import TrainConfig
from translate.settings.validate import objective_of
from translate.training.curves import write_curves
from translate.training.ema import GeneratorEMA
from translate.training.trackers import Trackers
from translate.visuals import rows_to_grid, save_png


@torch.no_grad()
def image_grid(model: GANModel, batch: Any, ema: Optional[GeneratorEMA]) -> torch.Tensor:
    """The grid of ``model.visuals(batch)`` in eval mode, with the average's outputs (``ema_`` rows) below the
    raw generator's when the run keeps one (the inputs are the same, so they are shown once)."""
    model.eval()
    rows = model.visuals(batch)
    if ema is not None:
        with ema.swapped_in():
            rows.update({f"ema_{k}": v for k, v in model.visuals(batch).items() if not k.startswith(("real", "input"))})
    model.train()
    return rows_to_grid(rows)


class RunReport:
    """Reports of one run into ``run_dir``: the trackers ``cfg.logger`` chooses and the progress bar
    (``cfg.trainer.progress_bar``); ``enabled``: this process reports (rank 0)."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, enabled: bool) -> None:
        self.run_dir = run_dir
        self.cfg = cfg
        self.enabled = enabled
        self.progress_bar = cfg.trainer.progress_bar and enabled
        self.trackers = Trackers(run_dir)
        self.bar: Any = tqdm(disable=True)
        #: The last value of every logged training loss and validation metric, for the summary.
        self.final: Dict[str, float] = {}

    def open(self, step: int, total_steps: int) -> None:
        """Start the trackers (continuing their runs when the run directory names them) and the bar, at
        ``step`` of ``total_steps``."""
        if self.enabled and self.cfg.logger.enabled:
            label = self.cfg.name or _relative(self.run_dir)
            self.trackers = Trackers.open(self.run_dir, self.cfg.logger, step, label)
            self.trackers.log_config(plain(self.cfg))
        self.bar = tqdm(total=total_steps, initial=step, disable=not self.progress_bar, dynamic_ncols=True, desc="train")

    def close(self, failed: bool = False) -> None:
        self.bar.close()
        self.trackers.close(failed)

    def step_done(self) -> None:
        self.bar.update(1)

    def scalars(self, step: int, values: Mapping[str, float], grad_norms: Mapping[str, torch.Tensor], lrs: Mapping[str, float]) -> None:
        """One step's losses (averaged over the processes), the networks' gradient norms and learning rates."""
        self.final.update({f"train/{k}": v for k, v in values.items()})
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k.startswith("loss")}, refresh=False)
        if not self.trackers:
            return
        scalars = {f"train/{key}": value for key, value in values.items()}
        scalars.update({f"train/grad_norm/{name}": norm.item() for name, norm in grad_norms.items()})
        scalars.update({f"train/lr/{name}": lr for name, lr in lrs.items()})
        self.trackers.log_scalars(step, scalars)

    def validation(self, step: int, metrics: Mapping[str, Mapping[str, Any]]) -> None:
        means = {f"val/{key}": value["mean"] for key, value in metrics.items()}
        self.final.update(means)
        self.trackers.log_scalars(step, means)

    def images(self, step: int, grid: torch.Tensor, png_name: Optional[str] = None) -> None:
        """The grid to the trackers and, given ``png_name``, to ``samples/<png_name>``."""
        if not self.enabled:
            return
        self.trackers.log_image("train/visuals", step, grid)
        if png_name:
            save_png(grid, self.run_dir / "samples" / png_name)

    def summary(self, step: int, best: Optional[Mapping[str, Any]]) -> None:
        """The run's summary to the trackers: the last value of each loss and validation metric
        (``final/<tag>``), the best one (``best/<metric>``) and the objective a sweeper gets (``objective``), so
        that the runs of a sweep compare in one table (TensorBoard's HPARAMS tab, beside the hyperparameters)."""
        if not self.trackers:
            return
        values = {f"final/{tag}": value for tag, value in self.final.items()}
        if best is not None:
            values[f"best/{best['metric']}"] = best["value"]
        objective = objective_of(self.cfg).value(best, self.final)
        if not math.isnan(objective):
            values["objective"] = objective
        self.trackers.log_summary(step, values)

    def curves(self) -> None:
        """``curves.png`` from the TensorBoard events, once they are complete (after :meth:`close`)."""
        if self.enabled and self.cfg.logger.tensorboard is not None:
            write_curves(self.run_dir / "tb", self.run_dir / "curves.png")

    @contextlib.contextmanager
    def opened(self, step: int, total_steps: int):
        self.open(step, total_steps)
        try:
            yield self
        except BaseException:
            self.close(failed=True)
            raise
        self.close()


def _relative(run_dir: Path) -> str:
    """The run directory as the user sees it (``outputs/pix2pix/facades/<time>``): the trackers' run name."""
    try:
        return str(run_dir.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(run_dir)
