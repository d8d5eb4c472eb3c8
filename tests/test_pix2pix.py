"""pix2pix end to end on tiny aligned pairs: it learns, it logs what the issue promises, translate-test writes
every image with the page and the metrics, and the options users rely on (eval_mode, direction, 1-channel,
sizes the U-Net cannot take) behave."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from _models_helpers import (
    as_input,
    as_png_levels,
    assert_test_outputs,
    load_run_model,
    png_error,
    read_metrics,
    read_png,
    scalar_values,
    train,
    train_config,
    translate_test,
    write_pairs,
)
from helpers import load_ckpt, read_events, run_cli
from translate.errors import ConfigError
from translate.models.pix2pix import Pix2Pix

VISUALS = ("real_A", "fake_B", "real_B")
N_TEST = 60  # more than the reference's hidden 50-image cap


def tiny(root, size: int = 32, num_downs: int = 5, steps: int = 2, *more: str) -> list[str]:
    """Overrides for a small U-Net pix2pix on ``size`` px pairs, ``steps`` steps, no logger."""
    return [
        "model=pix2pix",
        "data=aligned",
        f"data.root={root}",
        f"data.load_size={size}",
        f"data.crop_size={size}",
        "model.generator.arch=unet",
        f"model.generator.num_downs={num_downs}",
        "model.generator.ngf=8",
        "model.discriminator.ndf=8",
        "trainer.batch_size=2",
        f"trainer.max_steps={steps}",
        "logger=none",
        *more,
    ]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> SimpleNamespace:
    """``root`` with 8 training and 60 test pairs, 32x32, B = colour-inverted A; ``train`` and ``test``: A by stem."""
    root = tmp_path_factory.mktemp("pairs")
    train_a = write_pairs(root, "train", 8, 32, seed=0)
    return SimpleNamespace(root=root, train=train_a, test=write_pairs(root, "test", N_TEST, 32, seed=1))


@pytest.fixture(scope="module")
def overfit(pairs, tmp_path_factory):
    """150 steps on the 8 pairs, logging every step to TensorBoard."""
    run_dir = tmp_path_factory.mktemp("overfit")
    train(
        run_dir,
        tiny(
            pairs.root,
            32,
            5,
            150,
            "logger=tensorboard",
            "model.optim.lr=1e-3",
            "model.lambda_L1=100",
            "trainer.log_every_n_steps=1",
            "trainer.image_every_n_steps=50",
        ),
    )
    return run_dir


def test_overfits_eight_pairs(overfit):
    l1 = scalar_values(read_events(overfit / "tb"), "train/loss_G/L1")
    assert len(l1) == 150
    start, end = np.mean(l1[:3]), np.mean(l1[-5:])
    assert start > 0.3, l1[:3]  # an untrained generator is far from the inverted image
    assert end < 0.4 * start, (start, end)


def test_tensorboard_has_the_losses_learning_rates_and_the_grid(overfit):
    acc = read_events(overfit / "tb")
    scalars = set(acc.Tags()["scalars"])
    losses = {"train/loss_G/gan", "train/loss_G/L1", "train/loss_D/real", "train/loss_D/fake"}
    assert losses | {"train/lr/G", "train/lr/D"} <= scalars
    assert all(math.isfinite(v) for tag in scalars for v in scalar_values(acc, tag))
    assert scalar_values(acc, "train/lr/G")[-1] == pytest.approx(1e-3)
    # rows real_A | fake_B | real_B of the first 4 test images: 3 x 4 tiles of 32 px with 2 px padding
    grids = acc.Images("train/visuals")
    assert grids and (grids[-1].height, grids[-1].width) == (3 * 34 + 2, 4 * 34 + 2)


def test_translate_test_cli_writes_every_image_the_page_and_the_metrics(overfit, pairs, tmp_path):
    proc = run_cli("translate-test", f"run={overfit}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = overfit / "test_latest"
    test_images = pairs.test
    assert_test_outputs(out, {stem: VISUALS for stem in test_images})
    errors, squared = [], []
    for stem, a in test_images.items():
        assert png_error(out / "images" / f"{stem}_real_A.png", a) == 0
        assert png_error(out / "images" / f"{stem}_real_B.png", 255 - a) == 0
        diff = (read_png(out / "images" / f"{stem}_fake_B.png").astype(float) - (255 - a)) / 127.5
        errors.append(np.abs(diff).mean())
        squared.append((diff**2).mean())
    metrics = read_metrics(out)
    assert set(metrics) == {"L1", "PSNR", "SSIM"}
    assert all(m["num_images"] == N_TEST for m in metrics.values())
    # the means are over every test image: recomputed from the 8-bit files they agree up to rounding
    assert metrics["L1"]["mean"] == pytest.approx(np.mean(errors), abs=0.01)
    assert metrics["PSNR"]["mean"] == pytest.approx(np.mean([10 * np.log10(4 / s) for s in squared]), abs=0.3)
    assert metrics["L1"]["mean"] < 0.25  # it learned the inversion, also on unseen pairs
    assert metrics["SSIM"]["mean"] > 0.5, metrics["SSIM"]  # and their structure (an untrained U-Net scores about 0.03)


def test_num_test_caps_the_translated_inputs(overfit, pairs, tmp_path):
    out = translate_test(overfit, tmp_path / "capped", "num_test=5")
    assert_test_outputs(out, {stem: VISUALS for stem in sorted(pairs.test)[:5]})
    assert {m["num_images"] for m in read_metrics(out).values()} == {5}


def test_eval_mode_paper_keeps_dropout_on_and_eval_turns_it_off(tmp_path):
    # num_downs 6 is the shallowest U-Net with a dropout block; instance norm makes dropout the only
    # difference between train() and eval()
    root = tmp_path / "pairs64"
    for split in ("train", "test"):
        write_pairs(root, split, 4, 64, seed=2)
    run_dir = tmp_path / "run"
    unet = ("model.generator.ngf=4", "model.generator.norm=instance", "model.generator.dropout=true")
    train(run_dir, tiny(root, 64, 6, 2, *unet, "model.discriminator.ndf=4"))
    modes = {"eval": "eval", "eval_again": "eval", "paper": "paper"}
    outs = {name: translate_test(run_dir, tmp_path / name, f"eval_mode={mode}") for name, mode in modes.items()}
    stems = [f"test_{i:02d}" for i in range(4)]
    for out in outs.values():
        assert_test_outputs(out, {stem: VISUALS for stem in stems})
    fake = {name: np.stack([read_png(out / "images" / f"{s}_fake_B.png") for s in stems]) for name, out in outs.items()}
    assert np.array_equal(fake["eval"], fake["eval_again"])
    assert not np.array_equal(fake["eval"], fake["paper"])


def test_a_crop_size_the_unet_cannot_take_is_rejected_before_training(pairs, tmp_path):
    with pytest.raises(ConfigError) as err:
        train_config(tiny(pairs.root, 40, 5, 2))
    message = str(err.value)
    assert "data.crop_size" in message and "40" in message
    assert "32" in message and "64" in message  # the sizes that work


def test_btoa_feeds_the_b_image_to_the_generator(pairs, tmp_path, monkeypatch):
    inputs = []
    original = Pix2Pix.training_step

    def recording_step(self, batch, opt):
        inputs.append(batch["A"].clone())
        return original(self, batch, opt)

    monkeypatch.setattr(Pix2Pix, "training_step", recording_step)
    run_dir = tmp_path / "run"
    train(run_dir, tiny(pairs.root, 32, 5, 2, "data.direction=BtoA", "data.flip=false"))
    # training: every input is the right half (B = 255 - A) of a training file
    train_b = [as_input(255 - a)[0] for a in pairs.train.values()]
    assert len(inputs) == 2
    for image in torch.cat(inputs):
        assert any(torch.allclose(image, b, atol=1e-6) for b in train_b)

    # testing: real_A is the B half, real_B the A half, and fake_B is G(the B half)
    out = translate_test(run_dir, tmp_path / "out", "num_test=3")
    net = load_run_model(run_dir).netG
    for stem in sorted(pairs.test)[:3]:
        a = pairs.test[stem]
        assert png_error(out / "images" / f"{stem}_real_A.png", 255 - a) == 0
        assert png_error(out / "images" / f"{stem}_real_B.png", a) == 0
        with torch.no_grad():
            expected = as_png_levels(net(as_input(255 - a)))
        assert png_error(out / "images" / f"{stem}_fake_B.png", expected) <= 1


def test_one_channel_input_trains_and_tests(pairs, tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, tiny(pairs.root, 32, 5, 2, "data.input_nc=1", "data.output_nc=3"))
    nets = load_ckpt(run_dir / "checkpoints" / "latest.pt")["networks"]
    assert nets["G"]["model.model.0.weight"].shape[1] == 1
    assert nets["G"]["model.model.3.weight"].shape[1] == 3  # ConvTranspose weight: [in, out, k, k]
    assert nets["D"]["model.0.weight"].shape[1] == 1 + 3  # the conditional D sees cat(A, B)
    out = translate_test(run_dir, tmp_path / "out", "num_test=2")
    stem = sorted(pairs.test)[0]
    assert read_png(out / "images" / f"{stem}_real_A.png").ndim == 2
    assert read_png(out / "images" / f"{stem}_fake_B.png").shape == (32, 32, 3)
