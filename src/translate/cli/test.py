"""``translate-test``: test a run (conf/test.yaml; the work: :mod:`translate.cli.testing`)."""

from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig

from translate.cli.command import hydra_command


def _test(cfg: DictConfig) -> Optional[str]:
    from translate.cli.testing import run_test
    from translate.settings.validate import validate_test

    return f"wrote {run_test(validate_test(cfg))}"


main = hydra_command("translate-test", "test", _test)
