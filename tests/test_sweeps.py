"""Sweeps and clusters: a failed job is recorded and the sweep goes on, the summary table, the objective
that Optuna optimises, submitit's local launcher, a requeued job resuming its own directory, SLURM's
environment, and SIGTERM to a whole process group with DataLoader workers."""

from __future__ import annotations

import csv
import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from _robust_helpers import CGAN, COMMON
from helpers import BIN, assert_same_tensors, cli_env, load_ckpt, run_cli
from translate.training.cluster import first_host, slurm_env

#: A cGAN of a few thousand parameters: 3 steps an epoch on 12 digits, a validation each epoch (the objective).
SWEEP = [*COMMON, *CGAN, "trainer.n_epochs=1", "trainer.n_epochs_decay=0", "trainer.val_every_n_epochs=1", "trainer.val_max_images=10"]


def _summary(sweep: Path) -> list[dict]:
    with open(sweep / "summary.csv") as f:
        return list(csv.DictReader(f))


def test_a_failed_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    # job 0 is refused (batch larger than the 12 digits), job 1 trains
    # (job 1 stops after 2 of its 3 steps, for the requeue below)
    proc = run_cli(
        "translate-train", "-m", *SWEEP, "trainer.batch_size=64,4", "trainer.max_steps=2", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    reports = [line for line in text.splitlines() if "job 0 failed:" in line]
    assert len(reports) == 1 and "trainer.batch_size=64 is larger than the dataset" in reports[0], text[-3000:]
    assert "trainer.batch_size=64 is larger than the dataset" in (sweep / "0" / "error.txt").read_text()
    assert (sweep / "1" / "checkpoints" / "latest.pt").is_file()

    rows = _summary(sweep)
    assert [(r["job"], r["status"]) for r in rows] == [("0", "failed"), ("1", "done")]
    assert "trainer.batch_size=64" in rows[0]["overrides"] and rows[0]["objective"] == ""
    # job 1 stopped at max_steps before the end of its first epoch: it validates once then, so it has an objective
    assert math.isfinite(float(rows[1]["objective"])) and Path(rows[1]["run_dir"]) == sweep / "1"
    assert (sweep / "summary.md").read_text().startswith("| job | overrides | status | objective | run_dir |")
    assert "2 jobs, 1 failed" in proc.stdout

    # What a SLURM requeue does: the same sweep starts its jobs again, each in its own directory; job 1
    # resumes its checkpoint, job 0 fails again.
    again = run_cli("translate-train", "-m", *SWEEP, "trainer.batch_size=64,4", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert again.returncode == 1, (again.stdout + again.stderr)[-3000:]
    assert f"resumed from {sweep / '1'} at step 2" in (sweep / "1" / "train.log").read_text()
    assert load_ckpt(sweep / "1" / "checkpoints" / "latest.pt")["step"] == 3
    rows = _summary(sweep)
    assert [r["status"] for r in rows] == ["failed", "done"]
    # the objective of a cGAN run: its last val/fid_mnist_classifier, validated at the end of its epoch
    assert math.isfinite(float(rows[1]["objective"]))


def test_optuna_sweep_returns_the_objective_and_writes_a_finite_best_value(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "translate-train",
        "-m",
        "hparams_search=cgan_optuna",
        *SWEEP,
        "hydra.sweeper.n_trials=3",
        # the preset's search space, narrowed on the command line (the sweeper reads it as the space)
        "model.optim.lr=interval(1e-5,1e-3)",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    rows = _summary(sweep)
    assert len(rows) == 3 and {r["status"] for r in rows} == {"done"}
    objectives = [float(r["objective"]) for r in rows]
    # Optuna minimised what the runs returned: the best value is the smallest objective in the table
    assert math.isfinite(results.best_value) and results.best_value == pytest.approx(min(objectives))
    assert set(results.best_params) >= {"model.optim.lr", "model.gan_mode", "model.optim.beta1"}
    assert 1e-5 <= results.best_params["model.optim.lr"] <= 1e-3


def test_an_optuna_sweep_survives_a_refused_and_a_diverged_trial(tmp_path):
    """Trials that are refused at the start (a negative learning rate) or diverge (a non-finite loss) are
    recorded as failed, and the sweep goes on to its n_trials; a trial that stops at max_steps before its
    first validation validates at the end, so Optuna gets its objective."""
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "translate-train",
        "-m",
        "hydra/sweeper=optuna",
        # optuna 2.10's random sampler draws -1, 2e-4, 1e30 from this seed: each kind of trial once
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=2",
        "hydra.sweeper.n_trials=3",
        *COMMON,
        *CGAN,
        "trainer.n_epochs=1",
        "trainer.n_epochs_decay=0",
        "trainer.max_steps=2",
        "trainer.val_every_n_epochs=1",
        "trainer.val_max_images=10",
        "model.optim.lr=choice(2e-4,1e30,-1)",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    text = proc.stdout + proc.stderr
    # a failed job makes the exit status 1; the sweep itself ran to its end
    assert proc.returncode == 1 and "Traceback" not in text, text[-3000:]
    rows = {re.search(r"model\.optim\.lr=(\S+)", r["overrides"]).group(1): r for r in _summary(sweep)}
    assert rows.keys() == {"-1", "0.0002", "1e+30"}, rows
    assert (rows["-1"]["status"], rows["1e+30"]["status"], rows["0.0002"]["status"]) == ("failed", "failed", "done")
    assert "model.optim.lr=-1.0 must be > 0" in (Path(rows["-1"]["run_dir"]) / "error.txt").read_text()
    assert "non-finite loss" in (Path(rows["1e+30"]["run_dir"]) / "error.txt").read_text()
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == pytest.approx(float(rows["0.0002"]["objective"])) and math.isfinite(results.best_value)
    assert results.best_params == {"model.optim.lr": 2e-4}


def test_an_optuna_direction_against_the_objective_is_refused_before_any_trial(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "translate-train",
        "-m",
        "hparams_search=cgan_optuna",
        *SWEEP,
        "hydra.sweeper.direction=maximize",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2, (proc.stdout + proc.stderr)[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("translate-train: error: ")]
    assert len(errors) == 1 and "hydra.sweeper.direction=minimize" in errors[0], proc.stderr
    assert not list(sweep.glob("*/checkpoints"))


def test_submitit_local_runs_each_job_in_its_own_process(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs translate[slurm]")
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "translate-train", "-m", "hydra/launcher=submitit_local", *SWEEP, "seed=1,2", f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=600
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    for job in ("0", "1"):
        assert load_ckpt(sweep / job / "checkpoints" / "latest.pt")["step"] == 3
    # submitit's own log of each job: a process of its own
    assert len(list((sweep / ".submitit").glob("*/*_log.out"))) == 2
    assert [r["status"] for r in _summary(sweep)] == ["done", "done"]


# --- SLURM's environment ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nodelist, host", [("node7", "node7"), ("gpu[003-005,010],cpu1", "gpu003"), ("a[1,4]", "a1"), ("127.0.0.1", "127.0.0.1")]
)
def test_the_first_host_of_a_slurm_node_list(nodelist, host):
    assert first_host(nodelist) == host


def test_slurm_tasks_get_torchruns_variables_and_torchrun_wins():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "gpu[12-13]", "SLURM_JOB_ID": "4321"}
    assert slurm_env(env) == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu12", "MASTER_PORT": "24321"}
    assert slurm_env({**env, "MASTER_PORT": "1234"})["MASTER_PORT"] == "1234"
    assert slurm_env({**env, "WORLD_SIZE": "2"}) == {}
    assert slurm_env({**env, "SLURM_NTASKS": "1"}) == {}


# --- SIGTERM to the whole process group --------------------------------------------------------------

#: 16 steps an epoch, read by two worker processes; deterministic so that a resumed run can be compared.
WORKERS = [
    *COMMON,
    *CGAN,
    "data.max_dataset_size=64",
    "data.num_workers=2",
    "trainer.n_epochs=1000",
    "trainer.n_epochs_decay=0",
    "trainer.save_every_n_epochs=1",
    "device.deterministic=true",
]


def test_sigterm_to_the_process_group_with_workers_saves_mid_epoch_and_resumes_exactly(tmp_path):
    # Exact, not within a tolerance: both runs compute on one machine and one numeric path (same kernels, same
    # threads, same order of sums), so any difference is state the resume lost, whatever the CPU kind.
    run = tmp_path / "run"
    output = tmp_path / "out.txt"
    with open(output, "w") as sink:
        proc = subprocess.Popen(
            [str(BIN / "translate-train"), *WORKERS, f"hydra.run.dir={run}"],
            cwd=tmp_path,
            env=cli_env(tmp_path),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the main process and its workers
        )
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "epoch_1.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, output.read_text()[-3000:]
        time.sleep(0.02)
    time.sleep(0.3)  # well inside epoch 2 (or later): workers are running
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, output.read_text()[-3000:]
    text = output.read_text()
    assert "Traceback" not in text and "killed by signal" not in text, text[-3000:]
    stopped = re.search(r"stopped by signal 15 at step (\d+); checkpoint saved\. Continue with: translate-train resume=(\S+)", text)
    assert stopped and Path(stopped[2]) == run, text[-3000:]
    step = int(stopped[1])
    latest = load_ckpt(run / "checkpoints" / "latest.pt")
    epoch, batch = divmod(step, 16)  # 64 digits, batch 4
    assert latest["step"] == step and (latest["epoch"], latest["samples_in_epoch"]) == (epoch, batch * 4)

    resumed = run_cli("translate-train", f"resume={run}", f"trainer.max_steps={step + 5}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = run_cli("translate-train", *WORKERS, f"trainer.max_steps={step + 5}", f"hydra.run.dir={tmp_path / 'straight'}", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    a, b = load_ckpt(run / "checkpoints" / "latest.pt"), load_ckpt(tmp_path / "straight" / "checkpoints" / "latest.pt")
    assert a["step"] == b["step"] == step + 5
    assert_same_tensors(a["networks"], b["networks"])
