"""Two unpaired collections of images for CycleGAN: ``root/<split>A`` and ``root/<split>B``."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from translate.data.configs import ImageDataConfig
from translate.data.folders import FolderDataset, find_images, limit
from translate.data.sampling import SampleKey, sample_rng


class UnalignedDataset(FolderDataset):
    """Unpaired A and B images; items ``{"A": [input_nc, H, W], "B": [output_nc, H, W], "A_path", "B_path"}``.

    Split "train" reads ``root/trainA`` and ``root/trainB`` (recursively), "test" ``testA``/``testB``.
    With ``direction=BtoA`` the folders swap roles: A (the network input, ``input_nc`` channels) comes
    from ``<split>B``. ``len`` is the larger collection's size; item ``i`` is A image ``i mod |A|``
    with a B image drawn at random from the key's generator (``i mod |B|`` when ``serial_batches``).
    A and B are cropped and flipped independently. ``max_dataset_size`` caps each collection, then
    ``skip_bad`` drops from each the files that cannot be decoded or are smaller than the crop.
    """

    kind = "unaligned"

    def __init__(self, cfg: ImageDataConfig, split: str, train: bool) -> None:
        super().__init__(cfg, split, train)
        folders = [self.root / f"{split}A", self.root / f"{split}B"]
        if self.btoa:
            folders.reverse()
        self.a_paths, self.b_paths = (
            self._usable(
                limit(find_images(folder, self.expected), self.max_dataset_size),
                partial(self._check_image, channels=channels),
                folder,
            )
            for folder, channels in zip(folders, (self.input_nc, self.output_nc))
        )

    def __len__(self) -> int:
        return max(len(self.a_paths), len(self.b_paths))

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        index, gen = sample_rng(key)
        a_path = self.a_paths[index % len(self.a_paths)]
        if self.serial_batches:
            b_index = index % len(self.b_paths)
        else:
            b_index = int(torch.randint(len(self.b_paths), (), generator=gen))
        b_path = self.b_paths[b_index]
        return {
            "A": self._load(a_path, self.input_nc, gen),
            "B": self._load(b_path, self.output_nc, gen),
            "A_path": str(a_path),
            "B_path": str(b_path),
        }
