"""``translate-test``: compose the test config with Hydra and test a run (see :mod:`translate.cli.testing`)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from translate.cli.app import config_dir, fail
from translate.cli.overrides import check_overrides
from translate.errors import TranslateError


def _test_task(cfg: DictConfig) -> None:
    # Imported here so that --help, --cfg and Hydra's own errors answer without loading torch.
    from translate.cli.testing import run_test

    try:
        out = run_test(cfg)
    except TranslateError as err:
        fail("translate-test", err)
    print(f"translate-test: wrote {out}")


_test_main = hydra.main(config_path=config_dir(), config_name="test", version_base="1.3")(_test_task)


def main() -> None:
    try:
        check_overrides("test", sys.argv[1:])
    except TranslateError as err:
        fail("translate-test", err)
    _test_main()
