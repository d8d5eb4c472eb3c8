"""``translate-demo``: serve a local page that translates the images dropped on it (conf/demo.yaml; the page:
:mod:`translate.cli.demo_page`, Gradio from the ``demo`` extra)."""

from __future__ import annotations

import importlib.util
from typing import Optional

from omegaconf import DictConfig

from translate.cli.command import hydra_command
from translate.errors import ConfigError


def _demo(cfg: DictConfig) -> Optional[str]:
    from translate.settings.validate import validate_demo

    typed = validate_demo(cfg)
    if importlib.util.find_spec("gradio") is None:
        raise ConfigError('translate-demo needs Gradio: pip install "translate[demo]"')
    from translate.cli.demo_page import serve

    serve(typed)
    return None


main = hydra_command("translate-demo", "demo", _demo)
