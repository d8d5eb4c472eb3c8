"""translate: config-driven training and testing of image-to-image GANs."""

from typing import Any

from translate.version import __version__

__all__ = ["__version__", "load", "Translator"]


def __getattr__(name: str) -> Any:
    # translate.load is imported on first use, so that `import translate` (and every command's --help) stays light.
    if name in ("load", "Translator"):
        from translate import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'translate' has no attribute {name!r}")
