"""Numbers a user can trust: validation scores what translate-test scores, eval_mode=paper is the reference's
one-image test, WGAN-GP weighs its penalty as the paper does, every GAN loss trains every model, non-finite
gradients are caught, and a resume keeps its place in the epoch in samples."""

from __future__ import annotations

import logging

import pytest
import torch

import helpers
from _models_helpers import (
    CPU,
    TINY_CUT,
    TINY_CYCLEGAN,
    TINY_PIX2PIX,
    Recorder,
    read_metrics,
    read_png,
    train,
    train_config,
    translate_test,
    write_folder,
    write_pairs,
)
from translate.errors import ConfigError, TrainingError
from translate.models.base import build_model
from translate.training.engine import Trainer


def _model(*overrides: str, image_size: int = 32, channels: int = 3):
    typed = train_config([*overrides, "data.root=unused"] if "data=mnist_subset" not in overrides else list(overrides))
    info = {"input_nc": channels, "output_nc": channels, "image_size": image_size}
    if typed.model.name == "cgan":
        info["num_classes"] = 10
    return build_model(typed.model, info)


# --- validation equals test -------------------------------------------------------------------------------


def test_last_validation_equals_translate_test_on_the_val_split(tmp_path):
    """With load_size > crop_size, validation and translate-test read the same pixels (the whole image
    resized to the crop), so the run's last val/PSNR is translate-test's PSNR on the val split."""
    root = tmp_path / "pairs"
    write_pairs(root, "train", 4, 40, seed=1)
    write_pairs(root, "val", 3, 40, seed=2)
    overrides = [*TINY_PIX2PIX, f"data.root={root}", "data.load_size=40", "data.crop_size=32", "logger=none"]
    run = tmp_path / "run"
    trainer = train(run, [*overrides, "trainer.max_steps=4", "trainer.batch_size=2", "trainer.val_every_n_epochs=1"])
    assert trainer.epoch == 2  # validated after each of the two epochs
    metrics = read_metrics(translate_test(run, tmp_path / "test", "split=val"))
    for key in ("PSNR", "L1", "SSIM"):
        assert metrics[key]["num_images"] == 3
        assert metrics[key]["mean"] == pytest.approx(trainer.final_metrics[f"val/{key}"], rel=1e-5, abs=1e-6)


# --- eval_mode=paper ---------------------------------------------------------------------------------------


def test_paper_mode_gives_each_image_the_output_it_has_alone(tmp_path):
    """In paper mode batch norm uses the statistics of the batch; translated one at a time, as the reference
    tests, an image's output does not depend on the images tested beside it."""
    root = tmp_path / "pairs"
    write_pairs(root, "train", 2, 32, seed=1)
    write_pairs(root, "test", 5, 32, seed=3)
    run = tmp_path / "run"
    # batch norm, no dropout: the output is deterministic, and depends on the batch only through its statistics
    train(run, [*TINY_PIX2PIX, f"data.root={root}", "model.generator.dropout=false", "trainer.max_steps=1", "logger=none"])
    batched = translate_test(run, tmp_path / "batched", "eval_mode=paper", "batch_size=5")
    alone = [translate_test(run, tmp_path / f"alone{i}", "eval_mode=paper", "batch_size=1", f"num_test={i + 1}") for i in range(2)]
    for i, out in enumerate(alone):
        name = f"test_{i:02d}_fake_B.png"
        assert (read_png(batched / "images" / name) == read_png(out / "images" / name)).all()


# --- WGAN-GP -----------------------------------------------------------------------------------------------


@pytest.fixture
def constant_penalty(monkeypatch):
    """The gradient penalty replaced by ``weight * 1``: the penalty term becomes a known number."""
    monkeypatch.setattr("translate.losses.gradient_penalty", lambda critic, real, fake, weight: torch.tensor(weight))


def test_wgangp_penalty_has_weight_lambda_gp_relative_to_the_critic_loss(constant_penalty):
    """L_D = E[D(fake)] - E[D(real)] + lambda_gp * GP (Gulrajani et al. 2017); pix2pix and CycleGAN halve the
    whole of it (the reference halves its D loss), so the penalty keeps its weight against the critic terms."""
    torch.manual_seed(0)
    pix2pix = _model(*TINY_PIX2PIX, "model.gan_mode=wgangp", "model.discriminator.norm=instance", "model.lambda_gp=7")
    opt = Recorder()
    out = pix2pix.training_step({"A": torch.randn(2, 3, 32, 32), "B": torch.randn(2, 3, 32, 32)}, opt)
    assert opt.losses["D"].item() == pytest.approx(0.5 * (out["loss_D/real"] + out["loss_D/fake"]).item() + 0.5 * 7)

    cyclegan = _model(*TINY_CYCLEGAN, "model.gan_mode=wgangp", "model.lambda_gp=3", image_size=16)
    opt = Recorder()
    out = cyclegan.training_step({"A": torch.randn(2, 3, 16, 16), "B": torch.randn(2, 3, 16, 16)}, opt)
    for side in "AB":
        # the wgangp critic loss is -E[D(real)] + E[D(fake)], and the scores are those means
        critic = -out[f"D_real/{side}"] + out[f"D_fake/{side}"]
        assert out[f"loss_D/{side}"].item() == pytest.approx(0.5 * (critic.item() + 3), rel=1e-5)
    assert opt.losses["D"].item() == pytest.approx((out["loss_D/A"] + out["loss_D/B"]).item(), rel=1e-5)

    cgan = _model(*helpers.TINY, "model.gan_mode=wgangp", "model.discriminator.norm=none", "model.lambda_gp=5", image_size=16, channels=1)
    opt = Recorder()
    out = cgan.training_step({"image": torch.randn(4, 1, 16, 16), "label": torch.arange(4)}, opt)
    assert opt.losses["D"].item() == pytest.approx((out["loss_D/real"] + out["loss_D/fake"]).item() + 5, rel=1e-5)


@pytest.mark.parametrize(
    "overrides, size, channels",
    [
        ([*helpers.TINY, "model.gan_mode=wgangp"], 16, 1),
        ([*TINY_PIX2PIX, "model.gan_mode=wgangp"], 32, 3),
        ([*TINY_CYCLEGAN, "model.gan_mode=wgangp", "model.discriminator.norm=batch"], 16, 3),
    ],
    ids=["cgan", "pix2pix", "cyclegan"],
)
def test_wgangp_with_a_batch_norm_critic_is_refused_naming_the_norms_that_work(overrides, size, channels):
    with pytest.raises(ConfigError) as err:
        _model(*overrides, image_size=size, channels=channels)
    message = str(err.value)
    assert "\n" not in message and "model.discriminator.norm=instance" in message and "none" in message


def test_wgangp_with_compile_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match="device.compile=true with model.gan_mode=wgangp.*device.compile=false"):
        helpers.train_config(*helpers.TINY, "model.gan_mode=wgangp", "model.discriminator.norm=none", "device.compile=true")


# --- every GAN loss on every model ------------------------------------------------------------------------

MODES = [("vanilla", 0.0), ("lsgan", 0.0), ("wgangp", 0.0), ("hinge", 0.0), ("vanilla", 0.2)]


def _tiny_run(model: str, tmp_path) -> list[str]:
    if model == "cgan":
        return [*helpers.TINY, "model.discriminator.norm=none"]
    if model == "pix2pix":
        write_pairs(tmp_path / "pairs", "train", 6, 32, seed=1)
        return [*CPU, *TINY_PIX2PIX, f"data.root={tmp_path / 'pairs'}", "model.discriminator.norm=instance", "trainer.batch_size=2"]
    write_folder(tmp_path / "folders" / "trainA", 6, 16, seed=1, prefix="a")
    write_folder(tmp_path / "folders" / "trainB", 6, 16, seed=2, prefix="b")
    return [*CPU, *(TINY_CUT if model == "cut" else TINY_CYCLEGAN), f"data.root={tmp_path / 'folders'}", "trainer.batch_size=2"]


@pytest.mark.parametrize("model", ["cgan", "pix2pix", "cyclegan", "cut"])
@pytest.mark.parametrize("mode, smoothing", MODES, ids=[f"{m}-smooth{s}" for m, s in MODES])
def test_every_gan_loss_trains_every_model_with_finite_losses_and_a_moving_discriminator(tmp_path, model, mode, smoothing):
    overrides = [*_tiny_run(model, tmp_path), f"model.gan_mode={mode}", f"model.label_smoothing={smoothing}", "logger=none"]
    trainer = Trainer(helpers.train_config(*overrides), tmp_path / "run")
    trainer.build()
    critics = {name: net for name, net in trainer.model.networks.items() if name.startswith("D")}
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in critics.items()}
    batches = iter(trainer.loader)
    for _ in range(3):
        losses = trainer.train_step(next(batches))
        assert all(torch.isfinite(v).all() for v in losses.values()), losses
    for name, net in critics.items():
        moved = max((p.detach() - b).abs().max().item() for p, b in zip(net.parameters(), before[name]))
        assert moved > 0, f"{name} did not move"


# --- non-finite gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_a_finite_loss_with_a_non_finite_gradient_leaves_the_update_out(tmp_path, amp, caplog):
    trainer = Trainer(helpers.train_config(*helpers.TINY, f"device.amp={amp}", "trainer.skip_nonfinite=1", "logger=none"), tmp_path / "run")
    trainer.build()
    batches = iter(trainer.loader)
    trainer.train_step(next(batches))
    netG = trainer.model.networks["G"]
    poison = next(netG.parameters()).register_hook(lambda grad: grad * float("nan"))
    before = [p.detach().clone() for p in netG.parameters()]
    with caplog.at_level(logging.WARNING, logger="translate"):
        losses = trainer.train_step(next(batches))
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert "non-finite gradient (the losses are finite)" in caplog.text and "skipped the G update" in caplog.text
    assert all(torch.equal(p, b) for p, b in zip(netG.parameters(), before)), "the poisoned update reached G"
    assert all(torch.isfinite(p).all() for p in netG.parameters())
    with pytest.raises(TrainingError, match="non-finite gradient .* at step 3"):
        trainer.train_step(next(batches))  # the budget of one skipped step is spent
    poison.remove()


# --- resume keeps its place in samples ------------------------------------------------------------------------


def test_resume_with_another_batch_size_continues_after_the_same_images(tmp_path, caplog):
    """16 images, batch 4: 3 steps use 12 of epoch 1. Resumed at batch 2, the epoch ends after the 4 images
    left (2 steps), not after the 10 that a position counted in batches would leave."""
    run = tmp_path / "run"
    data = [*helpers.TINY, "data.max_dataset_size=16", "logger=none"]
    helpers.train(run, *data, "trainer.batch_size=4", "trainer.max_steps=3")
    assert helpers.load_ckpt(run / "checkpoints" / "latest.pt")["samples_in_epoch"] == 12
    with caplog.at_level(logging.INFO, logger="translate"):
        trainer = helpers.train(run, *data, "trainer.batch_size=2", "trainer.max_steps=5", f"resume={run}")
    assert "(epoch 1, after 12 of its images)" in caplog.text
    assert (trainer.step, trainer.epoch, trainer.sample_in_epoch) == (5, 1, 0)


def test_a_checkpoint_of_format_1_keeps_the_depth_its_preset_gave(tmp_path):
    """Format-1 checkpoints saved n_blocks=9 beside arch=resnet_6blocks (the old schema default, which the preset
    overrode); now a depth that is set wins, so reading one must drop it, or the 6-block weights would not load."""
    root = tmp_path / "pairs"
    write_pairs(root, "train", 2, 32, seed=1)
    write_pairs(root, "test", 2, 32, seed=2)
    run = tmp_path / "run"
    train(
        run,
        [
            "model=pix2pix",
            "data=aligned",
            f"data.root={root}",
            "data.load_size=32",
            "data.crop_size=32",
            "model.generator.arch=resnet_6blocks",
            "model.generator.ngf=4",
            "model.discriminator.ndf=4",
            "trainer.max_steps=1",
            "logger=none",
        ],
    )
    latest = run / "checkpoints" / "latest.pt"
    state = torch.load(latest, weights_only=True)
    state["version"] = 1
    state["config"]["model"]["generator"]["n_blocks"] = 9
    state["config"]["model"]["discriminator"]["n_layers"] = 3
    torch.save(state, latest)
    assert read_metrics(translate_test(run, tmp_path / "test"))["L1"]["num_images"] == 2
