"""``translate-train`` and ``translate-test`` as a user runs them: installed console scripts, in a
subprocess, from a directory that is not the repository."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from PIL import Image

from helpers import GRID_SIDE, IMAGE_SIZE, TINY, expect_clear_error, load_ckpt, read_events
from translate.cli.testing import run_test
from translate.errors import TranslateError
from translate.settings.validate import validate_test, validate_train


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def cli_train(run_cli, workdir) -> tuple[Path, str]:
    """A smoke run trained by ``translate-train`` into its default run directory, and what it printed."""
    proc = run_cli("translate-train", *TINY, cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = list((workdir / "outputs" / "cgan" / "mnist_subset").iterdir())
    assert len(runs) == 1, runs
    return runs[0], proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def cli_run(cli_train) -> Path:
    return cli_train[0]


# The cGAN's scores are covered in test_evaluation.py; here they would only cost time.
FAST_SCORES = ("metrics.tstr_steps=0", "metrics.cgan_per_class=10")


@pytest.fixture(scope="module")
def tested(run_cli, cli_run, workdir) -> Path:
    """The outputs of ``translate-test run=<run> n_per_class=2``."""
    proc = run_cli("translate-test", f"run={cli_run}", "n_per_class=2", "device=cpu", *FAST_SCORES, cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cli_run / "test_latest"


# --- translate-train -----------------------------------------------------------------------------------


def test_train_writes_the_run_directory(cli_run):
    assert cli_run.parent.name == "mnist_subset" and cli_run.parent.parent.name == "cgan"
    assert load_ckpt(cli_run / "checkpoints" / "latest.pt")["step"] == 4
    assert list((cli_run / "samples").glob("*.png"))
    assert (cli_run / "train.log").is_file()


def test_train_says_where_it_writes_and_that_it_stopped_at_max_steps(cli_train):
    run, printed = cli_train
    lines = printed.splitlines()
    # the first lines name the run directory (a font cache notice may come first on a fresh machine)
    assert any(line.endswith(f"run directory: {run}") for line in lines[:3]), printed
    # debug=smoke stops at trainer.max_steps: the log says so rather than reading like a run cut short
    assert "stopped at trainer.max_steps=4 as asked" in lines[-1], printed


def test_train_draws_the_curves_of_the_run(cli_run):
    with Image.open(cli_run / "curves.png") as curves:
        assert curves.width >= 800 and curves.height >= 200


def test_train_saves_the_composed_config(cli_run):
    saved = OmegaConf.load(cli_run / "config.yaml")
    typed = validate_train(saved)
    assert (typed.model.name, typed.data.name, typed.model.generator.ngf, typed.trainer.max_steps) == (
        "cgan",
        "mnist_subset",
        8,
        4,
    )


def test_train_logs_train_scalars_and_images_to_tensorboard(cli_run):
    tags = read_events(cli_run / "tb").Tags()
    expected = {"train/loss_D/real", "train/loss_G/gan", "train/D_real", "train/D_fake", "train/lr/G"}
    assert expected <= set(tags["scalars"])
    assert "train/visuals" in tags["images"]


def test_resume_continues_the_run_in_its_own_directory(run_cli, cli_run, tmp_path):
    run = Path(shutil.copytree(cli_run, tmp_path / "run"))
    # the overrides the run was started with (tiny networks) come back; later ones win
    proc = run_cli("translate-train", f"resume={run}", "trainer.max_steps=6", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = load_ckpt(run / "checkpoints" / "latest.pt")
    assert state["step"] == 6 and state["config"]["model"]["generator"]["ngf"] == 8
    assert not (tmp_path / "outputs").exists()
    steps = sorted({e.step for e in read_events(run / "tb").Scalars("train/loss_G/gan")})
    assert steps == [1, 2, 3, 4, 5, 6]


def test_sweep_gives_each_job_its_own_directory_and_tensorboard(run_cli, tmp_path):
    multirun = tmp_path / "multirun"
    sweep_args = ["-m", *TINY, "trainer.max_steps=2", "model.optim.lr=1e-4,2e-4", f"paths.multirun_dir={multirun}"]
    proc = run_cli("translate-train", *sweep_args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sweep,) = multirun.iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for job, lr in (("0", 1e-4), ("1", 2e-4)):
        assert OmegaConf.load(sweep / job / "config.yaml").model.optim.lr == lr
        assert load_ckpt(sweep / job / "checkpoints" / "latest.pt")["step"] == 2
        assert "train/loss_G/gan" in read_events(sweep / job / "tb").Tags()["scalars"]
    assert not (tmp_path / "outputs").exists()


# One bad override per place that catches it: Hydra (a misspelled key; also an unknown group option) and
# validate (an unknown choice; also a wrong type). test_config.py checks every message in-process.
@pytest.mark.parametrize("override, named", [("trainer.batchsize=3", "trainer.batchsize"), ("model.gan_mode=foo", "model.gan_mode")])
def test_bad_override_is_a_short_clear_error(run_cli, tmp_path, override, named):
    # data=mnist with an empty data folder and no download: the config is checked before any data is read
    proc = run_cli("translate-train", "data=mnist", "data.download=false", override, cwd=tmp_path)
    text = expect_clear_error(proc, named, override.split("=")[1])
    assert "MNIST" not in text
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.pt"))


def test_help_lists_the_config_groups(run_cli, tmp_path):
    proc = run_cli("translate-train", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for line in ("model: cgan", "device: auto, cpu, cuda, mps", "logger: csv, many, mlflow, none, tensorboard, wandb", "debug: smoke"):
        assert line in proc.stdout, proc.stdout
    for group in ("data:", "trainer:", "experiment:", "paths:"):
        assert f"\n{group}" in proc.stdout, proc.stdout


def test_cfg_job_prints_the_composed_config_without_training(run_cli, tmp_path):
    proc = run_cli("translate-train", "--cfg", "job", "model.optim.lr=0.0005", "data=mnist_subset", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    printed = yaml.safe_load(proc.stdout)
    assert printed["model"]["optim"]["lr"] == 0.0005
    assert printed["data"]["name"] == "mnist_subset" and printed["trainer"]["batch_size"] == 64
    assert not (tmp_path / "outputs").exists()


def test_a_model_with_data_it_cannot_use_stops_before_any_data_is_read(run_cli, tmp_path):
    proc = run_cli("translate-train", "model=pix2pix", "data.download=false", cwd=tmp_path)
    text = expect_clear_error(proc, "data=mnist is mnist data, but model=pix2pix needs aligned data")
    assert "MNIST" not in text and not (tmp_path / "outputs").exists()
    # --cfg job shows the composition as Hydra made it; the run is what checks it
    proc = run_cli("translate-train", "model=pix2pix", "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0 and yaml.safe_load(proc.stdout)["model"]["name"] == "pix2pix", proc.stderr


# --- translate-test ------------------------------------------------------------------------------------


def test_test_writes_the_grid_and_n_per_class_samples_of_every_class(tested):
    with Image.open(tested / "grid.png") as grid:
        assert grid.size == (GRID_SIDE, GRID_SIDE)
    samples = sorted(p.relative_to(tested / "samples").as_posix() for p in (tested / "samples").rglob("*.png"))
    assert samples == sorted(f"{c}/{k}.png" for c in range(10) for k in range(2))
    with Image.open(tested / "samples" / "3" / "0.png") as digit:
        assert digit.size == (IMAGE_SIZE, IMAGE_SIZE)


def _test_cfg(compose_config, *overrides: str):
    return compose_config("test", "device=cpu", "n_per_class=1", *FAST_SCORES, *overrides)


def test_test_honours_output_dir(compose_config, tested, cli_run, tmp_path):
    out = run_test(validate_test(_test_cfg(compose_config, f"run={cli_run}", f"output_dir={tmp_path / 'elsewhere'}")))
    assert out == tmp_path / "elsewhere"
    assert (out / "samples" / "9" / "0.png").is_file() and not (out / "samples" / "9" / "1.png").exists()
    # the grid uses the model's fixed noise: the same picture wherever it is written
    assert (out / "grid.png").read_bytes() == (tested / "grid.png").read_bytes()


def test_test_honours_checkpoint(compose_config, tested, cli_run):
    state = load_ckpt(cli_run / "checkpoints" / "latest.pt")
    last_bias = [k for k in state["networks"]["G"] if k.endswith(".bias")][-1]
    state["networks"]["G"][last_bias] += 1.0
    other = cli_run / "checkpoints" / "other.pt"
    torch.save(state, other)
    out = run_test(validate_test(_test_cfg(compose_config, f"checkpoint={other}")))
    assert out == cli_run / "test_other"
    assert (out / "grid.png").read_bytes() != (tested / "grid.png").read_bytes()


def test_test_accepts_the_model_of_the_run_named_again(compose_config, tested, cli_run, tmp_path):
    # Users type the train command's model= out of habit; model=cgan also picks a trainer, which must compose.
    out = run_test(validate_test(_test_cfg(compose_config, f"run={cli_run}", "model=cgan", f"output_dir={tmp_path / 'again'}")))
    assert (out / "grid.png").read_bytes() == (tested / "grid.png").read_bytes()


@pytest.mark.parametrize("overrides, named", [((), "run="), (("run=no/such/run",), "no/such/run")])
def test_test_without_a_trained_run_is_a_clear_error(compose_config, tmp_path, monkeypatch, overrides, named):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TranslateError, match=named):
        run_test(validate_test(_test_cfg(compose_config, *overrides)))


def test_test_again_keeps_the_earlier_results_and_says_each_phase(run_cli, compose_config, cli_run, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(cli_run / "checkpoints" / "latest.pt", run / "checkpoints" / "latest.pt")
    first = run_test(validate_test(_test_cfg(compose_config, f"run={run}")))
    assert first == run / "test_latest"
    earlier = (first / "metrics.json").read_bytes()

    scores = ("metrics.cgan_per_class=5", "metrics.tstr_steps=2")
    proc = run_cli("translate-test", f"run={run}", "device=cpu", "n_per_class=1", *scores, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The contract's path holds the new test; the earlier one is kept whole beside it, named by its time.
    (aside,) = [p for p in run.iterdir() if p.name.startswith("test_latest.")]
    assert re.fullmatch(r"test_latest\.\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", aside.name)
    assert (aside / "metrics.json").read_bytes() == earlier
    assert json.loads((run / "test_latest" / "metrics.json").read_text())["accuracy"]["num_images"] == 50
    assert sorted(p.name for p in run.iterdir()) == sorted(["checkpoints", "test_latest", aside.name])  # nothing half-written
    # Every phase that can take minutes says so as it starts; TSTR's steps have a bar on stderr.
    lines = proc.stdout.splitlines()
    for start in (
        "generating 50 digits (5 of each class)...",
        "scoring them and the 1,000 real digits of the mnist_subset test split with the MNIST classifier",
        "TSTR: training a classifier on the generated digits for 2 steps",
        f"kept the earlier test's results of {run / 'test_latest'} as {aside}",
        f"translate-test: wrote {run / 'test_latest'}",
    ):
        assert any(line.startswith(start) for line in lines), (start, proc.stdout)
    assert re.search(r"TSTR: +\d+%", proc.stderr), proc.stderr
