"""Fixtures over :mod:`helpers` for the tests that take them as arguments."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest
import torch
from omegaconf import DictConfig

import helpers

# The machines that run these tests have few cores, shared: one thread per process avoids the
# oversubscription that makes tiny convolutions many times slower. TRANSLATE_TEST_THREADS=2 runs them on
# two (another order of the sums: scripts/outcome_spread.py checks the learning tests' outcomes under it).
torch.set_num_threads(int(os.environ.get("TRANSLATE_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def compose_config() -> Callable[..., DictConfig]:
    """:func:`helpers.compose_config`."""
    return helpers.compose_config


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """:func:`helpers.run_cli`."""
    return helpers.run_cli


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory) -> Path:
    """One step of a tiny cGAN on the bundled digits, without a moving average (model.ema.decay 0)."""
    run = tmp_path_factory.mktemp("cgan") / "run"
    helpers.train(run, *helpers.TINY, "logger=none", "trainer.max_steps=1")
    return run


@pytest.fixture
def outcome(request) -> Callable[..., None]:
    """``outcome(**statistics)``: one JSON line (the test's node id and the statistics) appended to the file
    $TRANSLATE_OUTCOME_LOG names, when set; scripts/outcome_spread.py collects them to show what a learning
    test measures under each numeric path. Nothing happens without the variable."""
    path = os.environ.get("TRANSLATE_OUTCOME_LOG")

    def record(**statistics: object) -> None:
        if path:
            with open(path, "a", encoding="utf-8") as log:
                log.write(json.dumps({"test": request.node.nodeid, **statistics}) + "\n")

    return record
