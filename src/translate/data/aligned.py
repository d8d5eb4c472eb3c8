"""Paired images for pix2pix.

Two layouts are read; which one ``data.root`` holds is detected:

(a) the reference layout, ``root/<split>/**``: each file holds A and B side by side (A left, B right),
    split at half the width (an odd last column is dropped so both halves have the same size);
(b) ``root/A/<split>/**`` and ``root/B/<split>/**``: separate files paired by their path relative to
    the split folder without the extension (``A/train/x/001.png`` pairs with ``B/train/x/001.jpg``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from translate.data.configs import ImageDataConfig, Preprocess
from translate.data.folders import FolderDataset, convert_channels, find_images, limit, load_image
from translate.data.sampling import SampleKey, sample_rng
from translate.errors import DatasetLayoutError, DatasetNotFoundError

_SHOWN = 5


def _examples(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    keyed: dict[str, Path] = {}
    for path in files:
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in keyed:
            raise DatasetLayoutError(
                f"{keyed[key]} and {path}: two images named {key!r}; pairs are matched by name without extension, so keep one"
            )
        keyed[key] = path
    return keyed


def match_pairs(a_dir: Path, b_dir: Path) -> list[tuple[Path, Path]]:
    """Pair the images of ``a_dir`` and ``b_dir`` by relative path without extension, sorted.

    Raises:
        DatasetLayoutError: some images have no partner (the first few of each side are named).
    """
    a = _by_stem(find_images(a_dir, f"images paired by name with {b_dir}"), a_dir)
    b = _by_stem(find_images(b_dir, f"images paired by name with {a_dir}"), b_dir)
    sides = ((sorted(a.keys() - b.keys()), a_dir, b_dir), (sorted(b.keys() - a.keys()), b_dir, a_dir))
    problems = [f"{len(names)} in {here} have no partner in {there} ({_examples(names)})" for names, here, there in sides if names]
    if problems:
        raise DatasetLayoutError(f"unpaired images (pairs match by name without extension): {'; '.join(problems)}")
    return [(a[key], b[key]) for key in sorted(a)]


class AlignedDataset(FolderDataset):
    """Aligned pairs; items ``{"A": [input_nc, H, W], "B": [output_nc, H, W], "A_path", "B_path"}``.

    A is the network input and B the target: with ``direction=BtoA`` the right half (layout a) or the
    ``B`` file (layout b) becomes A. Both get the same crop and flip. ``len`` is the number of pairs,
    capped by ``max_dataset_size``; then ``skip_bad`` drops every pair with a file that cannot be
    decoded, is smaller than the crop, or (layout b) does not match its partner's size.
    """

    kind = "aligned"

    def __init__(self, cfg: ImageDataConfig, split: str, train: bool) -> None:
        super().__init__(cfg, split, train)
        combined = self.root / split
        a_dir, b_dir = self.root / "A" / split, self.root / "B" / split
        separate = a_dir.is_dir() or b_dir.is_dir()
        if combined.is_dir() and separate:
            raise DatasetLayoutError(
                f"{self.root}: holds both {combined} (side-by-side pairs) and "
                f"{a_dir if a_dir.is_dir() else b_dir} (separate A/B files); keep one layout"
            )
        if not combined.is_dir() and not separate:
            raise DatasetNotFoundError(f"{self.root}: found neither {combined} nor {a_dir} + {b_dir}; expected {self.expected}")
        self.side_by_side = combined.is_dir()
        if self.side_by_side:
            pairs = [(p, p) for p in find_images(combined, self.expected)]
        else:
            pairs = match_pairs(a_dir, b_dir)
        if self.btoa:
            pairs = [(b, a) for a, b in pairs]
        where = combined if self.side_by_side else f"{a_dir} and {b_dir}"
        self.pairs = self._usable(limit(pairs, self.max_dataset_size), self._check_pair, where)

    def __len__(self) -> int:
        return len(self.pairs)

    def _read_pair(self, a_path: Path, b_path: Path) -> tuple[Image.Image, Image.Image]:
        if not self.side_by_side:
            a, b = load_image(a_path, self.input_nc), load_image(b_path, self.output_nc)
            # A shared crop window only lands on corresponding pixels if both images have one size.
            if a.size != b.size and self.transform.preprocess != Preprocess.resize_and_crop:
                raise DatasetLayoutError(
                    f"{a_path} ({a.size[0]}x{a.size[1]}) and {b_path} ({b.size[0]}x{b.size[1]}): "
                    f"a pair must have one size with data.preprocess={self.transform.preprocess}; "
                    "resize them or use resize_and_crop"
                )
            return a, b
        ab = load_image(a_path, max(self.input_nc, self.output_nc))
        w, h = ab.size
        half = w // 2
        if half < 1:
            raise DatasetLayoutError(f"{a_path}: {w}x{h} is too narrow to hold A and B side by side")
        left, right = ab.crop((0, 0, half, h)), ab.crop((half, 0, 2 * half, h))
        a, b = (right, left) if self.btoa else (left, right)
        return convert_channels(a, self.input_nc), convert_channels(b, self.output_nc)

    def _check_pair(self, pair: tuple[Path, Path]) -> None:
        """Raise what reading ``pair`` as an item would (see ``FolderDataset._check_image``)."""
        a, _ = self._read_pair(*pair)
        self._check_size(a, pair[0])

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        index, gen = sample_rng(key)
        a_path, b_path = self.pairs[index]
        a, b = self._read_pair(a_path, b_path)
        params = self.transform.sample(a.size, gen, a_path)
        return {
            "A": self.transform(a, params),
            "B": self.transform(b, params),
            "A_path": str(a_path),
            "B_path": str(b_path),
        }
