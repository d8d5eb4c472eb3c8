"""Learning-rate schedules, stepped once per epoch: the papers' linear decay, step and cosine."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from translate.config import TrainerConfig
from translate.training.schedulers import build_scheduler, linear_decay_factor

LR = 2e-4


def _lrs(epochs: int, **trainer) -> list[float]:
    """The learning rate of each of ``epochs`` epochs under the schedule ``trainer`` describes."""
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = build_scheduler(opt, OmegaConf.structured(TrainerConfig(**trainer)))
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


# The reference's rule, lr * (1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)) with epochs counted
# from 0, worked out by hand for each epoch:
LINEAR_FACTORS = {
    (3, 5): [1, 1, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6],
    (1, 1): [1, 1 / 2],
    (0, 4): [4 / 5, 3 / 5, 2 / 5, 1 / 5],
}


@pytest.mark.parametrize("n_epochs, n_epochs_decay", sorted(LINEAR_FACTORS))
def test_linear_factor_is_the_reference_rule(n_epochs, n_epochs_decay):
    factors = [linear_decay_factor(epoch, n_epochs, n_epochs_decay) for epoch in range(n_epochs + n_epochs_decay)]
    assert factors == pytest.approx(LINEAR_FACTORS[n_epochs, n_epochs_decay])


def test_linear_schedule_is_constant_then_decays_linearly_towards_zero():
    lrs = _lrs(8, lr_policy="linear", n_epochs=3, n_epochs_decay=5)
    assert lrs == pytest.approx([LR * f for f in LINEAR_FACTORS[3, 5]])
    steps = [a - b for a, b in zip(lrs[2:], lrs[3:])]
    # equal decrements, all positive: a straight line down, reaching LR / (n_epochs_decay + 1) in the last epoch
    assert steps == pytest.approx([LR / 6] * 5)
    assert lrs[-1] == pytest.approx(LR / 6)


def test_paper_schedule_at_its_first_middle_and_last_epochs():
    """100 epochs at 2e-4, then 100 of decay: 1 - k / 101 of it in the k-th decaying epoch."""
    lrs = _lrs(200, lr_policy="linear", n_epochs=100, n_epochs_decay=100)
    assert lrs[0] == lrs[99] == pytest.approx(LR)
    assert lrs[100] == pytest.approx(LR * 100 / 101)
    assert lrs[150] == pytest.approx(LR * 50 / 101)  # about half way down
    assert lrs[199] == pytest.approx(LR / 101)


def test_step_schedule_multiplies_by_gamma_every_lr_decay_epochs():
    lrs = _lrs(7, lr_policy="step", lr_decay_epochs=3, lr_decay_gamma=0.1)
    assert lrs == pytest.approx([LR] * 3 + [LR * 0.1] * 3 + [LR * 0.01])


def test_cosine_schedule_anneals_to_zero_over_all_epochs():
    total = 4 + 4
    lrs = _lrs(total + 1, lr_policy="cosine", n_epochs=4, n_epochs_decay=4)
    assert lrs == pytest.approx([LR * (1 + math.cos(math.pi * e / total)) / 2 for e in range(total + 1)], abs=1e-12)
    assert (lrs[0], lrs[total // 2], lrs[total]) == pytest.approx((LR, LR / 2, 0.0), abs=1e-12)  # first, middle, last


def test_constant_schedule_keeps_the_lr():
    assert _lrs(5, lr_policy="constant") == pytest.approx([LR] * 5)


def test_schedule_state_round_trips():
    """A resumed run continues the schedule where it stopped (the checkpoint holds the state_dict)."""
    trainer = OmegaConf.structured(TrainerConfig(lr_policy="linear", n_epochs=1, n_epochs_decay=3))
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = build_scheduler(opt, trainer)
    for _ in range(2):
        opt.step()
        sched.step()
    fresh_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    fresh = build_scheduler(fresh_opt, trainer)
    fresh_opt.load_state_dict(opt.state_dict())
    fresh.load_state_dict(sched.state_dict())
    fresh_opt.step()
    fresh.step()
    # epoch 3 of 1 + 3: 1 - 3 / 4 of the lr
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(LR * 0.25)
