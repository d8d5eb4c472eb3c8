"""CycleGAN end to end on tiny unaligned folders: the generator step leaves the discriminators alone, identity
costs nothing when off, a short run lowers the cycle loss, pools survive resume, and translate-test writes
both directions, the page, the metrics and one-way translations with the right generator."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch

from _models_helpers import (
    SMALL_CYCLEGAN,
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
    write_folder,
)
from helpers import read_events, run_cli
from translate.errors import ConfigError
from translate.models.base import GANModel, Optimization, build_model
from translate.models.checkpoint import Checkpoint

SIZE = 16  # SMALL_CYCLEGAN's
STEPS = 80
DISCRIMINATORS = ("D_A", "D_B")


def tiny(root, *more: str) -> list[str]:
    """A 1-block ResNet CycleGAN on 16 px images; a 2-layer PatchGAN, since the 3-layer one needs >= 24 px."""
    return [
        *SMALL_CYCLEGAN,
        f"data.root={root}",
        "trainer.batch_size=2",
        "logger=none",
        *more,
    ]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> SimpleNamespace:
    """trainA: 8 images; trainB: the same images colour-inverted (named apart, so nothing pairs them);
    testA: 3 images, testB: 5 (different sizes, so each direction must be translated on its own)."""
    root = tmp_path_factory.mktemp("unaligned")
    write_folder(root / "trainA", 8, SIZE, seed=0, prefix="horse")
    write_folder(root / "trainB", 8, SIZE, seed=0, prefix="zebra", invert=True)
    return SimpleNamespace(
        root=root,
        testA=write_folder(root / "testA", 3, SIZE, seed=1, prefix="a"),
        testB=write_folder(root / "testB", 5, SIZE, seed=2, prefix="b"),
    )


@pytest.fixture(scope="module")
def run(folders, tmp_path_factory) -> SimpleNamespace:
    """80 steps of the default losses (identity on, pools of 50), logging every step to TensorBoard."""
    run_dir = tmp_path_factory.mktemp("run")
    overrides = tiny(
        folders.root,
        f"trainer.max_steps={STEPS}",
        "model.optim.lr=1e-3",
        "trainer.log_every_n_steps=1",
        "trainer.image_every_n_steps=1000",
    )
    trainer = train(run_dir, [*overrides, "logger=tensorboard"])
    return SimpleNamespace(dir=run_dir, trainer=trainer, overrides=overrides)


def tiny_model(folders, *more: str) -> GANModel:
    cfg = train_config(tiny(folders.root, *more))
    return build_model(cfg.model, {"input_nc": 3, "output_nc": 3, "image_size": SIZE})


def tiny_batch() -> Dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {side: torch.rand(2, 3, SIZE, SIZE, generator=gen) * 2 - 1 for side in ("A", "B")}


def snapshot(model: GANModel) -> Dict[str, Dict[str, torch.Tensor]]:
    return {name: {k: v.detach().clone() for k, v in net.state_dict().items()} for name, net in model.networks.items()}


def changed(before, after) -> set:
    return {name for name in before if any(not torch.equal(before[name][k], after[name][k]) for k in before[name])}


@dataclass
class Update:
    name: str
    changed: set
    #: the discriminators' gradients right after this update's backward
    d_grads: List[Optional[torch.Tensor]]


class RecordingOptimization(Optimization):
    """Does what the engine does (one Adam per optimizer group, zero_grad, backward, step) and records, per
    update, which networks' weights changed and what gradient the discriminators received from the loss."""

    def __init__(self, model: GANModel) -> None:
        self.model = model
        self.optimizers = {
            name: torch.optim.Adam([p for n in nets for p in model.networks[n].parameters()], lr=1e-2)
            for name, nets in model.optimizer_groups.items()
        }
        self.updates: List[Update] = []

    def step(self, name: str, loss: torch.Tensor) -> None:
        d_params = [p for n in DISCRIMINATORS for p in self.model.networks[n].parameters()]
        for p in d_params:  # whatever an earlier update left there must not hide what this loss does
            p.grad = None
        before = snapshot(self.model)
        self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        d_grads = [None if p.grad is None else p.grad.clone() for p in d_params]
        self.optimizers[name].step()
        self.updates.append(Update(name, changed(before, snapshot(self.model)), d_grads))


def test_the_generator_step_leaves_the_discriminators_untouched(folders):
    model = tiny_model(folders)
    opt = RecordingOptimization(model)
    for _ in range(2):  # the second step starts with the gradients of the first
        model.training_step(tiny_batch(), opt)
    assert [u.name for u in opt.updates] == ["G", "D", "G", "D"]
    for update in opt.updates:
        if update.name == "G":
            assert update.changed == {"G_A", "G_B"}
            assert all(g is None or not g.any() for g in update.d_grads)
        else:
            assert update.changed == {"D_A", "D_B"}
            assert any(g is not None and g.any() for g in update.d_grads)
    # frozen only for the generator step: trainable again afterwards
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("lambda_identity, calls", [(0.0, 4), (0.5, 6)])
def test_identity_weight_zero_skips_the_identity_passes(folders, lambda_identity, calls):
    model = tiny_model(folders, f"model.lambda_identity={lambda_identity}")
    batch = tiny_batch()
    with torch.no_grad():
        # what the identity terms must be: L1(G_A(B), B) * lambda_B * lambda_identity, and likewise for G_B
        expected = {
            "loss_G/idt_A": (model.netG_A(batch["B"]) - batch["B"]).abs().mean() * 10 * lambda_identity,
            "loss_G/idt_B": (model.netG_B(batch["A"]) - batch["A"]).abs().mean() * 10 * lambda_identity,
        }
    count = {"n": 0}

    def hook(module, inputs, output):
        count["n"] += 1

    handles = [model.netG_A.register_forward_hook(hook), model.netG_B.register_forward_hook(hook)]
    losses = model.training_step(batch, RecordingOptimization(model))
    for handle in handles:
        handle.remove()
    assert count["n"] == calls
    if lambda_identity:
        for key, value in expected.items():
            assert losses[key].item() == pytest.approx(value.item(), rel=1e-4)
    else:
        assert not any("idt" in key for key in losses)


def test_identity_with_different_channel_counts_is_rejected_naming_the_key(folders, tmp_path):
    with pytest.raises(ConfigError, match="model.lambda_identity"):
        train_config(tiny(folders.root, "data.input_nc=1", "trainer.max_steps=1"))
    cfg = train_config(tiny(folders.root, "model.lambda_identity=0"))
    model = build_model(cfg.model, {"input_nc": 1, "output_nc": 3, "image_size": SIZE})
    assert model.netG_A(torch.zeros(1, 1, SIZE, SIZE)).shape == (1, 3, SIZE, SIZE)


def test_a_short_run_lowers_the_cycle_loss(run):
    acc = read_events(run.dir / "tb")
    for tag in ("train/loss_G/cycle_A", "train/loss_G/cycle_B"):
        values = scalar_values(acc, tag)
        assert len(values) == STEPS
        assert np.mean(values[-10:]) < 0.85 * np.mean(values[:5]), (tag, values[:5], values[-10:])


def test_tensorboard_has_every_loss_the_learning_rates_and_the_grid(run):
    acc = read_events(run.dir / "tb")
    losses = {f"train/loss_G/{k}" for k in ("gan_A", "gan_B", "cycle_A", "cycle_B", "idt_A", "idt_B")}
    assert losses | {"train/loss_D/A", "train/loss_D/B", "train/lr/G", "train/lr/D"} <= set(acc.Tags()["scalars"])
    # rows real_A | fake_B | rec_A | real_B | fake_A | rec_B, 4 test images each, 16 px tiles with 2 px padding
    grid = acc.Images("train/visuals")[-1]
    assert (grid.height, grid.width) == (6 * 18 + 2, 4 * 18 + 2)


def test_pools_are_saved_in_checkpoints_and_restored_on_resume(run, tmp_path):
    saved = Checkpoint.read(run.dir).extra
    live = run.trainer.model
    for name in ("fake_A_pool", "fake_B_pool"):
        images = saved[name]["images"]
        assert saved[name]["pool_size"] == 50 and len(images) == 50  # 160 fakes went through each pool
        assert all(image.shape == (3, SIZE, SIZE) for image in images)
        assert all(torch.equal(a, b) for a, b in zip(images, getattr(live, name).images))
    resumed = train(tmp_path / "resumed", [*run.overrides, f"resume={run.dir / 'checkpoints' / 'latest.pt'}"])
    assert resumed.step == STEPS
    for name in ("fake_A_pool", "fake_B_pool"):
        restored = getattr(resumed.model, name).images
        assert len(restored) == 50
        assert all(torch.equal(a, b) for a, b in zip(saved[name]["images"], restored))


def test_translate_test_writes_both_directions_the_page_and_cycle_metrics(run, folders, tmp_path):
    out = translate_test(run.dir, tmp_path / "out")
    stems = {stem: ("real_A", "fake_B", "rec_A") for stem in folders.testA}
    stems.update({stem: ("real_B", "fake_A", "rec_B") for stem in folders.testB})
    assert_test_outputs(out, stems)
    metrics = read_metrics(out)
    assert set(metrics) == {"cycle_L1_A", "cycle_L1_B"}
    for side, images in (("A", folders.testA), ("B", folders.testB)):
        assert metrics[f"cycle_L1_{side}"]["num_images"] == len(images)
        errors = []
        for stem, image in images.items():
            assert png_error(out / "images" / f"{stem}_real_{side}.png", image) == 0
            rec = read_png(out / "images" / f"{stem}_rec_{side}.png").astype(float)
            errors.append(np.abs(rec - image).mean() / 127.5)
        assert metrics[f"cycle_L1_{side}"]["mean"] == pytest.approx(np.mean(errors), abs=0.01)


def one_way_outputs(out, visuals) -> Dict[str, List[str]]:
    """The stems of the images written for each of ``visuals``."""
    files = [p.name for p in (out / "images").iterdir()]
    return {v: sorted(f[: -len(f"_{v}.png")] for f in files if f.endswith(f"_{v}.png")) for v in visuals}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> SimpleNamespace:
    """A plain folder of 3 images, one in a subfolder (found recursively); ``images``: by stem."""
    root = tmp_path_factory.mktemp("photos")
    images = write_folder(root, 2, SIZE, seed=3, prefix="photo")
    images.update(write_folder(root / "more", 1, SIZE, seed=4, prefix="extra"))
    return SimpleNamespace(root=root, images=images)


def assert_made_by(out, stem: str, source: str, result: str, right: torch.nn.Module, wrong: torch.nn.Module) -> None:
    """``<stem>_<result>.png`` is ``right(<stem>_<source>.png)`` up to rounding, and not ``wrong``'s output."""
    x = as_input(read_png(out / "images" / f"{stem}_{source}.png"))
    with torch.no_grad():
        assert png_error(out / "images" / f"{stem}_{result}.png", as_png_levels(right(x))) <= 1
        assert png_error(out / "images" / f"{stem}_{result}.png", as_png_levels(wrong(x))) > 1


def test_one_way_cli_translates_a_folder_with_G_A(run, photos, tmp_path):
    proc = run_cli("translate-test", f"run={run.dir}", "data=single", f"data.root={photos.root}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = run.dir / "test_latest"
    found = one_way_outputs(out, ("real_A", "fake_B", "real_B", "fake_A"))
    assert found["real_A"] == found["fake_B"] == sorted(photos.images)
    assert found["real_B"] == found["fake_A"] == []
    model = load_run_model(run.dir)
    for stem in photos.images:
        assert_made_by(out, stem, "real_A", "fake_B", model.netG_A, model.netG_B)


def test_one_way_btoa_uses_G_B(run, photos, tmp_path):
    out = translate_test(run.dir, tmp_path / "out", "data=single", f"data.root={photos.root}", "data.direction=BtoA")
    found = one_way_outputs(out, ("real_B", "fake_A", "real_A", "fake_B"))
    assert found["real_B"] == found["fake_A"] == sorted(photos.images)
    assert found["real_A"] == found["fake_B"] == []
    model = load_run_model(run.dir)
    for stem in photos.images:
        assert_made_by(out, stem, "real_B", "fake_A", model.netG_B, model.netG_A)


def test_an_image_too_small_for_the_discriminator_is_rejected_before_training(folders, tmp_path):
    # The default 70x70 PatchGAN with instance norm cannot take 16 px images: its last normalised layer
    # would be 1x1. That must be a one-line ConfigError before training, not a crash in the first step.
    overrides = [o for o in tiny(folders.root, "trainer.max_steps=1") if not o.startswith("model.discriminator.")]
    with pytest.raises(ConfigError, match="data.crop_size"):
        train_config(overrides)
