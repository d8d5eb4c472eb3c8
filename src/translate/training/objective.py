"""The one number a run reports to a sweeper (``translate-train``'s return value to Hydra, which Optuna
minimises or maximises): which metric it is, which way is better, and its value once training is done."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

from translate.errors import ConfigError
from translate.evaluation.image_metrics import higher_is_better
from translate.evaluation.protocols import PROTOCOLS
from translate.models import model_class


@dataclass(frozen=True)
class Objective:
    #: ``val/<metric>`` or ``train/<loss>``.
    metric: str
    higher_is_better: bool
    #: True: the best value of ``trainer.best_metric`` over the run; False: the metric's last value.
    best: bool

    @property
    def direction(self) -> str:
        """As Optuna and ``hydra.sweeper.direction`` name it."""
        return "maximize" if self.higher_is_better else "minimize"


def objective_of(cfg: Any) -> Objective:
    """``cfg.objective`` (its last value), else ``trainer.best_metric`` (its best value), else the model's
    default; the direction from ``objective_mode`` / ``trainer.best_mode``, else the metric's usual one."""
    best_metric = cfg.trainer.best_metric
    if cfg.objective:
        metric, mode, best = str(cfg.objective), cfg.objective_mode, False
    elif best_metric:
        metric, mode, best = str(best_metric), cfg.objective_mode or cfg.trainer.best_mode, True
    else:
        metric, mode, best = PROTOCOLS[model_class(cfg.model.name).evaluation].objective, cfg.objective_mode, False
    if not metric.startswith(("val/", "train/")):
        raise ConfigError(
            f"objective={metric} is not a logged metric; use val/<metric> (e.g. val/PSNR) or train/<loss> (e.g. train/loss_G/L1)"
        )
    higher = str(mode) == "max" if mode is not None else higher_is_better(metric)
    if higher is None:
        # Losses are minimised; a metric we do not know must be given its direction.
        if not metric.startswith("train/loss"):
            raise ConfigError(f"objective_mode: say max or min for objective={metric}")
        higher = False
    return Objective(metric, higher, best)


def objective_value(objective: Objective, best: Optional[Dict[str, Any]], final_metrics: Dict[str, float]) -> float:
    """The objective of a finished run; NaN when the run never logged it (no validation ran, say), which
    Optuna records as a failed trial."""
    if objective.best:
        value = best["value"] if best is not None else math.nan
    else:
        value = final_metrics.get(objective.metric, math.nan)
    return float(value)
