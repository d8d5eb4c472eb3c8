"""CUT's projection head (Park et al. 2020, Sec. 3.2): patches sampled from the generator's encoder features,
each passed through a small MLP ``H_l`` per layer and scaled to unit length; the PatchNCE loss
(``translate.losses.patch_nce_loss``) compares them."""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn


def sample_patch_ids(features: Sequence[torch.Tensor], num_patches: int) -> List[torch.Tensor]:
    """For each feature map ``[N, C, H, W]``: ``min(num_patches, H * W)`` distinct positions (flat indices
    into ``H * W``, int64 on the map's device) drawn uniformly without replacement, the same positions for
    every image of the batch, as in the authors' code.

    Drawn from the CPU generator of the global torch random state (which checkpoints save, so a resumed run
    draws the same patches), then moved: the authors moved to NumPy after ``torch.randperm`` on the GPU
    failed (taesungp/contrastive-unpaired-translation#83).
    """
    return [torch.randperm(f.shape[2] * f.shape[3])[:num_patches].to(f.device) for f in features]


class PatchSampleF(nn.Module):
    """The authors' ``netF`` (``mlp_sample``): the patches at given positions of each feature map, each
    mapped by that layer's MLP ``H_l`` (Linear(C_l, nc) -> ReLU -> Linear(nc, nc)) and divided by its L2 norm.

    The MLPs are sized from ``in_channels``, the channels of the generator layers PatchNCE taps (3, 128, 256,
    256, 256 for CUT's default ResNet), and named ``mlp_<l>`` as in the authors' code, so their ``netF``
    state dicts load.

    Shapes: ``forward(features, patch_ids)`` with ``features[l]`` ``[N, C_l, H_l, W_l]`` and ``patch_ids[l]``
    ``[P_l]`` (see :func:`sample_patch_ids`) -> ``out[l]`` ``[N * P_l, nc]``, image-major: row
    ``n * P_l + p`` is patch ``p`` of image ``n``; rows have unit length (float32).
    """

    def __init__(self, in_channels: Sequence[int], nc: int = 256) -> None:
        super().__init__()
        self.num_layers = len(in_channels)
        for i, channels in enumerate(in_channels):
            self.add_module(f"mlp_{i}", nn.Sequential(nn.Linear(channels, nc), nn.ReLU(), nn.Linear(nc, nc)))

    def forward(self, features: Sequence[torch.Tensor], patch_ids: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if len(features) != self.num_layers or len(patch_ids) != self.num_layers:
            raise ValueError(f"PatchSampleF has {self.num_layers} layers; got {len(features)} feature maps and {len(patch_ids)} index sets")
        out = []
        for i, (feature, ids) in enumerate(zip(features, patch_ids)):
            # [N, C, H, W] -> [N, H * W, C] -> the chosen positions of every image, stacked image by image
            patches = getattr(self, f"mlp_{i}")(feature.permute(0, 2, 3, 1).flatten(1, 2)[:, ids, :].flatten(0, 1))
            # In float32: under mixed precision the dot products of these vectors are divided by a temperature
            # of 0.07, which would magnify bf16's rounding of the norm.
            patches = patches.float()
            out.append(patches / (patches.norm(p=2, dim=1, keepdim=True) + 1e-7))
        return out
