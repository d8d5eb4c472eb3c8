"""``translate-train``: check the command line, compose the config with Hydra, validate it, fetch the data,
train. Also under torchrun (every process trains its share) and over a sweep (``-m``).

``resume=<run>`` continues a run in its own directory: the run's overrides (``.hydra/overrides.yaml``) and
the ones given now, in that order, are composed through Hydra's compose API, and the run's log continues in
its ``train.log``.
"""

from __future__ import annotations

import logging
import logging.config
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from translate.cli import sweeps
from translate.cli.app import HELP_FLAGS, check_torch_pair, config_dir, fail, register_schemas, runs_nothing
from translate.cli.compose import check_command_line, compose_config, overrides_of, parse
from translate.cli.run_dir import settle_failed_run
from translate.errors import ConfigError, TranslateError
from translate.training import cluster

log = logging.getLogger("translate")
APP = "translate-train"


@dataclass
class Attempt:
    """One try at a run: whether training started (a failure after that keeps the run directory)."""

    resumed: bool
    trainer: Any = None

    @property
    def started(self) -> bool:
        return self.resumed or (self.trainer is not None and self.trainer.training_started)


def train(cfg: DictConfig, run_dir: Path, attempt: Attempt) -> Optional[float]:
    """Train the composed config ``cfg`` into ``run_dir``; return the run's objective (what a sweeper
    optimises), None when the run logged none."""
    # Imported here so that --help, --cfg and the command-line checks answer without loading torch.
    from dataclasses import replace

    from translate.config import plain
    from translate.files import atomic_write
    from translate.hub.download import prepare_data
    from translate.settings.validate import objective_of, validate_train
    from translate.training.distributed import is_main
    from translate.training.engine import Trainer
    from translate.training.trackers import check_ready

    typed = validate_train(cfg)
    check_ready(typed.logger)  # a tracker's package or account missing: one line, before any data or network
    objective = objective_of(typed)
    typed = replace(typed, resume=typed.resume or sweeps.own_checkpoint(run_dir))
    typed = replace(typed, data=prepare_data(typed.data))
    if is_main():
        atomic_write(run_dir / "config.yaml", lambda tmp: OmegaConf.save(plain(typed), tmp))
    attempt.trainer = Trainer(typed, run_dir)
    with sweeps.stop_on_time_limit():
        attempt.trainer.fit()
    value = objective.value(attempt.trainer.best, attempt.trainer.final_metrics)
    return None if math.isnan(value) else value  # NaN: the run logged no value of its objective


def _settle(run_dir: Path, err: BaseException, attempt: Attempt) -> None:
    from translate.training.distributed import is_main

    if is_main():  # torchrun's processes share the directory; rank 0 owns it
        settle_failed_run(run_dir, err, keep=attempt.started)
    if not isinstance(err, TranslateError):
        raise err
    fail(APP, err)


def _task(cfg: DictConfig) -> Optional[float]:
    """The Hydra task: one run, or one job of a sweep (whose failure is recorded, and the sweep goes on)."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    attempt = Attempt(resumed=bool(cfg.get("resume")))
    if sweeps.in_multirun():
        return sweeps.run_job(lambda: train(cfg, run_dir, attempt), run_dir)
    try:
        return train(cfg, run_dir, attempt)
    except Exception as err:
        _settle(run_dir, err, attempt)
        return None


def _resume_target(args: List[str]) -> Optional[Path]:
    """The run directory that ``resume=`` names when it has the overrides it was started with; None when
    there is no ``resume=`` (or it names a checkpoint outside a run directory: that resumes into a new run)."""
    parsed = parse(overrides_of(args)) or []
    resume = next((o.value() for o in parsed if o.key_or_group == "resume" and not o.is_sweep_override()), None)
    if not resume:
        return None
    path = Path(str(resume)).expanduser()
    if not path.exists():
        raise ConfigError(
            f"resume={resume}: no such run directory or checkpoint; pass a run directory (outputs/<model>/<data>/<time>) or a checkpoint file"
        )
    run_dir = path if path.is_dir() else path.parent.parent
    return run_dir if (run_dir / ".hydra" / "overrides.yaml").is_file() else None


def _resume(run_dir: Path, args: List[str]) -> None:
    """Continue the run in ``run_dir``: its own overrides, then those of ``args``, composed by Hydra's compose
    API; the log goes on in its train.log, as Hydra's job logging configures it."""
    saved = run_dir / ".hydra" / "overrides.yaml"
    previous = [str(o) for o in OmegaConf.load(saved) if not str(o).startswith(("resume=", "hydra."))]
    given = [a for a in overrides_of(args) if not a.startswith("hydra.")]
    ran, asked = _model_of(previous), _model_of(given)
    if asked is not None and ran is not None and asked != ran:
        raise ConfigError(
            f"resume={run_dir} is a model={ran} run; a resumed run keeps its model: drop model={asked} (or start a new run without resume=)"
        )
    overrides = [*previous, *[a for a in given if not a.startswith("resume=")]]
    check_command_line("train", overrides)
    composed = compose_config("train", [*overrides, f"resume={run_dir}"], return_hydra_config=True)
    with open_dict(composed):
        composed.hydra.runtime.output_dir = str(run_dir)
        job_logging = OmegaConf.to_container(composed.hydra.job_logging, resolve=True)
        del composed["hydra"]
    if "--cfg" in args or "-c" in args:
        print(OmegaConf.to_yaml(composed))
        return
    logging.config.dictConfig(job_logging)  # type: ignore[arg-type]
    attempt = Attempt(resumed=True)
    try:
        train(composed, run_dir, attempt)
    except Exception as err:
        _settle(run_dir, err, attempt)
    finally:
        if attempt.trainer is not None and attempt.trainer.training_started:
            from translate.files import atomic_write

            # The run now trains with these overrides: a later resume composes the same config.
            atomic_write(saved, lambda tmp: OmegaConf.save(OmegaConf.create(overrides), tmp))


def _model_of(overrides: List[str]) -> Optional[str]:
    return next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), None)


_train_main = hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")(_task)


def _main(args: List[str]) -> None:
    multirun = "-m" in args or "--multirun" in args
    described = bool(HELP_FLAGS.intersection(args))
    try:
        run_dir = None if multirun or described else _resume_target(args)
        if run_dir is None:
            check_command_line("train", args)
    except TranslateError as err:
        fail(APP, err)
    if not runs_nothing(args):
        check_torch_pair(APP)
    if run_dir is not None:
        try:
            _resume(run_dir, args)
        except TranslateError as err:
            fail(APP, err)
        return
    _train_main()
    if sweeps.exit_status():
        sys.exit(sweeps.exit_status())


def main() -> None:
    register_schemas()
    # srun's tasks are started like torchrun's processes: cluster gives them torchrun's variables.
    if cluster.world_size() <= 1:
        _main(sys.argv[1:])
        return
    from translate.training import distributed  # torch.distributed is loaded only when several processes run

    with distributed.process_group():
        # Every process composes rank 0's run directory (conf/hydra/default.yaml reads this variable).
        os.environ["TRANSLATE_RUN_TIME"] = distributed.shared_start_time().strftime("%Y-%m-%d_%H-%M-%S")
        if not distributed.is_main():  # one log is enough; warnings still come from every process
            logging.getLogger("translate").setLevel(logging.WARNING)
        _main(sys.argv[1:])
