"""The training engine through its Python API, ``Trainer(validate_train(cfg), run_dir).fit()``, on a tiny cGAN:
what a run writes, resume, mixed precision and memory layout, and the errors a user can cause."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

import helpers
from helpers import GRID_SIDE, IMAGE_SIZE, TINY, assert_same_tensors, load_ckpt, read_events
from translate.config import Weights
from translate.errors import TranslateError
from translate.models.checkpoint import Checkpoint, trained_model
from translate.training.engine import Trainer

LR = 2e-4


@pytest.fixture(scope="module")
def train():
    """``train(run_dir, *overrides)``: fit a tiny cGAN with deterministic kernels and no logger (unless
    overridden), return the Trainer as fit left it."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()

    def _train(run_dir: Path, *overrides: str) -> Trainer:
        return helpers.train(run_dir, *TINY, "logger=none", "device.deterministic=true", *overrides)

    yield _train
    # device.deterministic switches deterministic algorithms on process-wide; other test files run as alone
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


@pytest.fixture(scope="module")
def run_dir(train, tmp_path_factory) -> Path:
    """2 epochs of 2 steps (8 digits, batch 4), the linear schedule (1 constant epoch, 1 of decay),
    a checkpoint every epoch, everything logged to TensorBoard every step."""
    path = tmp_path_factory.mktemp("run")
    train(
        path,
        "logger=tensorboard",
        "data.max_dataset_size=8",
        "trainer.batch_size=4",
        "trainer.max_steps=null",
        "trainer.n_epochs=1",
        "trainer.n_epochs_decay=1",
        "trainer.save_every_n_epochs=1",
    )
    return path


@pytest.fixture(scope="module")
def half_run(train, tmp_path_factory) -> Path:
    """3 steps of a run whose epochs have 4 (16 digits, batch 4): it stops in the middle of an epoch."""
    path = tmp_path_factory.mktemp("half")
    train(path, "trainer.max_steps=3")
    return path


@pytest.fixture
def resumable(half_run, tmp_path) -> Path:
    """A private copy of ``half_run`` to resume (resuming writes into the run directory)."""
    return Path(shutil.copytree(half_run, tmp_path / "run"))


# --- what a run writes ---------------------------------------------------------------------------------


def test_run_stops_after_all_epochs_with_a_checkpoint_each_epoch(run_dir):
    ckpts = run_dir / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("*.pt")) == ["epoch_1.pt", "epoch_2.pt", "latest.pt"]
    latest = load_ckpt(ckpts / "latest.pt")
    assert (latest["step"], latest["epoch"]) == (4, 2)
    assert load_ckpt(ckpts / "epoch_1.pt")["step"] == 2


def test_checkpoint_loads_with_weights_only_and_holds_training_state(run_dir):
    state = load_ckpt(run_dir / "checkpoints" / "latest.pt")
    assert set(state["networks"]) == {"G", "D"}
    assert set(state["optimizers"]) == {"G", "D"} and set(state["schedulers"]) == {"G", "D"}
    assert all(isinstance(v, torch.Tensor) for v in state["networks"]["G"].values())
    assert state["config"]["model"]["generator"]["ngf"] == 8
    assert "torch" in state["rng"]


def test_linear_schedule_steps_once_per_epoch(run_dir):
    events = read_events(run_dir / "tb")
    for name in ("G", "D"):
        scalars = events.Scalars(f"train/lr/{name}")
        # epoch 1 at the initial lr, epoch 2 at 1 - 1 / (n_epochs_decay + 1) of it
        assert [e.step for e in scalars] == [1, 2, 3, 4]
        assert [e.value for e in scalars] == pytest.approx([LR, LR, LR / 2, LR / 2])
    state = load_ckpt(run_dir / "checkpoints" / "latest.pt")
    assert state["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(0.0)


def test_tensorboard_has_losses_diagnostics_and_the_class_grid(run_dir):
    events = read_events(run_dir / "tb")
    tags = events.Tags()
    expected = {
        "train/loss_D/real",
        "train/loss_D/fake",
        "train/loss_G/gan",
        "train/D_real",
        "train/D_fake",
        "train/grad_norm/G",
        "train/grad_norm/D",
        "train/lr/G",
        "train/lr/D",
    }
    assert expected <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("train/loss_G/gan")] == [1, 2, 3, 4]
    for tag in ("train/D_real", "train/D_fake"):
        # vanilla GAN: D's mean output as a probability, D(x) and D(G(z))
        assert all(0.0 < e.value < 1.0 for e in events.Scalars(tag))
    for tag in ("train/grad_norm/G", "train/grad_norm/D"):
        assert all(e.value > 0.0 and torch.isfinite(torch.tensor(e.value)) for e in events.Scalars(tag))
    assert "train/visuals" in tags["images"]
    image = events.Images("train/visuals")[-1]
    assert (image.width, image.height) == (GRID_SIDE, GRID_SIDE)


def test_samples_are_the_class_grid_each_epoch(run_dir):
    pngs = sorted(p.name for p in (run_dir / "samples").glob("*.png"))
    assert {"epoch_0001.png", "epoch_0002.png"} <= set(pngs)
    for name in pngs:
        with Image.open(run_dir / "samples" / name) as image:
            assert image.size == (GRID_SIDE, GRID_SIDE)


def test_changing_the_class_changes_the_generated_digit(run_dir):
    model = trained_model(Checkpoint.read(run_dir), Weights.raw)
    z = torch.randn(1, model.cfg.z_dim, generator=torch.Generator().manual_seed(1)).expand(10, -1)
    with torch.no_grad():
        images = model.generate(z, torch.arange(10))
        again = model.generate(z, torch.arange(10))
    assert images.shape == (10, 1, IMAGE_SIZE, IMAGE_SIZE)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert torch.equal(images, again)
    for a in range(10):
        for b in range(a + 1, 10):
            assert not torch.allclose(images[a], images[b]), (a, b)


# --- resume --------------------------------------------------------------------------------------------


def _optimizer_tensors(optimizers: dict) -> dict:
    """Every Adam state tensor (step, exp_avg, exp_avg_sq) of every parameter, by a flat name."""
    return {
        f"{name}.{index}.{key}": value
        for name, opt in optimizers.items()
        for index, param_state in opt["state"].items()
        for key, value in param_state.items()
    }


@pytest.mark.parametrize("target", ["run directory", "checkpoint file"])
def test_resume_restores_optimiser_state_and_step(resumable, train, target):
    latest = resumable / "checkpoints" / "latest.pt"
    saved = load_ckpt(latest)
    assert saved["step"] == 3
    # max_steps equal to the saved step: the run resumes and stops at once, showing the restored state
    trainer = train(resumable, "trainer.max_steps=3", f"resume={resumable if target == 'run directory' else latest}")
    assert trainer.step == 3
    restored = {name: opt.state_dict() for name, opt in trainer.optimizers.items()}
    assert_same_tensors(_optimizer_tensors(restored), _optimizer_tensors(saved["optimizers"]))


def test_resume_continues_the_step_counter(resumable, train):
    train(resumable, "trainer.max_steps=5", f"resume={resumable}")
    state = load_ckpt(resumable / "checkpoints" / "latest.pt")
    assert state["step"] == 5
    # Adam counts its own updates: 5, not 2, if its state came back
    assert {float(s["step"]) for opt in state["optimizers"].values() for s in opt["state"].values()} == {5.0}


def test_resume_mid_epoch_gives_the_same_weights_as_an_uninterrupted_run(resumable, train, tmp_path):
    # Exact, not within a tolerance: both runs compute on one machine and one numeric path (same kernels, same
    # threads, same order of sums), so any difference is state the resume lost, whatever the CPU kind.
    straight = tmp_path / "straight"
    train(straight, "trainer.max_steps=6")
    train(resumable, "trainer.max_steps=6", f"resume={resumable}")
    a = load_ckpt(straight / "checkpoints" / "latest.pt")
    b = load_ckpt(resumable / "checkpoints" / "latest.pt")
    assert (a["step"], b["step"]) == (6, 6)
    for name in ("G", "D"):
        assert_same_tensors(a["networks"][name], b["networks"][name])
    assert_same_tensors(_optimizer_tensors(a["optimizers"]), _optimizer_tensors(b["optimizers"]))


def test_resume_with_another_architecture_names_the_network(resumable, train):
    with pytest.raises(TranslateError, match=r"network G .*resume with the config"):
        train(resumable, "model.generator.ngf=16", f"resume={resumable}")


def test_resume_from_a_missing_checkpoint_names_the_path(train, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(TranslateError, match="nowhere"):
        train(tmp_path / "run", f"resume={missing}")


# --- mixed precision and memory layout ----------------------------------------------------------------


def _cpu_autocast_supports(dtype: torch.dtype) -> bool:
    try:
        with torch.autocast("cpu", dtype=dtype):
            out = torch.nn.functional.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3))
        return out.dtype == dtype
    except (RuntimeError, AssertionError):
        return False


def _assert_trained_three_finite_steps(state: dict) -> None:
    assert state["step"] == 3
    for name in ("G", "D"):
        assert all(torch.isfinite(v.float()).all() for v in state["networks"][name].values()), name


@pytest.mark.parametrize("amp, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_amp_trains_in_reduced_precision(amp, dtype, train, half_run, tmp_path):
    if not _cpu_autocast_supports(dtype):
        pytest.skip(f"this torch has no CPU autocast for {dtype}")
    train(tmp_path, "trainer.max_steps=3", f"device.amp={amp}")
    state = load_ckpt(tmp_path / "checkpoints" / "latest.pt")
    _assert_trained_three_finite_steps(state)
    fp32 = load_ckpt(half_run / "checkpoints" / "latest.pt")
    # the same seed in fp32 gives other weights: autocast really ran the convolutions in low precision
    assert not torch.equal(state["networks"]["G"]["model.0.weight"], fp32["networks"]["G"]["model.0.weight"])
    # fp16 activations need loss scaling, bf16 (fp32's range) does not
    assert ("scale" in state["scaler"]) == (amp == "fp16")


def test_channels_last_trains_with_nhwc_weights_and_the_same_results(train, half_run, tmp_path):
    trainer = train(tmp_path, "trainer.max_steps=3", "device.channels_last=true")
    convs = [m for m in trainer.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    state = load_ckpt(tmp_path / "checkpoints" / "latest.pt")
    _assert_trained_three_finite_steps(state)
    fp32 = load_ckpt(half_run / "checkpoints" / "latest.pt")
    for name in ("G", "D"):
        for key, value in state["networks"][name].items():
            # Adam's first steps move each weight by about lr, whatever the gradient's size: a layout
            # change may flip the sign of a near-zero gradient, never more
            assert torch.allclose(value.float(), fp32["networks"][name][key].float(), atol=5 * LR), key


# --- user errors ---------------------------------------------------------------------------------------


def test_batch_larger_than_the_dataset_is_a_clear_error(train, tmp_path):
    with pytest.raises(TranslateError, match=r"trainer\.batch_size=4 .*batch_size<=2"):
        train(tmp_path, "data.max_dataset_size=2")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_accelerator_is_a_clear_error(train, tmp_path):
    with pytest.raises(TranslateError, match="device=cuda .*device=cpu"):
        train(tmp_path, "device=cuda")
