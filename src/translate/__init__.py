"""translate: config-driven training and testing of image-to-image GANs."""

__version__ = "0.1.0"
