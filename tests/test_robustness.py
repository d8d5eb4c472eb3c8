"""Training that survives: exact resume, preemption and kills, non-finite losses, broken images, bad
configs and bad checkpoints, each tried as a user would meet it.

Runs go through the Python API (``Trainer``), the ``translate-train`` entry point called in this
process (the real argument handling and error messages, without a Python start-up per case), or the
installed console script as a real process where signals and DataLoader workers are the point."""

from __future__ import annotations

import itertools
import logging
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _robust_helpers import (
    CGAN,
    COMMON,
    PIX2PIX,
    SCHEDULE,
    aligned_folder,
    assert_one_line_error,
    fit,
    image_data,
    model_overrides,
    noise,
    run_cli_inprocess,
    save_png,
    start_cli,
    unaligned_folder,
)
from helpers import assert_same_tensors, load_ckpt, run_cli, train_config
from translate.cli import train as train_cli
from translate.data.aligned import AlignedDataset
from translate.data.single import SingleDataset
from translate.data.unaligned import UnalignedDataset
from translate.errors import BadImageError, CheckpointError, ImageTooSmallError, TrainingError, TranslateError
from translate.models.cgan import CGAN as CGANModel
from translate.training.engine import Trainer

#: (model, step to stop at): every run has 3 steps an epoch, so stopping at 2 resumes in the middle
#: of epoch 1 and crosses into epoch 2; stopping at 3 resumes exactly at the boundary.
RESUME_CASES = [("cgan", 2), ("cgan", 3), ("pix2pix", 2), ("cyclegan", 2)]
TOTAL_STEPS = 5
#: A cGAN run that would go on for a long time: 3 steps an epoch, a checkpoint each.
LONG_CGAN = [*COMMON, *CGAN, "trainer.n_epochs=1000", "trainer.n_epochs_decay=0", "trainer.save_every_n_epochs=1"]
CHECKPOINT_NAME = re.compile(r"(latest|epoch_\d+)\.pt")
CGAN_TRAINING_STEP = CGANModel.training_step


@pytest.fixture
def deterministic():
    """``device.deterministic=true`` turns deterministic algorithms on process-wide: undo that after."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield ["device.deterministic=true"]
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


@pytest.fixture(scope="module")
def straight_runs(tmp_path_factory):
    """Per model, the latest checkpoint of an uninterrupted run of TOTAL_STEPS (made on first use)."""
    made = {}

    def get(model: str, overrides: list[str]) -> dict:
        if model not in made:
            run = tmp_path_factory.mktemp(f"straight_{model}")
            fit(run, *overrides, f"trainer.max_steps={TOTAL_STEPS}")
            made[model] = load_ckpt(run / "checkpoints" / "latest.pt")
        return made[model]

    return get


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory) -> Path:
    """A finished 2-step pix2pix run (ngf 4) on 32 px pairs, made by ``translate-train`` (so it can
    be resumed by its directory alone), to copy before resuming."""
    base = tmp_path_factory.mktemp("pix2pix_run")
    run = base / "run"
    data = aligned_folder(base / "data")
    args = [*COMMON, *SCHEDULE, *PIX2PIX, f"data.root={data}", "trainer.max_steps=2", f"hydra.run.dir={run}"]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(base)
        patch.setattr(sys, "argv", ["translate-train", *args])
        train_cli.main()
    return run


@pytest.fixture
def cli(monkeypatch, capsys, tmp_path):
    """``cli(*args) -> (exit code, stderr)``: ``translate-train`` run in this process from ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    return lambda *args: run_cli_inprocess(monkeypatch, capsys, *args)


def wait_for(path: Path, proc: subprocess.Popen, output: Path, timeout: float = 90) -> None:
    """Poll until ``path`` exists; fail with the process's output if it ends or takes too long first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"{path} never appeared (exit {proc.returncode}):\n{output.read_text()[-3000:]}")
        time.sleep(0.05)


def poison(monkeypatch, steps: set[int]) -> None:
    """Make the cGAN see NaN images at the given steps (1-based, counted from this call on), as a
    corrupt batch or an overflow would: its discriminator loss becomes NaN."""
    calls = itertools.count(1)

    def training_step(self, batch, opt):
        if next(calls) in steps:
            batch = {**batch, "image": batch["image"] * float("nan")}
        return CGAN_TRAINING_STEP(self, batch, opt)

    monkeypatch.setattr(CGANModel, "training_step", training_step)


def damage(path: Path, how: str) -> Path:
    """Overwrite the image at ``path`` as a failed download or a bad disk leaves files."""
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": bytes(range(256)) * 4}[how])
    return path


# --- exact resume ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model,stop", RESUME_CASES)
def test_stop_and_resume_gives_bit_identical_training_state(model, stop, straight_runs, deterministic, tmp_path, caplog):
    # Exact, not within a tolerance: both runs compute on one machine and one numeric path (same kernels, same
    # threads, same order of sums), so any difference is state the resume lost, whatever the CPU kind.
    caplog.set_level(logging.INFO, logger="translate")
    overrides = [*model_overrides(model, tmp_path / "data"), *deterministic]
    expected = straight_runs(model, overrides)
    run = tmp_path / "run"
    fit(run, *overrides, f"trainer.max_steps={stop}")
    assert load_ckpt(run / "checkpoints" / "latest.pt")["step"] == stop
    fit(run, *overrides, f"trainer.max_steps={TOTAL_STEPS}", f"resume={run}")
    # it went on from the checkpoint, rather than retraining from scratch into the same numbers
    assert f"resumed from {run} at step {stop}" in caplog.text
    assert f"{TOTAL_STEPS - stop} steps in" in caplog.text
    got = load_ckpt(run / "checkpoints" / "latest.pt")
    assert (got["step"], got["epoch"], got["samples_in_epoch"]) == (expected["step"], expected["epoch"], expected["samples_in_epoch"])
    assert_same_tensors(got["networks"], expected["networks"])
    # Adam's moments, the schedule and (CycleGAN) the image pools carried over too
    assert_same_tensors(got["optimizers"], expected["optimizers"])
    assert got["schedulers"] == expected["schedulers"]
    assert_same_tensors(got["extra"], expected["extra"])


# --- preemption and kills --------------------------------------------------------------------------


def test_sigterm_saves_a_checkpoint_says_how_to_resume_and_resume_finishes(tmp_path, cli):
    run = tmp_path / "run"
    proc, output = start_cli(tmp_path, *LONG_CGAN, "trainer.max_steps=100000", f"hydra.run.dir={run}")
    wait_for(run / "checkpoints" / "epoch_1.pt", proc, output)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, output.read_text()[-3000:]
    text = output.read_text()
    stopped = re.search(r"stopped by signal 15 at step (\d+); checkpoint saved\. Continue with: translate-train resume=(\S+)", text)
    assert stopped, text[-3000:]
    assert Path(stopped[2]) == run
    step = int(stopped[1])
    latest = load_ckpt(run / "checkpoints" / "latest.pt")
    assert latest["step"] == step >= 3
    epoch, batch = divmod(step, 3)
    assert (latest["epoch"], latest["samples_in_epoch"]) == (epoch, batch * 4)  # CGAN: 12 digits, batch 4

    # the command the message gives (with a nearer end, so the test stays short)
    code, err = cli(f"resume={run}", f"trainer.max_steps={step + 4}")
    assert code == 0, err[-3000:]
    assert f"resumed from {run} at step {step}" in (run / "train.log").read_text()
    assert load_ckpt(run / "checkpoints" / "latest.pt")["step"] == step + 4


def test_sigkill_at_any_moment_leaves_loadable_checkpoints_and_resume_works(tmp_path, cli):
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    # one step an epoch: checkpoints are written (and pruned) all the time, so the kill lands mid-write often
    args = [*LONG_CGAN, "data.max_dataset_size=4", "trainer.keep_last_n=2", "trainer.max_steps=100000"]
    proc, output = start_cli(tmp_path, *args, f"hydra.run.dir={run}")
    wait_for(ckpts / "latest.pt", proc, output)
    delay = random.uniform(0.0, 1.5)
    time.sleep(delay)
    proc.kill()
    proc.wait(timeout=30)

    names = sorted(p.name for p in ckpts.iterdir())
    visible = [n for n in names if CHECKPOINT_NAME.fullmatch(n)]
    # an interrupted write leaves only a hidden temporary file that nothing takes for a checkpoint
    assert all(n.startswith(".") and n.endswith(".tmp") for n in names if n not in visible), (delay, names)
    assert "latest.pt" in visible, (delay, names)
    for name in visible:
        assert load_ckpt(ckpts / name)["format"] == "translate-checkpoint", (delay, name)
    step = load_ckpt(ckpts / "latest.pt")["step"]

    code, err = cli(f"resume={run}", f"trainer.max_steps={step + 2}")
    assert code == 0, (delay, err[-3000:])
    assert load_ckpt(ckpts / "latest.pt")["step"] == step + 2


def test_keep_last_n_keeps_the_newest_epoch_files_and_latest(tmp_path):
    run = tmp_path / "run"
    fit(run, *CGAN, "data.max_dataset_size=4", "trainer.keep_last_n=2")  # 5 epochs of 1 step
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_4.pt", "epoch_5.pt", "latest.pt"]
    assert load_ckpt(run / "checkpoints" / "latest.pt")["step"] == 5


# --- non-finite losses -----------------------------------------------------------------------------


def test_nonfinite_loss_stops_naming_step_and_terms_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    fit(run, *CGAN, "trainer.max_steps=3")
    latest = run / "checkpoints" / "latest.pt"
    before = latest.read_bytes()
    poison(monkeypatch, {2})  # the 2nd step after resuming: step 5
    with pytest.raises(TrainingError) as err:
        fit(run, *CGAN, "trainer.max_steps=6", f"resume={run}")
    message = str(err.value)
    assert "\n" not in message and isinstance(err.value, TranslateError)
    assert "non-finite loss at step 5" in message and "loss_D/real=nan" in message and "loss_G/gan=" in message
    assert f"the last good checkpoint is {latest}" in message and "trainer.skip_nonfinite" in message
    assert latest.read_bytes() == before


def test_skip_nonfinite_skips_up_to_n_steps_then_stops(tmp_path, monkeypatch, caplog):
    poison(monkeypatch, {2})
    trainer = fit(tmp_path / "skip", *CGAN, "trainer.max_steps=4", "trainer.skip_nonfinite=1")
    assert trainer.step == 4
    assert "step 2: non-finite loss (loss_D/real=nan" in caplog.text and "1 of trainer.skip_nonfinite=1" in caplog.text
    assert all(torch.isfinite(p).all() for net in trainer.model.networks.values() for p in net.parameters())

    poison(monkeypatch, {2, 3})
    with pytest.raises(TrainingError, match="non-finite loss at step 3"):
        fit(tmp_path / "stop", *CGAN, "trainer.max_steps=4", "trainer.skip_nonfinite=1")


def test_the_skip_budget_spans_a_resume(tmp_path, monkeypatch):
    poison(monkeypatch, {2})
    fit(tmp_path / "run", *CGAN, "trainer.max_steps=3", "trainer.skip_nonfinite=1")
    assert load_ckpt(tmp_path / "run" / "checkpoints" / "latest.pt")["skipped_nonfinite"] == 1
    poison(monkeypatch, {1})  # the first step after the resume: step 4
    with pytest.raises(TrainingError, match="non-finite loss at step 4"):
        fit(tmp_path / "run", *CGAN, "trainer.max_steps=5", "trainer.skip_nonfinite=1", f"resume={tmp_path / 'run'}")


def test_a_skipped_step_leaves_no_nonfinite_state_behind(tmp_path, monkeypatch):
    """The batch-norm statistics a non-finite forward pass updated are part of the skipped step."""
    poison(monkeypatch, {2})
    fit(tmp_path / "run", *CGAN, "trainer.max_steps=3", "trainer.skip_nonfinite=1")
    networks = load_ckpt(tmp_path / "run" / "checkpoints" / "latest.pt")["networks"]
    bad = [
        f"{net}.{key}"
        for net, state in networks.items()
        for key, t in state.items()
        if t.is_floating_point() and not torch.isfinite(t).all()
    ]
    assert not bad, f"non-finite after a skipped step: {bad}"


def test_diverging_run_is_a_one_line_cli_error_also_kept_in_its_log(cli, tmp_path):
    code, err = cli(*COMMON, *CGAN, "model.optim.lr=1e30", "trainer.max_steps=4", "hydra.run.dir=run")
    line = assert_one_line_error(code, err, "non-finite loss at step", "loss_G/gan=nan", "no checkpoint was written yet")
    # training had started: the run stays, with the error in its log
    assert line.removeprefix("translate-train: error: ") in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.parametrize("run_dir", [[], ["hydra.run.dir=run"]], ids=["default", "hydra.run.dir"])
def test_a_failed_start_leaves_no_run_directory(cli, tmp_path, run_dir):
    code, err = cli(*COMMON, *CGAN, "trainer.batch_size=13", *run_dir)
    assert_one_line_error(code, err, "trainer.batch_size=13 is larger than the dataset")
    # nothing to pick as "the newest run": not the run directory, nor the folders made for it
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- bad data --------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage"])
def test_unreadable_image_stops_training_naming_the_file(tmp_path, how):
    data = aligned_folder(tmp_path / "data", n=3)
    bad = damage(data / "train" / "1.png", how)
    with pytest.raises(BadImageError) as err:
        fit(tmp_path / "run", *PIX2PIX, f"data.root={data}", "trainer.max_steps=3")
    assert str(err.value).startswith(f"{bad}: cannot read image") and "\n" not in str(err.value)


def test_unreadable_image_read_by_a_dataloader_worker_is_one_cli_line(tmp_path):
    data = aligned_folder(tmp_path / "data", n=4, splits=("train", "test"))
    # the image grid reads the test split in the main process: only a worker meets the bad file
    bad = damage(data / "train" / "2.png", "truncated")
    args = [*COMMON, *PIX2PIX, f"data.root={data}", "data.num_workers=2", "trainer.max_steps=8", "hydra.run.dir=run"]
    proc = run_cli("translate-train", *args, cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, f"{bad}: cannot read image (image file is truncated)")


def test_skip_bad_scans_first_drops_bad_pairs_and_logs_each(tmp_path, caplog):
    data = aligned_folder(tmp_path / "data", n=7)
    bad = [damage(data / "train" / f"{i}.png", how) for i, how in ((1, "empty"), (3, "truncated"), (5, "garbage"))]
    trainer = fit(tmp_path / "run", *PIX2PIX, f"data.root={data}", "data.skip_bad=true", "trainer.max_steps=4")
    assert trainer.step == 4
    assert [p.name for p, _ in trainer.dataset.pairs] == ["0.png", "2.png", "4.png", "6.png"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for path in bad:
        assert sum(str(path) in w for w in warnings) == 1, warnings
    assert f"data.skip_bad: skipped 3 of 7 images in {data / 'train'}" in warnings


def test_skip_bad_drops_a_separate_pair_when_either_side_is_bad(tmp_path):
    rng = np.random.default_rng(0)
    for side in ("A", "B"):
        for i in range(3):
            save_png(tmp_path / side / "train" / f"{i}.png", noise(rng, 8, 8))
    damage(tmp_path / "B" / "train" / "1.png", "truncated")
    cfg = train_config(*COMMON, *PIX2PIX, f"data.root={tmp_path}", "data.skip_bad=true", "data.preprocess=none").data
    assert [a.name for a, _ in AlignedDataset(cfg, "train", train=True).pairs] == ["0.png", "2.png"]


def test_skip_bad_in_unaligned_and_single_folders_and_nothing_left_names_the_folder(tmp_path):
    root = unaligned_folder(tmp_path / "data", n=3)
    damage(root / "trainA" / "0.png", "empty")
    cfg = train_config(*COMMON, "model=cyclegan", "data=unaligned", f"data.root={root}", "data.skip_bad=true").data
    ds = UnalignedDataset(cfg, "train", train=True)
    assert ([p.name for p in ds.a_paths], len(ds.b_paths)) == (["1.png", "2.png"], 2)
    assert [p.name for p in SingleDataset(cfg, "trainA", train=False).paths] == ["1.png", "2.png"]
    for path in (root / "trainB").iterdir():
        damage(path, "garbage")
    with pytest.raises(BadImageError, match=rf"^{root / 'trainB'}: none of its 2 images can be used"):
        UnalignedDataset(cfg, "train", train=True)


def test_mixed_image_modes_load_with_the_configured_channels(tmp_path):
    """Grayscale, RGBA, palette, CMYK, 1-bit and 16-bit files mixed in one folder: every item has the
    channels the config asks for, and data.skip_bad does not count any of them as bad."""
    Image.new("L", (8, 8), 10).save(tmp_path / "gray.png")
    Image.new("RGBA", (8, 8), (1, 2, 3, 0)).save(tmp_path / "rgba.png")
    Image.new("P", (8, 8), 1).save(tmp_path / "palette.png")
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("1", (8, 8), 1).save(tmp_path / "bilevel.png")
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(tmp_path / "sixteen.png")
    for channels in (1, 3):
        ds = SingleDataset(image_data(tmp_path, input_nc=channels, skip_bad=True), "test", train=False)
        assert len(ds) == 6
        assert all(ds[i]["A"].shape == (channels, 8, 8) for i in range(6))


def test_floating_point_image_is_refused_by_name_and_skipped_with_skip_bad(tmp_path):
    save_png(tmp_path / "ok.png", noise(np.random.default_rng(0), 8, 8))
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "depth.tiff")
    ds = SingleDataset(image_data(tmp_path), "test", train=False)
    with pytest.raises(BadImageError, match=r"depth\.tiff: a floating-point image \(mode F\)"):
        [ds[i] for i in range(len(ds))]
    assert len(SingleDataset(image_data(tmp_path, skip_bad=True), "test", train=False)) == 1


def test_image_smaller_than_the_crop_is_named_or_skipped(tmp_path, cli):
    rng = np.random.default_rng(0)
    for i, width in enumerate((64, 48, 64)):  # pair 1 is 24 px wide a side, smaller than the crop
        save_png(tmp_path / "data" / "train" / f"{i}.png", noise(rng, width, 32))
    args = [*COMMON, *PIX2PIX, f"data.root={tmp_path / 'data'}", "data.preprocess=crop", "trainer.max_steps=2"]
    code, err = cli(*args, "hydra.run.dir=run")
    assert_one_line_error(code, err, "train/1.png: the image is 24x32, smaller than data.crop_size=32", "data.crop_size<=24")
    assert "after data.preprocess" not in err  # nothing was resized: no sentence comparing 24x32 with itself
    assert not (tmp_path / "run").exists()
    ds = AlignedDataset(train_config(*args, "data.skip_bad=true").data, "train", train=True)
    assert [a.name for a, _ in ds.pairs] == ["0.png", "2.png"]
    with pytest.raises(ImageTooSmallError):
        AlignedDataset(train_config(*args).data, "train", train=True)[1]


# --- bad configs: one line, naming the key, before training ----------------------------------------


def test_crop_larger_than_every_image_names_a_training_file(tmp_path, cli):
    # the val images are read first for the image grid, but the training files are what the crop is for
    data = aligned_folder(tmp_path / "data", side=24, splits=("train", "val"))
    code, err = cli(*COMMON, *PIX2PIX, f"data.root={data}", "data.preprocess=crop", "hydra.run.dir=run")
    assert_one_line_error(code, err, f"{data / 'train'}/", "the image is 24x24, smaller than data.crop_size=32", "data.crop_size<=24")


def test_batch_larger_than_the_dataset(cli):
    code, err = cli(*COMMON, *CGAN, "trainer.batch_size=13", "hydra.run.dir=run")
    assert_one_line_error(
        code, err, "trainer.batch_size=13 is larger than the dataset (12 images in the bundled mnist_subset)", "trainer.batch_size<=12"
    )


def test_unknown_dataset_name_lists_the_choices(cli, tmp_path):
    code, err = cli(*COMMON, "data=horse2zebraa", "hydra.run.dir=run")
    assert code != 0 and "Traceback" not in err
    assert_one_line_error(code, err, "data=horse2zebraa is not an option of data; did you mean horse2zebra?", "facades")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_identity_loss_needs_equal_channel_counts(cli, tmp_path):
    root = unaligned_folder(tmp_path / "data")
    data = ["data=unaligned", f"data.root={root}", "data.load_size=16", "data.crop_size=16", "data.input_nc=1"]
    code, err = cli(*COMMON, "model=cyclegan", *data, "hydra.run.dir=run")
    assert_one_line_error(code, err, "model.lambda_identity=0.5 needs data.input_nc == data.output_nc", "model.lambda_identity=0")


@pytest.mark.parametrize(
    "sizes,needles",
    [
        (["data.load_size=48", "data.crop_size=48"], ["data.crop_size 48 does not fit unet (num_downs=5)", "multiples of 32"]),
        # no crop: the width is load_size, which the U-Net cannot halve 5 times
        (["data.preprocess=scale_width", "data.load_size=48"], ["48", "multiples of 32"]),
    ],
    ids=["crop", "scale_width"],
)
def test_image_size_the_unet_cannot_take(cli, tmp_path, sizes, needles):
    data = aligned_folder(tmp_path / "data")
    code, err = cli(*COMMON, *PIX2PIX, f"data.root={data}", *sizes, "trainer.max_steps=2", "hydra.run.dir=run")
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("with_data", [False, True], ids=["model", "model+data"])
def test_resume_from_another_model_is_refused_and_the_run_still_resumes(cli, pix2pix_run, tmp_path, with_data):
    run = Path(shutil.copytree(pix2pix_run, tmp_path / "run"))
    data = ["data=unaligned", f"data.root={unaligned_folder(tmp_path / 'unaligned')}"] if with_data else []
    code, err = cli(f"resume={run}", "model=cyclegan", *data)
    assert_one_line_error(code, err, f"resume={run} is a model=pix2pix run", "drop model=cyclegan")
    # the failed attempt must not have changed how the run resumes
    code, err = cli(f"resume={run}", "trainer.max_steps=3")
    assert code == 0, err[-3000:]
    assert load_ckpt(run / "checkpoints" / "latest.pt")["step"] == 3


def test_resume_of_a_cgan_run_as_cyclegan_python_api(tmp_path):
    run = tmp_path / "run"
    fit(run, *CGAN, "trainer.max_steps=1")
    root = unaligned_folder(tmp_path / "data")
    cfg = train_config(*COMMON, "model=cyclegan", "data=unaligned", f"data.root={root}", f"resume={run}")
    with pytest.raises(CheckpointError, match=r"holds a 'cgan' model but this run is model=cyclegan; resume it with model=cgan"):
        Trainer(cfg, tmp_path / "new").fit()


# --- bad checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", ["nothing", "5000 bytes", "half", "all but the last byte"])
def test_truncated_checkpoint_is_a_one_line_error(cli, pix2pix_run, tmp_path, keep):
    whole = (pix2pix_run / "checkpoints" / "latest.pt").read_bytes()
    size = {"nothing": 0, "5000 bytes": 5000, "half": len(whole) // 2, "all but the last byte": len(whole) - 1}[keep]
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(whole[:size])
    code, err = cli(*COMMON, *CGAN, f"resume={bad}", "hydra.run.dir=run")
    assert_one_line_error(code, err, f"{bad} is not a readable checkpoint")


def test_random_bytes_are_not_a_checkpoint(cli, tmp_path):
    bad = tmp_path / "random.pt"
    bad.write_bytes(random.Random(0).randbytes(4096))
    code, err = cli(*COMMON, *CGAN, f"resume={bad}", "hydra.run.dir=run")
    assert_one_line_error(code, err, f"{bad} is not a readable checkpoint")


def test_foreign_weights_file_is_not_taken_for_a_checkpoint(cli, tmp_path):
    foreign = tmp_path / "latest_net_G.pth"
    torch.save({"model.1.weight": torch.zeros(4, 3, 7, 7)}, foreign)
    code, err = cli(*COMMON, *CGAN, f"resume={foreign}", "hydra.run.dir=run")
    assert_one_line_error(code, err, f"{foreign} is not a translate checkpoint")


def test_checkpoint_of_another_architecture_names_the_mismatch(cli, pix2pix_run, tmp_path):
    run = Path(shutil.copytree(pix2pix_run, tmp_path / "run"))
    code, err = cli(f"resume={run}", "model.generator.ngf=8")
    line = assert_one_line_error(code, err, f"resume={run}", "network G")
    # a failed resume keeps the run it was to continue, and its log tells what happened
    assert (run / "checkpoints" / "latest.pt").is_file()
    assert line.removeprefix("translate-train: error: ") in (run / "train.log").read_text()
    # which setting or which weights differ, not just that loading failed
    assert "ngf" in line or re.search(r"\[4, .*\[8, |\[8, .*\[4, ", line), line
