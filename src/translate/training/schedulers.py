"""Learning-rate schedules, stepped once per epoch as in the papers."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, StepLR

from translate.config import LrPolicy, TrainerConfig


def linear_decay_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """The reference's rule: 1 for the first ``n_epochs`` epochs, then linearly towards 0 over
    ``n_epochs_decay`` more (``epoch`` counts from 0, the reference's epoch_count is 1)."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def build_scheduler(optimizer: Optimizer, trainer: TrainerConfig) -> LRScheduler:
    policy = LrPolicy(trainer.lr_policy)
    if policy == LrPolicy.linear:
        n, n_decay = trainer.n_epochs, trainer.n_epochs_decay
        return LambdaLR(optimizer, lambda epoch: linear_decay_factor(epoch, n, n_decay))
    if policy == LrPolicy.step:
        return StepLR(optimizer, step_size=trainer.lr_decay_epochs, gamma=trainer.lr_decay_gamma)
    if policy == LrPolicy.cosine:
        return CosineAnnealingLR(optimizer, T_max=max(1, trainer.n_epochs + trainer.n_epochs_decay), eta_min=0.0)
    return LambdaLR(optimizer, lambda epoch: 1.0)
