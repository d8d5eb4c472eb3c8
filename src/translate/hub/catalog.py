"""The datasets and pretrained generators that ``translate-data`` knows how to fetch.

These are the files the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix) publishes.
Every URL is ``<base URL><remote path>``, so a mirror only has to replace the base. Local names are
the reference's names, except where a CycleGAN and a pix2pix file share one:

- datasets: the CycleGAN ``facades`` and ``maps`` archives are stored as ``cyclegan_facades`` and
  ``cyclegan_maps``; the pix2pix (aligned) ones keep ``facades`` and ``maps``;
- generators: the pix2pix ``sat2map``, ``map2sat`` and ``facades_label2photo`` are stored as
  ``pix2pix_sat2map``, ``pix2pix_map2sat`` and ``pix2pix_facades_label2photo``; the CycleGAN ones
  keep the plain names.

No checksums are published upstream, so every ``sha256`` is None; the first verified download of a
file records its hash, and later downloads must match it (see ``translate.hub.download``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, TypeVar

from translate.config import Choice
from translate.data.folders import is_image_file
from translate.errors import UnknownNameError

DEFAULT_BASE_URL = "http://efrosgans.eecs.berkeley.edu"


class Family(Choice):
    cyclegan = "cyclegan"
    pix2pix = "pix2pix"


@dataclass(frozen=True)
class Layout:
    """The folders a dataset must have once extracted.

    ``required`` folders must all exist, and at least one of ``one_of`` when it is not empty. A
    layout with neither is a plain collection of images, anywhere below the root.
    """

    name: str
    required: Tuple[str, ...] = ()
    one_of: Tuple[str, ...] = ()

    @property
    def folders(self) -> Tuple[str, ...]:
        return self.required + self.one_of

    def describe(self) -> str:
        if not self.folders:
            return "image files"
        parts = list(self.required)
        if self.one_of:
            parts.append(" or ".join(self.one_of))
        return ", ".join(parts)

    def missing(self, root: Path) -> list[str]:
        """What ``root`` lacks to have this layout (empty when it is complete)."""
        if not root.is_dir():
            return [f"the folder {root}"]
        if not self.folders:
            return [] if _has_image(root) else ["image files"]
        lacking = [name for name in self.required if not (root / name).is_dir()]
        if self.one_of and not any((root / name).is_dir() for name in self.one_of):
            lacking.append(" or ".join(self.one_of))
        return lacking


def _has_image(root: Path) -> bool:
    return any(is_image_file(p) and p.is_file() for p in root.rglob("*"))


UNALIGNED = Layout("unaligned", required=("trainA", "trainB", "testA", "testB"))
ALIGNED = Layout("aligned", required=("train",), one_of=("val", "test"))
IMAGES = Layout("images")


@dataclass(frozen=True)
class Entry:
    """One downloadable file. ``approx_mb`` is a rough size in megabytes (None when unknown)."""

    name: str
    family: Family
    remote_path: str
    approx_mb: Optional[int] = None
    sha256: Optional[str] = None
    note: str = ""

    def url(self, base_url: str = DEFAULT_BASE_URL) -> str:
        return base_url.rstrip("/") + self.remote_path

    @property
    def key(self) -> str:
        """The name under which this file's hash is recorded: the same for every mirror."""
        return self.remote_path.lstrip("/")


@dataclass(frozen=True)
class DatasetEntry(Entry):
    """An archive (zip or tar.gz) that extracts to ``<data dir>/<name>`` with ``layout``."""

    layout: Layout = UNALIGNED

    @property
    def suffix(self) -> str:
        return ".tar.gz" if self.remote_path.endswith(".tar.gz") else ".zip"


@dataclass(frozen=True)
class ModelEntry(Entry):
    """A generator state_dict, stored as ``<models dir>/<name>/latest_net_G.pth``."""


def _cyclegan_dataset(
    name: str,
    approx_mb: Optional[int],
    remote: Optional[str] = None,
    layout: Layout = UNALIGNED,
    family: Family = Family.cyclegan,
    note: str = "",
) -> DatasetEntry:
    return DatasetEntry(
        name=name,
        family=family,
        remote_path=f"/cyclegan/datasets/{remote or name}.zip",
        approx_mb=approx_mb,
        layout=layout,
        note=note,
    )


def _pix2pix_dataset(name: str, approx_mb: Optional[int]) -> DatasetEntry:
    return DatasetEntry(
        name=name,
        family=Family.pix2pix,
        remote_path=f"/pix2pix/datasets/{name}.tar.gz",
        approx_mb=approx_mb,
        layout=ALIGNED,
    )


# Sizes follow the float32 parameter counts in reference-facts.md: 11.38M for resnet_9blocks
# (CycleGAN), 54.41M for unet_256 (pix2pix).
_CYCLEGAN_MODEL_MB = 46
_PIX2PIX_MODEL_MB = 218


def _cyclegan_model(name: str) -> ModelEntry:
    return ModelEntry(
        name=name,
        family=Family.cyclegan,
        remote_path=f"/cyclegan/pretrained_models/{name}.pth",
        approx_mb=_CYCLEGAN_MODEL_MB,
    )


def _pix2pix_model(remote: str, local: Optional[str] = None) -> ModelEntry:
    return ModelEntry(
        name=local or remote,
        family=Family.pix2pix,
        remote_path=f"/pix2pix/models-pytorch/{remote}.pth",
        approx_mb=_PIX2PIX_MODEL_MB,
    )


E = TypeVar("E", bound=Entry)


def _by_name(*entries: E) -> Dict[str, E]:
    table = {entry.name: entry for entry in entries}
    if len(table) != len(entries):
        raise ValueError("two catalog entries share a name")
    return table


# approx_mb: rough, rounded archive sizes, None where not known. ae_photos and mini_colorization
# are plain image collections (checked only for images), not train/test splits.
DATASETS: Dict[str, DatasetEntry] = _by_name(
    _cyclegan_dataset("apple2orange", 75),
    _cyclegan_dataset("summer2winter_yosemite", 130),
    _cyclegan_dataset("horse2zebra", 110),
    _cyclegan_dataset("monet2photo", 290),
    _cyclegan_dataset("cezanne2photo", 270),
    _cyclegan_dataset("ukiyoe2photo", 280),
    _cyclegan_dataset("vangogh2photo", 290),
    _cyclegan_dataset("cyclegan_maps", 1400, remote="maps", note="unaligned; pix2pix's is 'maps'"),
    _cyclegan_dataset("cyclegan_facades", 34, remote="facades", note="unaligned; pix2pix's is 'facades'"),
    _cyclegan_dataset("iphone2dslr_flower", 320),
    _cyclegan_dataset("ae_photos", None, layout=IMAGES, note="test photos for the style_* generators"),
    _cyclegan_dataset("mini", None, note="tiny, for smoke tests"),
    _cyclegan_dataset("mini_pix2pix", None, layout=ALIGNED, family=Family.pix2pix, note="tiny, for smoke tests"),
    _cyclegan_dataset(
        "mini_colorization",
        None,
        layout=IMAGES,
        family=Family.pix2pix,
        note="tiny, for the reference's colorization model",
    ),
    _pix2pix_dataset("night2day", 1900),
    _pix2pix_dataset("edges2handbags", 8000),
    _pix2pix_dataset("edges2shoes", 2000),
    _pix2pix_dataset("facades", 30),
    _pix2pix_dataset("maps", 240),
)

MODELS: Dict[str, ModelEntry] = _by_name(
    *(
        _cyclegan_model(name)
        for name in (
            "horse2zebra",
            "zebra2horse",
            "apple2orange",
            "orange2apple",
            "summer2winter_yosemite",
            "winter2summer_yosemite",
            "monet2photo",
            "style_monet",
            "style_cezanne",
            "style_ukiyoe",
            "style_vangogh",
            "sat2map",
            "map2sat",
            "cityscapes_photo2label",
            "cityscapes_label2photo",
            "facades_photo2label",
            "facades_label2photo",
            "iphone2dslr_flower",
        )
    ),
    _pix2pix_model("edges2shoes"),
    _pix2pix_model("sat2map", "pix2pix_sat2map"),
    _pix2pix_model("map2sat", "pix2pix_map2sat"),
    _pix2pix_model("facades_label2photo", "pix2pix_facades_label2photo"),
    _pix2pix_model("day2night"),
)

# Names users try that are deliberately absent, with the reason.
_NOT_DISTRIBUTED = {
    "cityscapes": "its licence forbids redistribution: register at https://www.cityscapes-dataset.com and build the folders yourself",
}


def format_size(approx_mb: Optional[int]) -> str:
    if approx_mb is None:
        return "?"
    if approx_mb >= 1000:
        return f"~{approx_mb / 1000:.1f} GB"
    return f"~{approx_mb} MB"


def find_dataset(name: str) -> DatasetEntry:
    """The dataset called ``name``; `UnknownNameError` suggests close names otherwise."""
    return _find(name, DATASETS, "dataset", MODELS, "pretrained generator", "download-model")


def find_model(name: str) -> ModelEntry:
    """The pretrained generator called ``name``; `UnknownNameError` suggests close names otherwise."""
    return _find(name, MODELS, "pretrained generator", DATASETS, "dataset", "download")


def _find(
    name: str,
    table: Mapping[str, E],
    kind: str,
    other: Mapping[str, Entry],
    other_kind: str,
    other_command: str,
) -> E:
    if name in table:
        return table[name]
    if name in _NOT_DISTRIBUTED:
        raise UnknownNameError(f"{kind} '{name}' cannot be downloaded: {_NOT_DISTRIBUTED[name]}")
    if name in other:
        raise UnknownNameError(f"'{name}' is not a {kind} but a {other_kind}; run: translate-data {other_command} {name}")
    close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "run 'translate-data list' to see them all"
    raise UnknownNameError(f"unknown {kind} '{name}'; {hint}")
