"""``translate-bundle``: compose its config with Hydra (``conf/bundle.yaml``) and write a run's generators as a
bundle you can hand over (see :mod:`translate.inference.bundle`)."""

from __future__ import annotations

import sys
from typing import Any, List, Optional

import hydra
from omegaconf import DictConfig

from translate.cli.app import check_torch_pair, config_dir, fail, register_schemas, runs_nothing
from translate.cli.compose import check_command_line
from translate.config import BundleConfig, to_typed
from translate.errors import TranslateError

APP = "translate-bundle"


def validate_bundle(cfg: Any) -> BundleConfig:
    """translate-bundle's composed config as a checked :class:`BundleConfig`."""
    typed = to_typed(BundleConfig, cfg)
    typed.check()
    return typed


def _bundle_task(cfg: DictConfig) -> None:
    # Imported here so that --help, --cfg and the command-line checks answer without loading torch.
    from translate.inference.bundle import write_bundle

    try:
        typed = validate_bundle(cfg)
        out = write_bundle(str(typed.run), typed.output, typed.weights)
    except TranslateError as err:
        fail(APP, err)
    print(f"{APP}: wrote {out}; load it with translate.load({str(out)!r}) or translate-apply run={out}")


_bundle_main = hydra.main(config_path=config_dir(), config_name="bundle", version_base="1.3")(_bundle_task)


def main(argv: Optional[List[str]] = None) -> None:
    """``translate-bundle key=value ...``; ``argv`` replaces the command line's arguments (for callers in Python)."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    register_schemas()
    try:
        check_command_line("bundle", sys.argv[1:])
    except TranslateError as err:
        fail(APP, err)
    if not runs_nothing(sys.argv[1:]):
        check_torch_pair(APP)
    _bundle_main()
