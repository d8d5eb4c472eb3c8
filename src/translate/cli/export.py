"""``translate-export``: export a generator (conf/export.yaml; the work: :mod:`translate.cli.exporting`)."""

from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig

from translate.cli.command import hydra_command


def _export(cfg: DictConfig) -> Optional[str]:
    from translate.cli.exporting import export_generator
    from translate.settings.validate import validate_export

    return f"wrote {export_generator(validate_export(cfg))}"


main = hydra_command("translate-export", "export", _export)
