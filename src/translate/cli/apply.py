"""``translate-apply``: translate images or a video with a trained generator (conf/apply.yaml; the work:
:mod:`translate.inference.apply`)."""

from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig

from translate.cli.command import hydra_command


def _apply(cfg: DictConfig) -> Optional[str]:
    from translate.inference.apply import run_apply
    from translate.settings.validate import validate_apply

    return str(run_apply(validate_apply(cfg)))


main = hydra_command("translate-apply", "apply", _apply)
