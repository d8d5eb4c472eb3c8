"""The training controls of GAN practice: the original WGAN (weight clipping, RMSprop), several critic
updates per generator update, per-network optimisers, and an exponential moving average of the generators
that validation, translate-test and translate-export use."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import helpers
from _models_helpers import CPU, TINY_CYCLEGAN, TINY_PIX2PIX, read_png, translate_test, write_folder, write_pairs
from translate.cli.exporting import load_generator
from translate.training.ema import GeneratorEMA, ramped_decay
from translate.training.engine import Trainer

TINY = [*helpers.TINY, "logger=none", "trainer.batch_size=2"]  # 16 digits: 8 steps an epoch


def _built(tmp_path, *overrides: str) -> Trainer:
    trainer = Trainer(helpers.train_config(*TINY, *overrides), tmp_path / "run")
    trainer.build()
    return trainer


def _weights(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_per_network_optimisers_override_the_shared_settings(tmp_path):
    trainer = _built(tmp_path, "model.optim.lr=3e-4", "model.optim.D.lr=1e-4", "model.optim.D.beta1=0.0", "model.optim.G.type=rmsprop")
    d, g = trainer.optimizers["D"], trainer.optimizers["G"]
    assert isinstance(d, torch.optim.Adam) and d.param_groups[0]["lr"] == 1e-4 and d.param_groups[0]["betas"] == (0.0, 0.999)
    assert isinstance(g, torch.optim.RMSprop) and g.param_groups[0]["lr"] == 3e-4


def test_the_wgan_preset_clips_the_critic_after_each_update(tmp_path):
    trainer = _built(tmp_path, "experiment=cgan_wgan", "trainer.d_steps_per_g_step=1", *TINY)
    assert isinstance(trainer.optimizers["D"], torch.optim.RMSprop) and trainer.optimizers["D"].param_groups[0]["lr"] == 5e-5
    critic = trainer.model.networks["D"]
    assert max(p.abs().max().item() for p in critic.parameters()) > 0.01  # DCGAN's N(0, 0.02) init is not clipped yet
    trainer.train_step(next(iter(trainer.loader)))
    assert max(p.abs().max().item() for p in critic.parameters()) <= 0.01


def test_the_generator_learns_on_every_nth_step_and_the_critic_on_every_step(tmp_path):
    trainer = _built(tmp_path, "trainer.d_steps_per_g_step=3")
    g, d = trainer.model.networks["G"], trainer.model.networks["D"]
    batches = iter(trainer.loader)
    changed = []
    for _ in range(6):
        g_before, d_before = _weights(g), _weights(d)
        losses = trainer.train_step(next(batches))
        changed.append((not _same(g_before, _weights(g)), not _same(d_before, _weights(d)), "loss_G/gan" in losses))
    assert changed == [(False, True, False), (False, True, False), (True, True, True)] * 2


def test_several_critic_steps_resume_exactly_mid_cycle(tmp_path):
    # Exact, not within a tolerance: both runs compute on one machine and one numeric path (same kernels, same
    # threads, same order of sums), so any difference is state the resume lost, whatever the CPU kind.
    args = [*TINY, "trainer.d_steps_per_g_step=3", "trainer.lr_policy=constant"]
    straight = helpers.train(tmp_path / "straight", *args, "trainer.max_steps=7")
    helpers.train(tmp_path / "split", *args, "trainer.max_steps=4")
    resumed = helpers.train(tmp_path / "split", *args, "trainer.max_steps=7", f"resume={tmp_path / 'split'}")
    for name, net in straight.model.networks.items():
        helpers.assert_same_tensors(net.state_dict(), resumed.model.networks[name].state_dict())


def test_ema_follows_the_weights_until_start_step_then_averages_them(tmp_path):
    trainer = _built(tmp_path, "model.ema.decay=0.5", "model.ema.start_step=2")
    g = trainer.model.networks["G"]
    batches = iter(trainer.loader)
    expected = None
    for step in range(4):
        trainer.train_step(next(batches))
        w = _weights(g)
        d = ramped_decay(0.5, step - 1)  # updates averaged before this one: 1 after the copy at step 1
        expected = w if step < 2 else [d * e + (1 - d) * x for e, x in zip(expected, w)]
    averaged = list(trainer.ema.averaged["G"].module.parameters())
    assert all(torch.allclose(a, e, atol=1e-6) for a, e in zip(averaged, expected))
    assert not _same(averaged, _weights(g))


def test_ema_forgets_the_initial_weights_in_a_short_run_and_keeps_its_decay_in_a_long_one():
    net = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(net.weight)
    ema = GeneratorEMA({"G": net}, decay=0.999, start_step=0)
    ema.update(0)  # the copy of the initial weights
    nn.init.ones_(net.weight)
    for step in range(1, 201):
        ema.update(step)
    # a fixed 0.999 would still hold 0.999 ** 200 = 82% of the initial 0 here
    assert ema.averaged["G"].module.weight.item() > 0.99
    assert ramped_decay(0.999, 1) == pytest.approx(2 / 11) and ramped_decay(0.999, 100_000) == 0.999


def test_ema_is_saved_resumed_exactly_and_used_by_test_and_export(tmp_path):
    # Exact, not within a tolerance: both runs compute on one machine and one numeric path (same kernels, same
    # threads, same order of sums), so any difference is state the resume lost, whatever the CPU kind.
    args = [*TINY, "model.ema.decay=0.9", "trainer.lr_policy=constant"]
    straight = helpers.train(tmp_path / "straight", *args, "trainer.max_steps=4")
    run = tmp_path / "split"
    helpers.train(run, *args, "trainer.max_steps=2")
    resumed = helpers.train(run, *args, "trainer.max_steps=4", f"resume={run}")
    helpers.assert_same_tensors(straight.ema.state_dict(), resumed.ema.state_dict())

    ema_net = resumed.ema.averaged["G"].module.eval()
    raw_net = resumed.model.networks["G"].eval()
    z, labels = torch.randn(3, 100), torch.arange(3)
    exported, _, _, _ = load_generator(run)
    raw_exported, _, _, _ = load_generator(run, weights="raw")
    with torch.no_grad():
        assert torch.allclose(exported(z, labels), ema_net(z, labels), atol=1e-6)
        assert torch.allclose(raw_exported(z, labels), raw_net(z, labels), atol=1e-6)
        assert not torch.allclose(exported(z, labels), raw_exported(z, labels), atol=1e-4)

    ema_grid = read_png(translate_test(run, tmp_path / "ema", "metrics.cgan_per_class=0") / "grid.png")
    raw_grid = read_png(translate_test(run, tmp_path / "raw", "metrics.cgan_per_class=0", "weights=raw") / "grid.png")
    assert ema_grid.shape == raw_grid.shape and (ema_grid != raw_grid).any()


def test_the_training_grid_shows_the_average_below_the_generator(tmp_path):
    run = tmp_path / "run"
    helpers.train(run, *TINY, "model.ema.decay=0.9", "trainer.max_steps=2")
    grid = read_png(run / "samples" / "final.png")
    assert grid.shape[0] == 2 + 20 * (helpers.IMAGE_SIZE + 2)  # 10 class rows of the generator, 10 of its average


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_image_models_take_critic_only_steps_too(tmp_path, model):
    if model == "pix2pix":
        write_pairs(tmp_path / "data", "train", 4, 32, seed=1)
        overrides = [*CPU, *TINY_PIX2PIX]
    else:
        write_folder(tmp_path / "data" / "trainA", 4, 16, seed=1, prefix="a")
        write_folder(tmp_path / "data" / "trainB", 4, 16, seed=2, prefix="b")
        overrides = [*CPU, *TINY_CYCLEGAN]
    trainer = Trainer(
        helpers.train_config(*overrides, f"data.root={tmp_path / 'data'}", "trainer.d_steps_per_g_step=2", "logger=none"), tmp_path / "run"
    )
    trainer.build()
    generators = [trainer.model.networks[name] for name in trainer.model.generators]
    critics = [net for name, net in trainer.model.networks.items() if name.startswith("D")]
    batches = iter(trainer.loader)
    for g_learns in (False, True):
        g_before, d_before = [_weights(g) for g in generators], [_weights(d) for d in critics]
        losses = trainer.train_step(next(batches))
        assert all(_same(b, _weights(g)) != g_learns for g, b in zip(generators, g_before))
        assert not any(_same(b, _weights(d)) for d, b in zip(critics, d_before))
        assert any(k.startswith("loss_G") for k in losses) == g_learns
