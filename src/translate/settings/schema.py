"""translate-train's whole config, typed: the schema Hydra's ``train_schema`` stores and the object the
engine trains with. Imports no torch (the command line reads it for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from translate.config import BestMode, DeviceConfig, LoggerConfig, PathsConfig, TrainerConfig, ValMetricsConfig
from translate.data.configs import DataConfig
from translate.models.configs import ModelConfig


@dataclass
class TrainConfig:
    """translate-train's composed config: one group per concern (conf/train.yaml lists them)."""

    seed: int = 0
    # Free-form label for the run; shows in the saved config.
    name: Optional[str] = None
    # Continue a run: its directory (uses checkpoints/latest.pt) or a checkpoint file.
    resume: Optional[str] = None
    # Fine-tune: a new run whose networks start from these weights (a run directory, a checkpoint, a reference
    # generator file or folder, or a pretrained name such as horse2zebra); fresh optimisers and schedule.
    # Ignored when resuming (the checkpoint holds everything then).
    init_from: Optional[str] = None
    # What translate-train returns to a sweeper (Optuna): the last value of this metric (val/<metric> or
    # train/<loss>); null: the best value of trainer.best_metric when that is set, else the model's default
    # (pix2pix val/L1, CycleGAN val/cycle_L1_A, cGAN val/fid_mnist_classifier, classifier train/loss_C/ce).
    objective: Optional[str] = None
    # max or min; null: the metric's usual direction. The sweeper's hydra.sweeper.direction must agree.
    objective_mode: Optional[BestMode] = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    metrics: ValMetricsConfig = field(default_factory=ValMetricsConfig)


#: The keys of TrainConfig whose values are a run's hyperparameters (paths, logger and resume do not change results).
HPARAM_GROUPS: Tuple[str, ...] = ("seed", "model", "data", "trainer", "device")
