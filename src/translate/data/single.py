"""One folder of images, for one-way inference (e.g. a CycleGAN generator applied to new photos)."""

from __future__ import annotations

from functools import partial
from typing import Any

from translate.data.configs import ImageDataConfig
from translate.data.folders import FolderDataset, find_images, limit
from translate.data.sampling import SampleKey, sample_rng


class SingleDataset(FolderDataset):
    """Every image under a folder; items ``{"A": [input_nc, H, W], "A_path"}``.

    The folder is ``root/<split>`` when that exists, else ``root`` itself, so ``data.root`` may name
    a dataset (``.../horse2zebra`` with split ``testA``) or a plain folder of images (split ignored).
    Images are found recursively; ``max_dataset_size`` caps their number, then ``skip_bad`` drops
    the files that cannot be decoded or are smaller than the crop (each logged).
    """

    kind = "single"

    def __init__(self, cfg: ImageDataConfig, split: str, train: bool) -> None:
        super().__init__(cfg, split, train)
        folder = self.root / split if (self.root / split).is_dir() else self.root
        paths = limit(find_images(folder, self.expected), self.max_dataset_size)
        self.paths = self._usable(paths, partial(self._check_image, channels=self.input_nc), folder)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        index, gen = sample_rng(key)
        path = self.paths[index]
        return {"A": self._load(path, self.input_nc, gen), "A_path": str(path)}
