"""Applying trained generators: the Python API (:func:`load`), images of any size in tiles
(:mod:`translate.inference.tiles`), image files at full precision (:mod:`translate.inference.images`), video
(:mod:`translate.inference.video`) and the ``translate-apply`` command's work (:mod:`translate.inference.apply`)."""

from translate.inference.translator import Translator, load

__all__ = ["Translator", "load"]
