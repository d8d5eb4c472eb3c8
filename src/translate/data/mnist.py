"""MNIST digits with their labels, for the class-conditional GAN."""

from __future__ import annotations

import functools
import gzip
from importlib import resources
from pathlib import Path
from typing import IO, Any, Dict, Tuple, cast

import torch
from torchvision.datasets import MNIST
from torchvision.transforms.v2 import functional as TF

from translate.data.base import SplitDataset
from translate.data.configs import MNISTDataConfig
from translate.data.sampling import SampleKey, sample_rng
from translate.errors import DatasetNotFoundError
from translate.files import folders_removed_on_failure

NUM_CLASSES = 10
SPLITS = ("train", "test")


@functools.lru_cache(maxsize=None)
def load_bundled(split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """The real-MNIST subset shipped in the package (see scripts/make_mnist_subset.py)."""
    with resources.files("translate.assets").joinpath("mnist_subset.pt.gz").open("rb") as raw, gzip.open(raw) as f:
        state = torch.load(cast(IO[bytes], f), weights_only=True)
    return state[f"{split}_images"], state[f"{split}_labels"].long()


def ensure_mnist(root: str, download: bool) -> None:
    """torchvision's MNIST under ``root/MNIST/raw``, downloaded there first when ``download`` (both splits);
    a failed download leaves no empty folders behind."""
    try:
        for train in (True, False):
            MNIST(root, train=train, download=False)
        return
    except RuntimeError:
        if not download:
            raise DatasetNotFoundError(_missing_message(root, "data.download=false")) from None
    try:
        with folders_removed_on_failure(Path(root) / "MNIST" / "raw"):
            MNIST(root, download=True)
    except Exception as err:  # torchvision raises several kinds when offline
        raise DatasetNotFoundError(_missing_message(root, f"download failed: {str(err).splitlines()[0][:120]}")) from None


def load_torchvision(root: str, split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """torchvision's MNIST under ``root/MNIST/raw`` (see :func:`ensure_mnist`)."""
    try:
        ds = MNIST(root, train=split == "train", download=False)
    except RuntimeError:
        raise DatasetNotFoundError(_missing_message(root, "its files are not there")) from None
    return ds.data, ds.targets


def _missing_message(root: str, why: str) -> str:
    raw = Path(root) / "MNIST" / "raw"
    return (
        f"MNIST not found in {raw} ({why}); put train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        f"t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte there (or their .gz), set data.root to a folder "
        f"holding MNIST/raw, or use data=mnist_subset (bundled, offline)"
    )


class MNISTDataset(SplitDataset):
    """MNIST resized to ``image_size`` (bilinear, antialiased), in [-1, 1].

    Items: ``{"image": Tensor[1, S, S], "label": int64}``. Splits: ``train`` and ``test``.
    """

    def __init__(self, cfg: MNISTDataConfig, split: str = "train", train: bool = True) -> None:
        if split not in SPLITS:
            raise DatasetNotFoundError(f"MNIST has no split {split!r}; it has {', '.join(SPLITS)}")
        images, labels = load_bundled(split) if cfg.bundled else load_torchvision(cfg.root, split)
        if cfg.max_dataset_size is not None:
            images, labels = images[: cfg.max_dataset_size], labels[: cfg.max_dataset_size]
        size = cfg.image_size
        # Resized once here, as uint8, so workers only index and scale.
        self.images = TF.resize(images[:, None], [size, size], antialias=True) if size != images.shape[-1] else images[:, None]
        self.labels = labels
        self.image_size = size

    @property
    def info(self) -> Dict[str, Any]:
        return {"input_nc": 1, "output_nc": 1, "image_size": self.image_size, "num_classes": NUM_CLASSES}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: SampleKey) -> Dict[str, torch.Tensor]:
        index, _ = sample_rng(key)
        return {"image": self.images[index].float() / 127.5 - 1.0, "label": self.labels[index]}
