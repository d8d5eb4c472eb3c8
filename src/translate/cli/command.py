"""The one skeleton of the Hydra commands that use a trained generator (translate-test, -export, -apply,
-bundle, -demo): the command line checked before Hydra composes it, torch checked only when something runs,
the work done by a task that returns the line to print, and every user error as one line."""

from __future__ import annotations

import sys
from typing import Callable, List, Optional

import hydra
from omegaconf import DictConfig

from translate.cli.app import check_torch_pair, config_dir, fail, register_schemas, runs_nothing
from translate.cli.compose import check_command_line
from translate.errors import TranslateError

#: A command's work: its composed config in, the line it ends with out (None: nothing to add).
Task = Callable[[DictConfig], Optional[str]]


def hydra_command(app: str, config_name: str, task: Task) -> Callable[[Optional[List[str]]], None]:
    """The console script ``app`` over ``conf/<config_name>.yaml``: ``main(argv=None)``, where ``argv`` replaces
    the command line's arguments (for callers in Python). ``task`` imports what it needs itself, so that
    ``--help``, ``--cfg`` and the command-line checks answer without loading torch."""

    def run_task(cfg: DictConfig) -> None:
        try:
            line = task(cfg)
        except TranslateError as err:
            fail(app, err)
        if line:
            print(f"{app}: {line}")

    hydra_main = hydra.main(config_path=config_dir(), config_name=config_name, version_base="1.3")(run_task)

    def main(argv: Optional[List[str]] = None) -> None:
        if argv is not None:
            sys.argv = [sys.argv[0], *argv]
        register_schemas()
        try:
            check_command_line(config_name, sys.argv[1:])
        except TranslateError as err:
            fail(app, err)
        if not runs_nothing(sys.argv[1:]):
            check_torch_pair(app)
        hydra_main()

    main.__doc__ = f"``{app} key=value ...`` (conf/{config_name}.yaml)."
    return main
