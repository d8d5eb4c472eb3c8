"""``translate-test``: compose the test config with Hydra and test a run (see :mod:`translate.cli.testing`)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from translate.cli.app import check_torch_pair, config_dir, fail, register_schemas, runs_nothing
from translate.cli.compose import check_command_line
from translate.errors import TranslateError

APP = "translate-test"


def _test_task(cfg: DictConfig) -> None:
    # Imported here so that --help, --cfg and the command-line checks answer without loading torch.
    from translate.cli.testing import run_test
    from translate.settings.validate import validate_test

    try:
        out = run_test(validate_test(cfg))
    except TranslateError as err:
        fail(APP, err)
    print(f"{APP}: wrote {out}")


_test_main = hydra.main(config_path=config_dir(), config_name="test", version_base="1.3")(_test_task)


def main() -> None:
    register_schemas()
    try:
        check_command_line("test", sys.argv[1:])
    except TranslateError as err:
        fail(APP, err)
    if not runs_nothing(sys.argv[1:]):
        check_torch_pair(APP)
    _test_main()
