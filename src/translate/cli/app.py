"""What every entry point shares: where the YAML configs are, the schemas they extend, and how a user's
error is printed."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.core.config_store import ConfigStore

from translate.config import DeviceConfig, LoggerConfig, PathsConfig, TrainConfig, TrainerConfig
from translate.data.configs import ImageDataConfig, MNISTDataConfig
from translate.models import MODELS


def config_dir() -> str:
    """The YAML configs: inside the installed package, or ``conf/`` of a source checkout (editable install)."""
    packaged = Path(__file__).resolve().parent / "conf"
    return str(packaged if packaged.is_dir() else Path(__file__).resolve().parents[3] / "conf")


def fail(app: str, err: BaseException) -> None:
    """Print ``<app>: error: <one line>`` and exit with status 2."""
    message = str(err).strip()
    if "Original Traceback" in message:
        # Re-raised from a DataLoader worker: the message carries the worker's traceback; its last line is ours.
        message = message.splitlines()[-1].split(": ", 1)[-1]
    print(f"{app}: error: {message}", file=sys.stderr)
    sys.exit(2)


def register_schemas() -> None:
    """Put the schemas in Hydra's ConfigStore, where the YAML files name them first in their defaults lists
    (``/schema/trainer@_here_``, ...): the schemas hold every default, the YAML only what differs."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for group, node in (("trainer", TrainerConfig), ("device", DeviceConfig), ("logger", LoggerConfig), ("paths", PathsConfig)):
        store.store(group="schema", name=group, node=node)
    store.store(group="schema/data", name="mnist", node=MNISTDataConfig)
    store.store(group="schema/data", name="images", node=ImageDataConfig)
    for name, entry in MODELS.items():
        store.store(group="schema/model", name=name, node=entry.schema)


register_schemas()
