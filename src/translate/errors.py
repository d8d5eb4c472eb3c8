"""Every error a user can cause and fix: one hierarchy, so the entry points catch ``TranslateError`` alone
and print its one-line message instead of a traceback.

The kinds keep the built-in base a caller would expect (a missing dataset is also a FileNotFoundError,
a bad value also a ValueError), so code written against those still works.
"""

from __future__ import annotations


class TranslateError(Exception):
    """A user-facing problem; its message is one line that names the file, key or value and says what would work."""


class ConfigError(TranslateError, ValueError):
    """A configuration problem; the message names the key."""


class DataError(TranslateError):
    """A data problem: a dataset or file that is missing, unusable or unknown."""


class UnknownNameError(DataError):
    """A dataset or generator name that the catalog does not hold."""


class DownloadError(DataError):
    """A download, verification or extraction that failed; nothing but ``<file>.part`` is left."""


class DatasetMissingError(DataError):
    """A dataset that training needs is not on disk; the message gives the command that fetches it."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A dataset folder is missing or holds no images; the message names it and the expected layout."""


class DatasetLayoutError(DataError, ValueError):
    """The folders exist but do not form a usable dataset (ambiguous layout, unpaired files)."""


class BadImageError(DataError, ValueError):
    """An image file cannot be decoded (corrupt, truncated, empty, not an image); names the file.
    Also raised, naming the folder, when ``data.skip_bad`` leaves no usable image at all."""


class ImageTooSmallError(DataError, ValueError):
    """An image smaller than the crop (or than the network's minimum); names the file and both sizes."""


class CheckpointError(TranslateError, ValueError):
    """A checkpoint that is missing, unreadable or does not fit the model; the message names the file."""


class TrainingError(TranslateError, RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says where and what to do."""


class DeviceError(TranslateError, RuntimeError):
    """The requested device is not available here; the message says which one would work."""


class ExportError(TranslateError, RuntimeError):
    """A generator that cannot be written in the requested format; the message says what would work."""


class InputError(TranslateError, ValueError):
    """An input a trained generator cannot take (wrong channels, dtype or range); the message names it."""
