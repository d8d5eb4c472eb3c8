"""``translate-apply``: compose its config with Hydra (``conf/apply.yaml``) and translate images or a video
with a trained generator (see :mod:`translate.inference.apply`)."""

from __future__ import annotations

import sys
from typing import List, Optional

import hydra
from omegaconf import DictConfig

from translate.cli.app import check_torch_pair, config_dir, fail, register_schemas, runs_nothing
from translate.cli.compose import check_command_line
from translate.errors import TranslateError

APP = "translate-apply"


def _apply_task(cfg: DictConfig) -> None:
    # Imported here so that --help, --cfg and the command-line checks answer without loading torch.
    from translate.inference.apply import run_apply
    from translate.settings.validate import validate_apply

    try:
        report = run_apply(validate_apply(cfg))
    except TranslateError as err:
        fail(APP, err)
    print(f"{APP}: {report}")


_apply_main = hydra.main(config_path=config_dir(), config_name="apply", version_base="1.3")(_apply_task)


def main(argv: Optional[List[str]] = None) -> None:
    """``translate-apply key=value ...``; ``argv`` replaces the command line's arguments (for callers in Python)."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    register_schemas()
    try:
        check_command_line("apply", sys.argv[1:])
    except TranslateError as err:
        fail(APP, err)
    if not runs_nothing(sys.argv[1:]):
        check_torch_pair(APP)
    _apply_main()
