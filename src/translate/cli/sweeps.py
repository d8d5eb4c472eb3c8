"""What ``translate-train -m`` adds to a run: a job that fails, diverges or never logs its objective is
recorded as failed and the sweep goes on, a summary table of every job at the end, the objective a sweeper
(Optuna) optimises, and the cluster side of a job (a requeued job resumes its own run directory; SLURM's
time-limit warning stops it cleanly).

Each job writes ``job.json`` (and, when it failed, ``error.txt``) into its own directory; :class:`SweepSummary`,
a Hydra callback (conf/hydra/default.yaml), reads them back when the sweep ends, so jobs that ran in other
processes or on other machines (submitit) are counted too.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import signal
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from translate.errors import ConfigError, TranslateError

log = logging.getLogger("translate")

JOB_FILE, ERROR_FILE = "job.json", "error.txt"
SUMMARY_COLUMNS = ("job", "overrides", "status", "objective", "run_dir")

#: Jobs of the last multirun of this process that failed (translate-train exits non-zero when there are any).
failed_jobs: List[int] = []


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _record(run_dir: Path, status: str, objective: Optional[float], error: Optional[str] = None) -> None:
    if os.environ.get("RANK", "0") != "0":  # a job over several processes: rank 0 reports it
        return
    hydra = HydraConfig.get()
    record = {
        "job": int(hydra.job.num),
        "overrides": " ".join(hydra.overrides.task),
        "status": status,
        "objective": objective,
        "run_dir": str(run_dir),
        "error": error,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / JOB_FILE).write_text(json.dumps(record, indent=1) + "\n")


def run_job(train: Callable[[], Optional[float]], run_dir: Path) -> Optional[float]:
    """One job of a sweep: ``train()``'s objective or, when the job fails (a refused setting, a non-finite loss,
    a crash) or logs no objective, None, after recording it (``job.json``, and the error in ``error.txt``)
    and reporting it in one line, so that the sweep goes on. The Optuna sweeper records a job that returns
    no number as a failed trial, neither good nor bad, which its sampler leaves out of its model, and goes on
    to its ``n_trials`` (an exception would end the sweep, and a NaN makes it fail telling Optuna both a
    value and a failure)."""
    try:
        value = train()
    except Exception as err:  # noqa: BLE001 - a sweep outlives any one job: every failure is recorded, not raised
        message = str(err).strip().splitlines()[-1] if isinstance(err, TranslateError) else f"{type(err).__name__}: {err}"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ERROR_FILE).write_text(message + "\n\n" + "".join(traceback.format_exception(err)))
        _record(run_dir, "failed", None, message)
        log.error("job %d failed: %s (%s)", HydraConfig.get().job.num, message, run_dir / ERROR_FILE)
        return None
    if value is None or math.isnan(value):
        _record(run_dir, "failed", None, "no objective: the run logged no value of it")
        log.error("job %d failed: it logged no value of its objective", HydraConfig.get().job.num)
        return None
    _record(run_dir, "done", value)
    return value


def own_checkpoint(run_dir: Path) -> Optional[str]:
    """The run directory to resume when a sweep job starts again in it (SLURM requeued it after a
    preemption or a time limit): a sweep names each job's directory once, so a checkpoint there is its own."""
    return str(run_dir) if in_multirun() and (run_dir / "checkpoints" / "latest.pt").is_file() else None


@contextlib.contextmanager
def stop_on_time_limit() -> Iterator[None]:
    """SIGUSR2 (what SLURM sends ahead of the time limit when submitit asks, ``--signal=USR2@<s>``) stops
    training like SIGTERM: the step finishes and ``latest.pt`` is written. Then the handler that was there
    before (submitit's, which requeues the job) gets the signal, or nothing happens if it was the default."""
    if not hasattr(signal, "SIGUSR2"):
        yield
        return
    previous = signal.getsignal(signal.SIGUSR2)
    caught: List[int] = []

    def stop(signum: int, frame: Any) -> None:
        caught.append(signum)
        on_term = signal.getsignal(signal.SIGTERM)
        if callable(on_term):
            on_term(signal.SIGTERM, frame)

    signal.signal(signal.SIGUSR2, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR2, previous)
    if caught and callable(previous):
        previous(signal.SIGUSR2, None)


def check_direction(config: DictConfig, direction: str) -> None:
    """An Optuna sweep must optimise the objective the way it is better: refuse a mismatch before any trial."""
    sweeper = config.hydra.sweeper
    if "optuna" not in str(sweeper.get("_target_", "")).lower():
        return
    asked = sweeper.get("direction")
    asked = str(getattr(asked, "name", asked))
    if asked != direction:
        raise ConfigError(
            f"hydra.sweeper.direction={asked} but this run's objective is better when {'higher' if direction == 'maximize' else 'lower'}; "
            f"set hydra.sweeper.direction={direction} (or another objective=)"
        )


def _rows(sweep_dir: Path) -> List[Dict[str, Any]]:
    rows = [json.loads(path.read_text()) for path in sweep_dir.glob(f"*/{JOB_FILE}")]
    return sorted(rows, key=lambda row: row["job"])


def write_summary(sweep_dir: Path) -> List[Dict[str, Any]]:
    """``summary.csv`` and ``summary.md`` in the sweep directory: one row per job; returns the rows."""
    rows = _rows(sweep_dir)
    cells = [[str("" if row[c] is None else row[c]) for c in SUMMARY_COLUMNS] for row in rows]
    with open(sweep_dir / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SUMMARY_COLUMNS)
        writer.writerows(cells)
    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * len(SUMMARY_COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in cells]
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    return rows


class SweepSummary(Callback):
    """Hydra callback: checks an Optuna sweep's direction and its trackers before the first job, and writes and
    prints the summary table after the last one."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Imported here: the callback is built for every run, and torch is needed only once a sweep starts.
        from translate.cli.app import fail
        from translate.settings.validate import objective_of, validate_train
        from translate.training.trackers import check_ready

        try:
            run = validate_train(OmegaConf.masked_copy(config, [str(key) for key in config if key != "hydra"]))
            check_direction(config, objective_of(run).direction)
            check_ready(run.logger)
        except TranslateError as err:
            fail("translate-train", err)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = write_summary(sweep_dir)
        failed_jobs[:] = [row["job"] for row in rows if row["status"] != "done"]
        table = (sweep_dir / "summary.md").read_text()
        print(
            f"\n{len(rows)} jobs, {len(failed_jobs)} failed; {sweep_dir / 'summary.md'}, {sweep_dir / 'summary.csv'}:\n{table}", flush=True
        )


def exit_status() -> int:
    """1 when a job of the multirun that just ended failed, else 0."""
    return 1 if failed_jobs else 0
