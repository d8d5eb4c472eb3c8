"""What every entry point shares: where the YAML configs are, the schemas they extend, how a user's error is
printed, and the check that the installed torch and torchvision work together."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from hydra.core.config_store import ConfigStore

from translate.config import (
    ApplyConfig,
    BundleConfig,
    CsvConfig,
    DemoConfig,
    DeviceConfig,
    ExportConfig,
    LoggerConfig,
    MlflowConfig,
    PathsConfig,
    TensorBoardConfig,
    TestConfig,
    TrainerConfig,
    WandbConfig,
)
from translate.data.configs import ImageDataConfig, MNISTDataConfig
from translate.errors import TranslateError
from translate.models import MODELS
from translate.settings.schema import TrainConfig


def config_dir() -> str:
    """The YAML configs: inside the installed package, or ``conf/`` of a source checkout (editable install)."""
    packaged = Path(__file__).resolve().parent.parent / "conf"
    return str(packaged if packaged.is_dir() else Path(__file__).resolve().parents[3] / "conf")


def fail(app: str, err: BaseException) -> NoReturn:
    """Print ``<app>: error: <one line>`` and exit with status 2."""
    message = str(err).strip()
    if "Original Traceback" in message:
        # Re-raised from a DataLoader worker: the message carries the worker's traceback; its last line is ours.
        message = message.splitlines()[-1].split(": ", 1)[-1]
    print(f"{app}: error: {message}", file=sys.stderr)
    sys.exit(2)


def register_schemas() -> None:
    """Put the schemas in Hydra's ConfigStore, where the YAML files name them first in their defaults lists
    (``/schema_trainer@_here_``, ...): the schemas hold every default, the YAML only what differs. They are
    stored as top-level configs, not as a group, so ``--help`` lists only the groups users choose from."""
    store = ConfigStore.instance()
    for name, node in (
        ("train_schema", TrainConfig),
        ("test_schema", TestConfig),
        ("export_schema", ExportConfig),
        ("apply_schema", ApplyConfig),
        ("bundle_schema", BundleConfig),
        ("demo_schema", DemoConfig),
        ("schema_trainer", TrainerConfig),
        ("schema_device", DeviceConfig),
        ("schema_logger", LoggerConfig),
        # One per tracker: conf/logger/<tracker>.yaml sets only its own section, so a list of them composes.
        ("schema_logger_tensorboard", TensorBoardConfig),
        ("schema_logger_csv", CsvConfig),
        ("schema_logger_wandb", WandbConfig),
        ("schema_logger_mlflow", MlflowConfig),
        ("schema_paths", PathsConfig),
        ("schema_data_mnist", MNISTDataConfig),
        ("schema_data_images", ImageDataConfig),
    ):
        store.store(name=name, node=node)
    for name, entry in MODELS.items():
        store.store(name=f"schema_model_{name}", node=entry.schema)


#: Hydra's flags that only describe the app: they answer without composing a run, so without torch.
HELP_FLAGS = frozenset({"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"})


def runs_nothing(args: Sequence[str]) -> bool:
    """Whether the command line only describes the app or prints its config (``--help``, ``--cfg job``)."""
    return bool(HELP_FLAGS.intersection(args)) or "--cfg" in args or "-c" in args


def check_torch_pair(app: str) -> None:
    """Stop with one line when the installed torchvision does not work with the installed torch (a pair
    from different releases fails at import, e.g. ``operator torchvision::nms does not exist``)."""
    try:
        import torchvision  # noqa: F401  (importing it is the check)
    except (RuntimeError, ImportError, OSError) as err:
        versions = {name: _version(name) for name in ("torch", "torchvision")}
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        fail(
            app,
            TranslateError(
                f"torch {versions['torch']} and torchvision {versions['torchvision']} do not work together ({detail}); "
                "install a matching pair, e.g. pip install --force-reinstall torch torchvision (see pytorch.org/get-started)"
            ),
        )


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"
