"""translate: config-driven training and testing of image-to-image GANs."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # translate.load is imported on first use, so that `import translate` (and every command's --help) stays light.
    if name in ("load", "Translator"):
        from translate import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'translate' has no attribute {name!r}")
