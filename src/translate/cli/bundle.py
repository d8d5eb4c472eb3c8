"""``translate-bundle``: write a run's generators as a bundle you can hand over (conf/bundle.yaml; the format:
:mod:`translate.inference.bundle`)."""

from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig

from translate.cli.command import hydra_command


def _bundle(cfg: DictConfig) -> Optional[str]:
    from translate.inference.bundle import write_bundle
    from translate.settings.validate import validate_bundle

    typed = validate_bundle(cfg)
    out = write_bundle(str(typed.run), typed.output, typed.weights)
    return f"wrote {out}; load it with translate.load({str(out)!r}) or translate-apply run={out}"


main = hydra_command("translate-bundle", "bundle", _bundle)
