"""CycleGAN (Zhu et al. 2017): two mappings between unpaired domains, tied by cycle consistency.

G_A: A -> B and G_B: B -> A; D_A judges B-domain images (real B vs G_A(A)), D_B judges A-domain images.
G minimises  GAN(D_A(G_A(A)), real) + GAN(D_B(G_B(B)), real)
             + lambda_A ||G_B(G_A(A)) - A||_1 + lambda_B ||G_A(G_B(B)) - B||_1                 (cycle)
             + lambda_identity (lambda_B ||G_A(B) - B||_1 + lambda_A ||G_B(A) - A||_1);       (identity)
D_A minimises (GAN(D_A(B), real) + GAN(D_A(pool(G_A(A))), fake) [+ lambda_gp * GP]) / 2, and D_B likewise, on fakes drawn
from a history of generated images (the image pool). With model.diffaugment, every image a discriminator
sees, real or fake, in its step and in the generators', is DiffAugmented first (Zhao et al. 2020).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple, cast

import torch
import torch.nn.functional as F

from translate.augment import DiffAugment
from translate.image_pool import ImagePool
from translate.losses import AdversarialLoss
from translate.models.base import DataInfo, GANModel, Optimization, set_requires_grad
from translate.models.configs import CycleGANConfig
from translate.networks.discriminators import build_discriminator
from translate.networks.generators import build_generator


class CycleGAN(GANModel):
    evaluation = "cycle"
    generators = ("G_A", "G_B")
    data_kinds = ("unaligned",)
    optimizer_groups = {"G": ("G_A", "G_B"), "D": ("D_A", "D_B")}

    cfg: CycleGANConfig

    def __init__(self, cfg: CycleGANConfig, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.netG_A = build_generator(cfg.generator, info.input_nc, info.output_nc)
        self.netG_B = build_generator(cfg.generator, info.output_nc, info.input_nc)
        self.netD_A = build_discriminator(cfg.discriminator, info.output_nc)
        self.netD_B = build_discriminator(cfg.discriminator, info.input_nc)
        self.adversarial = AdversarialLoss(cfg.gan_mode, cfg.label_smoothing, cfg.lambda_gp, cfg.clip_value)
        self.fake_A_pool = ImagePool(cfg.pool_size)
        self.fake_B_pool = ImagePool(cfg.pool_size)
        self.augment = DiffAugment(cfg.diffaugment)

    def training_step(self, batch: Dict[str, torch.Tensor], opt: Optimization) -> Dict[str, torch.Tensor]:
        cfg = self.cfg
        real_A, real_B = batch["A"], batch["B"]
        with torch.set_grad_enabled(opt.generator_step), opt.autocast():  # G's graph only when G learns from it
            fake_B = self.netG_A(real_A)
            fake_A = self.netG_B(real_B)
        losses: Dict[str, torch.Tensor] = {}
        if opt.generator_step:
            with opt.autocast():
                rec_A = self.netG_B(fake_B)
                rec_B = self.netG_A(fake_A)

            # G_A and G_B: adversarial + cycle + identity, with both discriminators frozen
            set_requires_grad([self.netD_A, self.netD_B], False)
            with opt.autocast():
                loss_gan_A = self.adversarial.generator_loss(self.netD_A(self.augment(fake_B)))
                loss_gan_B = self.adversarial.generator_loss(self.netD_B(self.augment(fake_A)))
                if cfg.lambda_identity > 0:
                    idt_A = self.netG_A(real_B)
                    idt_B = self.netG_B(real_A)
            loss_cycle_A = F.l1_loss(rec_A.float(), real_A.float()) * cfg.lambda_A
            loss_cycle_B = F.l1_loss(rec_B.float(), real_B.float()) * cfg.lambda_B
            losses = {
                "loss_G/gan_A": loss_gan_A,
                "loss_G/gan_B": loss_gan_B,
                "loss_G/cycle_A": loss_cycle_A,
                "loss_G/cycle_B": loss_cycle_B,
            }
            if cfg.lambda_identity > 0:
                losses["loss_G/idt_A"] = F.l1_loss(idt_A.float(), real_B.float()) * cfg.lambda_B * cfg.lambda_identity
                losses["loss_G/idt_B"] = F.l1_loss(idt_B.float(), real_A.float()) * cfg.lambda_A * cfg.lambda_identity
            opt.step("G", cast(torch.Tensor, sum(losses.values())))
            set_requires_grad([self.netD_A, self.netD_B], True)

        # D_A and D_B: real vs. a fake drawn from the pool of past fakes
        loss_D_A, report_A = self._discriminator_loss(self.netD_A, real_B, self.fake_B_pool.query(fake_B.detach()), opt)
        loss_D_B, report_B = self._discriminator_loss(self.netD_B, real_A, self.fake_A_pool.query(fake_A.detach()), opt)
        opt.step("D", loss_D_A + loss_D_B)
        self.adversarial.after_discriminator_step([self.netD_A, self.netD_B])

        return {
            **{k: v.detach() for k, v in losses.items()},
            "loss_D/A": loss_D_A.detach(),
            "loss_D/B": loss_D_B.detach(),
            "D_real/A": report_A["D_real"],
            "D_fake/A": report_A["D_fake"],
            "D_real/B": report_B["D_real"],
            "D_fake/B": report_B["D_fake"],
        }

    def _discriminator_loss(
        self, net: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, opt: Optimization
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(GAN(D(real), real) + GAN(D(fake), fake)) / 2 for one of the two discriminators, and its report."""
        with opt.autocast():
            pred_real = net(self.augment(real))
            pred_fake = net(self.augment(fake))
        loss, report = self.adversarial.discriminator_loss(pred_real, pred_fake, net, real, fake)
        return loss * 0.5, report

    @torch.no_grad()
    def translate(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """A -> B -> A for an ``A`` input, B -> A -> B for a ``B`` input."""
        out: Dict[str, torch.Tensor] = {}
        if "A" in batch:
            fake_B = self.netG_A(batch["A"])
            out.update(real_A=batch["A"], fake_B=fake_B, rec_A=self.netG_B(fake_B))
        if "B" in batch:
            fake_A = self.netG_B(batch["B"])
            out.update(real_B=batch["B"], fake_A=fake_A, rec_B=self.netG_A(fake_A))
        return out

    @torch.no_grad()
    def visuals(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        return self.translate(batch)

    def extra_state(self) -> Dict[str, Any]:
        return {"fake_A_pool": self.fake_A_pool.state_dict(), "fake_B_pool": self.fake_B_pool.state_dict()}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.fake_A_pool.load_state_dict(state["fake_A_pool"])
        self.fake_B_pool.load_state_dict(state["fake_B_pool"])
