"""Fixtures over :mod:`helpers` for the tests that take them as arguments."""

from __future__ import annotations

import subprocess
from typing import Callable

import pytest
import torch
from omegaconf import DictConfig

import helpers

# The machines that run these tests have few cores, shared: one thread per process avoids the
# oversubscription that makes tiny convolutions many times slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def compose_config() -> Callable[..., DictConfig]:
    """:func:`helpers.compose_config`."""
    return helpers.compose_config


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """:func:`helpers.run_cli`."""
    return helpers.run_cli
