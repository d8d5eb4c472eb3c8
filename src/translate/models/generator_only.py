"""A model made of one generator of the reference implementation (``latest_net_G.pth``), for translate-test."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from translate.models.base import DataInfo, GANModel
from translate.models.pix2pix import Pix2Pix


class GeneratorOnly(GANModel):
    """One generator applied one way, as the reference tests a single generator file: real_A -> fake_B.

    ``translate({"A": [N, input_nc, H, W], optional "B": [N, output_nc, H, W]})`` returns real_A, fake_B
    and, when the data has B, real_B (scored like pix2pix: L1, PSNR, SSIM).
    """

    optimizer_groups = {"G": ("G",)}
    data_kinds = ("single", "aligned", "unaligned")
    evaluation = "one_way"
    generators = ("G",)

    def __init__(self, netG: nn.Module, cfg: Any, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.netG = netG

    # At test time pix2pix is exactly one generator applied one way; share its code rather than copy it.
    translate = Pix2Pix.translate
