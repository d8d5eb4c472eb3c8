"""A model made of one generator of the reference implementation (``latest_net_G.pth``), for translate-test."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from translate.models.base import DataInfo, OneWayModel


class GeneratorOnly(OneWayModel):
    """One generator applied one way, as the reference tests a single generator file: real_A -> fake_B."""

    optimizer_groups = {"G": ("G",)}
    data_kinds = ("single", "aligned", "unaligned")
    evaluation = "one_way"

    def __init__(self, netG: nn.Module, cfg: Any, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.netG = netG
