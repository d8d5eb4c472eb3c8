"""What a run shows while it trains: TensorBoard scalars and image grids, ``samples/*.png``, the progress bar,
the hyperparameter table a sweep is compared in, and ``curves.png`` at the end. Rank 0 reports; the other
processes of a multi-process run get a report that writes nothing."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
from tqdm import tqdm

from translate.config import plain
from translate.models.base import GANModel
from translate.settings.schema import HPARAM_GROUPS, TrainConfig
from translate.training.curves import write_curves
from translate.training.ema import GeneratorEMA
from translate.visuals import rows_to_grid, save_png


def _flatten(tree: Any, prefix: str) -> Dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}.{key}").items()}
    return {prefix: tree}


def run_hparams(cfg: TrainConfig) -> Dict[str, Union[bool, int, float, str]]:
    """The config as flat ``group.key`` hyperparameters for TensorBoard's HPARAMS table; lists and null
    become text."""
    container = plain(cfg)
    flat = {k: v for group in HPARAM_GROUPS for k, v in _flatten(container[group], group).items()}
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat.items()}


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
    """Reports of one run into ``run_dir``; ``enabled``: this process reports (rank 0), ``tensorboard``:
    with TensorBoard events in ``tb/``, ``progress_bar``: a tqdm bar on the terminal."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool, progress_bar: bool) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.tensorboard = tensorboard and enabled
        self.progress_bar = progress_bar and enabled
        self.writer: Any = None
        self.bar: Any = tqdm(disable=True)
        #: The last value of every logged training scalar and validation metric, for the HPARAMS table.
        self.final: Dict[str, float] = {}

    def open(self, step: int, total_steps: int) -> None:
        """Start the writer and the bar, at ``step`` of ``total_steps``."""
        if self.tensorboard:
            # TensorBoard's writer loads tensorboard and protobuf, seconds of imports: only when logging is on.
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a crashed run wrote after its last checkpoint, so curves do not fork.
            self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=step + 1 if step else None)
        self.bar = tqdm(total=total_steps, initial=step, disable=not self.progress_bar, dynamic_ncols=True, desc="train")

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()

    def step_done(self) -> None:
        self.bar.update(1)

    def scalars(self, step: int, values: Mapping[str, float], grad_norms: Mapping[str, torch.Tensor], lrs: Mapping[str, float]) -> None:
        """One step's losses (averaged over the processes), the networks' gradient norms and learning rates."""
        self.final.update({f"train/{k}": v for k, v in values.items()})
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k.startswith("loss")}, refresh=False)
        if self.writer is None:
            return
        for key, value in values.items():
            self.writer.add_scalar(f"train/{key}", value, step)
        for name, norm in grad_norms.items():
            self.writer.add_scalar(f"train/grad_norm/{name}", norm.item(), step)
        for name, lr in lrs.items():
            self.writer.add_scalar(f"train/lr/{name}", lr, step)

    def validation(self, step: int, metrics: Mapping[str, Mapping[str, Any]]) -> None:
        for key, value in metrics.items():
            self.final[f"val/{key}"] = value["mean"]
            if self.writer is not None:
                self.writer.add_scalar(f"val/{key}", value["mean"], step)

    def images(self, step: int, grid: torch.Tensor, png_name: Optional[str] = None) -> None:
        """The grid to TensorBoard and, given ``png_name``, to ``samples/<png_name>``."""
        if not self.enabled:
            return
        if self.writer is not None:
            self.writer.add_image("train/visuals", grid, step)
        if png_name:
            save_png(grid, self.run_dir / "samples" / png_name)

    def hparams(self, cfg: TrainConfig, step: int, best: Optional[Mapping[str, Any]]) -> None:
        """The run's hyperparameters with its final metrics (``final/<tag>``, and ``best/<metric>``), so that
        TensorBoard's HPARAMS tab compares the runs of a sweep in one table."""
        if self.writer is None:
            return
        metrics = {f"final/{tag}": value for tag, value in self.final.items()}
        if best is not None:
            metrics[f"best/{best['metric']}"] = best["value"]
        # run_name "." keeps the summary in this run's tb/ folder rather than a new timestamped one.
        self.writer.add_hparams(run_hparams(cfg), metrics, run_name=".", global_step=step)

    def curves(self) -> None:
        """``curves.png`` from the events, once they are complete (after :meth:`close`)."""
        if self.tensorboard:
            write_curves(self.run_dir / "tb", self.run_dir / "curves.png")

    @contextlib.contextmanager
    def opened(self, step: int, total_steps: int):
        self.open(step, total_steps)
        try:
            yield self
        finally:
            self.close()
