"""``translate-export``: compose its config with Hydra (``conf/export.yaml``) and export a generator
(see :mod:`translate.cli.exporting`)."""

from __future__ import annotations

import sys
from typing import List, Optional

import hydra
from omegaconf import DictConfig

from translate.cli.app import check_torch_pair, config_dir, fail, register_schemas, runs_nothing
from translate.cli.compose import check_command_line
from translate.errors import TranslateError

APP = "translate-export"


def _export_task(cfg: DictConfig) -> None:
    # Imported here so that --help, --cfg and the command-line checks answer without loading torch.
    from translate.cli.exporting import export_generator
    from translate.settings.validate import validate_export

    try:
        out = export_generator(validate_export(cfg))
    except TranslateError as err:
        fail(APP, err)
    print(f"{APP}: wrote {out}")


_export_main = hydra.main(config_path=config_dir(), config_name="export", version_base="1.3")(_export_task)


def main(argv: Optional[List[str]] = None) -> None:
    """``translate-export key=value ...``; ``argv`` replaces the command line's arguments (for callers in Python)."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    register_schemas()
    try:
        check_command_line("export", sys.argv[1:])
    except TranslateError as err:
        fail(APP, err)
    if not runs_nothing(sys.argv[1:]):
        check_torch_pair(APP)
    _export_main()
