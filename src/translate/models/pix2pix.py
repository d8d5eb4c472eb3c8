"""pix2pix (Isola et al. 2017): a conditional GAN on aligned pairs (A, B).

G: A -> B is a U-Net; D is a PatchGAN that sees the pair cat(A, B) and says, per patch, real or fake.
D minimises  (GAN(D(A, B), real) + GAN(D(A, G(A)), fake)) / 2  (with wgangp, lambda_gp * GP is added inside
             the halving, so the penalty keeps its weight relative to the critic loss, as in Gulrajani et al. 2017);
G minimises  GAN(D(A, G(A)), real) + lambda_L1 * ||B - G(A)||_1.
With model.diffaugment, D sees T(cat(A, B)) and T(cat(A, G(A))) in both steps (Zhao et al. 2020), the pair
transformed as one stack so that A and B stay aligned; the L1 term compares the unaugmented images.
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from translate.augment import DiffAugment
from translate.losses import AdversarialLoss
from translate.models.base import DataInfo, OneWayModel, Optimization, set_requires_grad
from translate.models.configs import Pix2PixConfig
from translate.networks.discriminators import build_discriminator
from translate.networks.generators import build_generator


class Pix2Pix(OneWayModel):
    evaluation = "paired"
    data_kinds = ("aligned",)
    optimizer_groups = {"D": ("D",), "G": ("G",)}

    cfg: Pix2PixConfig

    def __init__(self, cfg: Pix2PixConfig, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.netG = build_generator(cfg.generator, info.input_nc, info.output_nc)
        # The conditional D judges the pair, so it sees A's and B's channels together.
        self.netD = build_discriminator(cfg.discriminator, info.input_nc + info.output_nc)
        self.adversarial = AdversarialLoss(cfg.gan_mode, cfg.label_smoothing, cfg.lambda_gp, cfg.clip_value)
        self.augment = DiffAugment(cfg.diffaugment)

    def _pair(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """What D sees: cat(A, B) along channels, DiffAugmented as one stack so that A and B stay aligned."""
        return self.augment(torch.cat([a, b], 1), groups=(a.size(1), b.size(1)))

    def training_step(self, batch: Dict[str, torch.Tensor], opt: Optimization) -> Dict[str, torch.Tensor]:
        real_A, real_B = batch["A"], batch["B"]
        with torch.set_grad_enabled(opt.generator_step), opt.autocast():  # G's graph only when G learns from it
            fake_B = self.netG(real_A)

        # D: (GAN(D(A, B), real) + GAN(D(A, G(A)), fake)) / 2; a penalty interpolates B with A held fixed
        with opt.autocast():
            pred_real = self.netD(self._pair(real_A, real_B))
            pred_fake = self.netD(self._pair(real_A, fake_B.detach()))

        def critic(b: torch.Tensor) -> torch.Tensor:
            return self.netD(torch.cat([real_A, b], 1))

        loss_D, losses = self.adversarial.discriminator_loss(pred_real, pred_fake, critic, real_B, fake_B)
        opt.step("D", loss_D * 0.5)
        self.adversarial.after_discriminator_step([self.netD])
        if not opt.generator_step:
            return losses

        # G: GAN(D(A, G(A)), real) + lambda_L1 * ||B - G(A)||_1, with D frozen
        set_requires_grad([self.netD], False)
        with opt.autocast():
            loss_G_gan = self.adversarial.generator_loss(self.netD(self._pair(real_A, fake_B)))
        loss_G_L1 = F.l1_loss(fake_B.float(), real_B.float())
        opt.step("G", loss_G_gan + self.cfg.lambda_L1 * loss_G_L1)
        set_requires_grad([self.netD], True)
        return {**losses, "loss_G/gan": loss_G_gan.detach(), "loss_G/L1": loss_G_L1.detach()}
