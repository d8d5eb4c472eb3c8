"""The errors a user can cause and fix; entry points print their one-line message instead of a traceback."""

from __future__ import annotations

from translate.catalog import DataError
from translate.checkpoint import CheckpointError
from translate.config import ConfigError
from translate.data.folders import BadImageError, DatasetLayoutError, DatasetNotFoundError
from translate.data.transforms import ImageTooSmallError
from translate.devices import DeviceError
from translate.engine import TrainingError

USER_ERRORS = (
    ConfigError, CheckpointError, DataError, DatasetNotFoundError, DatasetLayoutError, BadImageError, ImageTooSmallError,
    DeviceError, TrainingError,
)
