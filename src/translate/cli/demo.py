"""``translate-demo``: compose its config with Hydra (``conf/demo.yaml``) and serve a local page that translates
the images dropped on it (see :mod:`translate.cli.demo_page`; Gradio, the ``demo`` extra)."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, List, Optional

import hydra
from omegaconf import DictConfig

from translate.cli.app import check_torch_pair, config_dir, fail, register_schemas, runs_nothing
from translate.cli.compose import check_command_line
from translate.config import DemoConfig, to_typed
from translate.errors import ConfigError, TranslateError

APP = "translate-demo"


def validate_demo(cfg: Any) -> DemoConfig:
    """translate-demo's composed config as a checked :class:`DemoConfig`."""
    typed = to_typed(DemoConfig, cfg)
    typed.check()
    return typed


def _demo_task(cfg: DictConfig) -> None:
    try:
        typed = validate_demo(cfg)
        if importlib.util.find_spec("gradio") is None:
            raise ConfigError('translate-demo needs Gradio: pip install "translate[demo]"')
        # Imported here so that --help, --cfg and the command-line checks answer without loading torch.
        from translate.cli.demo_page import serve

        serve(typed)
    except TranslateError as err:
        fail(APP, err)


_demo_main = hydra.main(config_path=config_dir(), config_name="demo", version_base="1.3")(_demo_task)


def main(argv: Optional[List[str]] = None) -> None:
    """``translate-demo key=value ...``; ``argv`` replaces the command line's arguments (for callers in Python)."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    register_schemas()
    try:
        check_command_line("demo", sys.argv[1:])
    except TranslateError as err:
        fail(APP, err)
    if not runs_nothing(sys.argv[1:]):
        check_torch_pair(APP)
    _demo_main()
