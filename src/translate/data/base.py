"""What every dataset here is: a torch Dataset indexed by a sampler key, sized, and able to say what it holds."""

from __future__ import annotations

from typing import Any, Dict

from torch.utils.data import Dataset


class SplitDataset(Dataset):
    """One split of a dataset. ``info``: ``input_nc``, ``output_nc``, ``image_size`` (None when images keep
    their own sizes) and, for labelled data, ``num_classes``; what a model is sized for."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> Dict[str, Any]:
        raise NotImplementedError

    @property
    def info(self) -> Dict[str, Any]:
        raise NotImplementedError
