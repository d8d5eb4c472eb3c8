"""Data-parallel training under torchrun, on the CPU (gloo): two processes with batch b train exactly as one
process with batch 2b, into one run directory that only rank 0 writes."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from _models_helpers import EXACT_PIX2PIX, write_pairs
from _robust_helpers import run_cli_inprocess
from helpers import BIN, TINY, assert_same_tensors, cli_env, load_ckpt, read_events, run_cli
from translate.data.sampling import EpochSampler
from translate.training.distributed import StopVote

#: gloo over the loopback interface (lo on Linux, lo0 on macOS): a test machine's hostname may not resolve.
_LOOPBACK_NAMES = [name for _, name in socket.if_nameindex() if name in ("lo", "lo0")]
LOOPBACK = {"GLOO_SOCKET_IFNAME": _LOOPBACK_NAMES[0]} if _LOOPBACK_NAMES else {}

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")


def test_process_shares_together_are_the_batches_of_one_process():
    one = EpochSampler(10, seed=3)
    shares = [EpochSampler(10, seed=3, rank=r, world=2) for r in range(2)]
    for sampler in (one, *shares):
        sampler.set_epoch(4)
    keys = list(one)
    mine = [list(s) for s in shares]
    assert [len(m) for m in mine] == [5, 5]
    # batch b of size 2 in each process == batch b of size 4 in one process
    for b in range(2):
        assert set(mine[0][2 * b : 2 * b + 2] + mine[1][2 * b : 2 * b + 2]) == set(keys[4 * b : 4 * b + 4])
    # resuming part-way through the epoch continues each share where it stopped
    shares[1].set_epoch(4, start=2)
    assert list(shares[1]) == mine[1][2:]
    # an odd sample is dropped so both take the same number of steps
    assert len(EpochSampler(11, seed=0, rank=1, world=2)) == 5


def test_the_run_directory_is_named_by_rank_0s_start_time(tmp_path, monkeypatch, capsys):
    # What translate-train sets in every process under torchrun: rank 0's start time names the run directory.
    monkeypatch.setenv("TRANSLATE_RUN_TIME", "2001-02-03_04-05-06")
    monkeypatch.chdir(tmp_path)
    code, err = run_cli_inprocess(monkeypatch, capsys, *TINY, "logger=none", "trainer.progress_bar=false")
    assert code == 0, err[-3000:]
    assert (tmp_path / "outputs" / "cgan" / "mnist_subset" / "2001-02-03_04-05-06" / "checkpoints" / "latest.pt").is_file()


def test_two_processes_train_like_one_with_twice_the_batch(tmp_path):
    data = tmp_path / "pairs"
    write_pairs(data, "train", 8, 32, seed=0)
    one = run_cli(
        "translate-train",
        *EXACT_PIX2PIX,
        "device=cpu",
        f"data.root={data}",
        "trainer.batch_size=4",
        "trainer.log_every_n_steps=2",
        "hydra.run.dir=one",
        cwd=tmp_path,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [
            str(BIN / "torchrun"),
            "--standalone",
            "--nproc_per_node=2",
            "--no-python",
            str(BIN / "translate-train"),
            *EXACT_PIX2PIX,
            "device=cpu",
            f"data.root={data}",
            "trainer.batch_size=2",
            "trainer.log_every_n_steps=2",
            "paths.output_dir=outputs",
        ],
        cwd=tmp_path,
        env={**cli_env(tmp_path), **LOOPBACK},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]

    # One run directory (the processes agreed on its timestamp), written by rank 0 alone.
    runs = list((tmp_path / "outputs" / "pix2pix" / "aligned").iterdir())
    assert len(runs) == 1, runs
    run = runs[0]
    assert (run / "config.yaml").is_file() and (run / ".hydra" / "overrides.yaml").is_file()
    assert (run / "train.log").read_text().count("training on 2 processes") == 1

    a, b = load_ckpt(tmp_path / "one" / "checkpoints" / "latest.pt"), load_ckpt(run / "checkpoints" / "latest.pt")
    assert a["step"] == b["step"] == 4 and a["epoch"] == b["epoch"] == 2
    for net, weights in a["networks"].items():
        for key, value in weights.items():
            # Each step moves a weight by about lr = 2e-4: a process training on its half alone would be far off.
            torch.testing.assert_close(b["networks"][net][key], value, atol=1e-5, rtol=0, msg=f"{net}.{key}")

    # The logged losses are the means over the processes: what the one process saw on the whole batch.
    ours, theirs = read_events(run / "tb"), read_events(tmp_path / "one" / "tb")
    for tag in ("train/loss_G/L1", "train/loss_G/gan", "train/loss_D/real", "train/loss_D/fake"):
        assert [e.step for e in ours.Scalars(tag)] == [2, 4], tag
        assert [e.value for e in ours.Scalars(tag)] == pytest.approx([e.value for e in theirs.Scalars(tag)], rel=1e-4), tag


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(cwd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "--no-python", str(BIN / "translate-train"), *args],
        cwd=cwd,
        env={**cli_env(cwd), **LOOPBACK},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _vote(rank: int, port: int, results) -> None:
    """Rank 1 receives signal 12 before its fourth vote; every rank records what its votes return."""
    os.environ.update(LOOPBACK)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        votes = StopVote(torch.device("cpu"), lag=2)
        results[rank] = [votes.cast(12 if rank == 1 and step >= 3 else 0) for step in range(8)]
        votes.drain()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_every_process_learns_of_a_stop_signal_at_the_same_step():
    """A signal that reached one process stops all of them after the same step, ``lag`` steps later, each
    step's vote read back only when it has long completed."""
    results = mp.Manager().dict()
    mp.start_processes(_vote, args=(_free_port(), results), nprocs=2, start_method="spawn")
    assert results[0] == results[1] == [0, 0, 0, 0, 0, 12, 12, 12]


#: A cGAN whose every step draws each process's own noise: 4 digits a process, one step an epoch.
TWO_PROCESS_CGAN = [
    *TINY,
    "data.max_dataset_size=16",
    "trainer.batch_size=4",
    "logger=none",
    "trainer.n_epochs=4",
    "trainer.n_epochs_decay=0",
    "device.deterministic=true",
]


def test_a_stopped_and_resumed_two_process_run_ends_as_an_uninterrupted_one(tmp_path):
    # Exact, not within a tolerance: both runs compute on one machine and one numeric path (same kernels, same
    # threads, same order of sums), so any difference is state the resume lost, whatever the CPU kind.
    straight = _torchrun(tmp_path, *TWO_PROCESS_CGAN, "hydra.run.dir=straight")
    assert straight.returncode == 0, (straight.stdout + straight.stderr)[-3000:]
    first = _torchrun(tmp_path, *TWO_PROCESS_CGAN, "trainer.max_steps=3", "hydra.run.dir=stopped")
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    saved = load_ckpt(tmp_path / "stopped" / "checkpoints" / "latest.pt")
    # every process's own random state is in the checkpoint
    assert saved["step"] == 3 and len(saved["rng_ranks"]) == 2
    assert not torch.equal(saved["rng_ranks"][0]["torch"], saved["rng_ranks"][1]["torch"])
    resumed = _torchrun(tmp_path, "resume=stopped", "trainer.max_steps=4")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    a, b = load_ckpt(tmp_path / "straight" / "checkpoints" / "latest.pt"), load_ckpt(tmp_path / "stopped" / "checkpoints" / "latest.pt")
    assert a["step"] == b["step"] == 4
    assert_same_tensors(a["networks"], b["networks"])


def test_two_slurm_tasks_with_sync_batch_norm_train_like_one_process_with_twice_the_batch(tmp_path):
    """Two processes that SLURM would start (srun: SLURM_PROCID, SLURM_NTASKS, ...), joined over 127.0.0.1;
    batch norm over both processes' halves normalises as one process with the whole batch does."""
    data = tmp_path / "pairs"
    write_pairs(data, "train", 8, 32, seed=0)
    args = [*EXACT_PIX2PIX, "device=cpu", f"data.root={data}", "model.generator.norm=batch", "model.discriminator.norm=batch"]
    one = run_cli("translate-train", *args, "trainer.batch_size=4", "hydra.run.dir=one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    slurm = {"SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "127.0.0.1", "SLURM_JOB_ID": "7", "MASTER_PORT": str(_free_port())}
    tasks = [
        subprocess.Popen(
            [str(BIN / "translate-train"), *args, "trainer.batch_size=2", "device.sync_bn=true", "paths.output_dir=outputs"],
            cwd=tmp_path,
            env={**cli_env(tmp_path), **LOOPBACK, **slurm, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [task.communicate(timeout=300)[0] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    (run,) = (tmp_path / "outputs" / "pix2pix" / "aligned").iterdir()
    assert "training on 2 processes" in (run / "train.log").read_text()
    a, b = load_ckpt(tmp_path / "one" / "checkpoints" / "latest.pt"), load_ckpt(run / "checkpoints" / "latest.pt")
    assert a["step"] == b["step"] == 4
    for net, weights in a["networks"].items():
        for key, value in weights.items():  # weights and the running statistics of batch norm
            torch.testing.assert_close(b["networks"][net][key], value, atol=1e-5, rtol=1e-4, msg=f"{net}.{key}")
