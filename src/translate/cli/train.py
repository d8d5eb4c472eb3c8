"""``translate-train``: compose the config with Hydra, validate it, train (also under torchrun)."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from translate.cli import sweeps
from translate.cli.app import config_dir, fail
from translate.cli.overrides import check_overrides
from translate.cli.run_dir import settle_failed_run
from translate.cli.validate import validate
from translate.errors import TranslateError
from translate.training import cluster

log = logging.getLogger("translate")


def _saved_overrides(args: List[str]) -> Optional[Path]:
    """``<run>/.hydra/overrides.yaml`` of the run that ``resume=`` names, or None."""
    resume = next((a.split("=", 1)[1] for a in args if a.startswith("resume=")), None)
    if not resume:
        return None
    path = Path(resume).expanduser()
    if not path.exists():
        fail(
            "translate-train",
            FileNotFoundError(
                f"resume={resume}: no such run directory or checkpoint; pass a run directory (outputs/<model>/<data>/<time>) "
                "or a checkpoint file"
            ),
        )
    saved = (path if path.is_dir() else path.parent.parent) / ".hydra" / "overrides.yaml"
    return saved if saved.is_file() else None


def _resume_argv(args: List[str]) -> List[str]:
    """``resume=<run dir or checkpoint>`` continues that run in its own directory with the overrides it
    was started with; overrides given now come after them and win."""
    saved = _saved_overrides(args)
    if saved is None:
        return args
    run_dir = saved.parent.parent
    asked = next((a.split("=", 1)[1] for a in args if a.startswith("model=")), None)
    ran = OmegaConf.load(run_dir / "config.yaml").model.name if (run_dir / "config.yaml").is_file() else None
    if asked is not None and ran is not None and asked != ran:
        fail(
            "translate-train",
            ValueError(
                f"resume={run_dir} is a model={ran} run; a resumed run keeps its model: drop model={asked} "
                "(or start a new run without resume=)"
            ),
        )
    previous = [o for o in OmegaConf.load(saved) if not o.startswith(("resume=", "hydra.run.dir="))]
    return [*previous, *args, f"hydra.run.dir={run_dir}"]


def _train_task(cfg: DictConfig) -> float:
    """Train; return the run's objective (translate.training.objective), what a sweeper optimises."""
    # Imported here so that --help, --cfg and Hydra's own errors answer without loading torch.
    from translate.training.distributed import is_main
    from translate.training.engine import Trainer
    from translate.training.objective import objective_of, objective_value

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if is_main():
        log.info("run directory: %s", run_dir)
    trainers: List[Trainer] = []

    def train() -> float:
        typed = validate(cfg)
        objective = objective_of(typed)
        typed.resume = typed.resume or sweeps.own_checkpoint(run_dir)
        if is_main():
            OmegaConf.save(typed, run_dir / "config.yaml")
        trainers.append(Trainer(typed, run_dir))
        with sweeps.stop_on_time_limit():
            trainers[0].fit()
        return objective_value(objective, trainers[0].best, trainers[0].final_metrics)

    if sweeps.in_multirun():  # a failed job keeps its directory, with its error in it, and the sweep goes on
        return sweeps.run_job(train, run_dir)
    try:
        return train()
    except Exception as err:
        if is_main():  # torchrun's processes share the directory; rank 0 owns it
            started = bool(cfg.get("resume")) or any(t.training_started for t in trainers)
            settle_failed_run(run_dir, err, keep=started)
        if not isinstance(err, TranslateError):
            raise
        fail("translate-train", err)


#: Rank 0's start time under torchrun; None for one process (each run takes the time it starts).
_shared_start: Optional[datetime] = None


def _start_time(pattern: str) -> str:
    """``${start_time:<strftime pattern>}`` in conf/hydra: Hydra's ``now``, except that every process of a
    torchrun launch gets the same time, so they all compose the same run directory. (Hydra re-registers
    ``now`` itself when it runs, so it cannot be overridden.)"""
    return (_shared_start or datetime.now()).strftime(pattern)


OmegaConf.register_new_resolver("start_time", _start_time, use_cache=True, replace=True)


def _distributed_argv(args: List[str]) -> List[str]:
    """Under torchrun: every process composes rank 0's run directory; only rank 0 writes Hydra's files and log."""
    global _shared_start
    from translate.training import distributed  # loaded only under torchrun, after main() checked WORLD_SIZE

    _shared_start = distributed.shared_start_time()
    return args if distributed.is_main() else [*args, "hydra.output_subdir=null", "hydra/job_logging=stdout"]


#: Hydra's flags that only describe the app: they answer without composing a run, so without torch.
_HELP_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}

_train_main = hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")(_train_task)


def _train(args: List[str]) -> None:
    saved = _saved_overrides(args)
    before = saved.read_bytes() if saved is not None else None
    argv = sweeps.sweeper_params_argv(_resume_argv(args))
    try:
        composed = check_overrides("train", argv)
        # The check a run makes, before Hydra creates its directory; --cfg job says the same.
        if composed is not None and not _HELP_FLAGS.intersection(argv):
            validate(composed)
    except TranslateError as err:
        fail("translate-train", err)
    sys.argv = [sys.argv[0], *argv]
    try:
        _train_main()
        if sweeps.exit_status():
            sys.exit(sweeps.exit_status())
    except SystemExit as exit_:
        # Hydra rewrote the run's overrides.yaml for this attempt; a failed one must not change later resumes.
        if exit_.code and saved is not None:
            saved.write_bytes(before)
        raise


def main() -> None:
    # srun's tasks are started like torchrun's processes: cluster gives them torchrun's variables.
    if cluster.world_size() <= 1:
        _train(sys.argv[1:])
        return
    from translate.training import distributed  # torch is loaded only when torchrun started several processes

    with distributed.process_group():
        _train(_distributed_argv(sys.argv[1:]))
