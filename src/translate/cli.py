"""Console entry points: ``translate-train`` and ``translate-test`` (Hydra apps)."""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("translate")


def config_dir() -> str:
    """The YAML configs: inside the installed package, or ``conf/`` of a source checkout (editable install)."""
    packaged = Path(__file__).resolve().parent / "conf"
    return str(packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf")


def _fail(app: str, err: BaseException) -> None:
    message = str(err).strip()
    if "Original Traceback" in message:
        # Re-raised from a DataLoader worker: the message carries the worker's traceback; its last line is ours.
        message = message.splitlines()[-1].split(": ", 1)[-1]
    print(f"{app}: error: {message}", file=sys.stderr)
    sys.exit(2)


def _saved_overrides(args: List[str]) -> Optional[Path]:
    """``<run>/.hydra/overrides.yaml`` of the run that ``resume=`` names, or None."""
    resume = next((a.split("=", 1)[1] for a in args if a.startswith("resume=")), None)
    if not resume:
        return None
    path = Path(resume).expanduser()
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
        _fail("translate-train", ValueError(
            f"resume={run_dir} is a model={ran} run; a resumed run keeps its model: drop model={asked} "
            "(or start a new run without resume=)"
        ))
    previous = [o for o in OmegaConf.load(saved) if not o.startswith(("resume=", "hydra.run.dir="))]
    return [*previous, *args, f"hydra.run.dir={run_dir}"]


def _train_task(cfg: DictConfig) -> None:
    # Imported here so that --help, --cfg and Hydra's own errors answer without loading torch.
    from translate.config import validate
    from translate.distributed import is_main
    from translate.engine import Trainer
    from translate.errors import USER_ERRORS

    try:
        typed = validate(cfg)
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        if is_main():
            OmegaConf.save(typed, run_dir / "config.yaml")
        Trainer(typed, run_dir).fit()
    except USER_ERRORS as err:
        _fail("translate-train", err)


def _test_task(cfg: DictConfig) -> None:
    from translate.errors import USER_ERRORS
    from translate.testing import run_test

    try:
        out = run_test(cfg)
    except USER_ERRORS as err:
        _fail("translate-test", err)
    print(f"translate-test: wrote {out}")


_train_main = hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")(_train_task)
_test_main = hydra.main(config_path=config_dir(), config_name="test", version_base="1.3")(_test_task)


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
    from translate import distributed

    _shared_start = distributed.shared_start_time()
    return args if distributed.is_main() else [*args, "hydra.output_subdir=null", "hydra/job_logging=stdout"]


def _train(args: List[str]) -> None:
    saved = _saved_overrides(args)
    before = saved.read_bytes() if saved is not None else None
    sys.argv = [sys.argv[0], *_resume_argv(args)]
    try:
        _train_main()
    except SystemExit as exit_:
        # Hydra rewrote the run's overrides.yaml for this attempt; a failed one must not change later resumes.
        if exit_.code and saved is not None:
            saved.write_bytes(before)
        raise


def train() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        _train(sys.argv[1:])
        return
    from translate import distributed  # torch is loaded only when torchrun started several processes

    with distributed.process_group():
        _train(_distributed_argv(sys.argv[1:]))


def test() -> None:
    _test_main()
