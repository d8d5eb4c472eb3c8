"""Class-conditional GAN (Mirza & Osindero 2014) with DCGAN networks (Radford et al. 2015).

G(z | y) maps noise z ~ N(0, I) and a class y to an image; D(x | y) scores an image given its class.
D maximises  log D(x | y) + log(1 - D(G(z | y) | y));
G maximises  log D(G(z | y) | y)  (the non-saturating form of min log(1 - D(G(z | y) | y))).
With model.diffaugment, D sees T(x) and T(G(z | y)) in both steps, T a fresh DiffAugment draw each time
(Zhao et al. 2020); y is never augmented.
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from translate.augment import DiffAugment
from translate.losses import AdversarialLoss
from translate.models.base import DataInfo, GANModel, Optimization, set_requires_grad
from translate.models.configs import CGANConfig
from translate.networks.discriminators import build_conditional_discriminator
from translate.networks.generators import ConditionalGenerator
from translate.networks.init import init_weights


class CGAN(GANModel):
    task = "generate"
    evaluation = "digits"
    generators = ("G",)
    data_kinds = ("mnist",)
    optimizer_groups = {"D": ("D",), "G": ("G",)}

    cfg: CGANConfig
    fixed_z: torch.Tensor

    def __init__(self, cfg: CGANConfig, info: DataInfo) -> None:
        super().__init__(cfg, info)
        assert info.image_size is not None, "the cGAN's data has a fixed image size"
        g, d = cfg.generator, cfg.discriminator
        self.netG = init_weights(
            ConditionalGenerator(cfg.z_dim, cfg.num_classes, info.output_nc, info.image_size, g.ngf, g.conditional_bn, str(g.upsample)),
            g.init_type,
            g.init_gain,
        )
        self.netD = build_conditional_discriminator(d, info.input_nc, cfg.num_classes, info.image_size)
        self.adversarial = AdversarialLoss(cfg.gan_mode, cfg.label_smoothing, cfg.lambda_gp, cfg.clip_value)
        # DiffAugment of every image D sees (the label is not augmented); identity when model.diffaugment is empty.
        self.augment = DiffAugment(cfg.diffaugment)
        # The same noise every time the grid is drawn, so successive grids show training progress, not luck.
        fixed = torch.randn(cfg.num_classes, cfg.z_dim, generator=torch.Generator().manual_seed(0))
        self.register_buffer("fixed_z", fixed, persistent=False)

    def generate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images [N, C, S, S] in [-1, 1] for noise z [N, z_dim] and classes [N]."""
        return self.netG(z, labels)

    def training_step(self, batch: Dict[str, torch.Tensor], opt: Optimization) -> Dict[str, torch.Tensor]:
        real, labels = batch["image"], batch["label"]
        z = torch.randn(real.size(0), self.cfg.z_dim, device=real.device)

        # D: maximise log D(x|y) + log(1 - D(G(z|y)|y))
        with torch.set_grad_enabled(opt.generator_step), opt.autocast():  # G's graph only when G learns from it
            fake = self.netG(z, labels)
        with opt.autocast():
            pred_real = self.netD(self.augment(real), labels)
            pred_fake = self.netD(self.augment(fake.detach()), labels)
        loss_D, losses = self.adversarial.discriminator_loss(pred_real, pred_fake, lambda x: self.netD(x, labels), real, fake)
        opt.step("D", loss_D)
        self.adversarial.after_discriminator_step([self.netD])
        if not opt.generator_step:
            return losses

        # G: maximise log D(G(z|y)|y), with D frozen
        set_requires_grad([self.netD], False)
        with opt.autocast():
            loss_G = self.adversarial.generator_loss(self.netD(self.augment(fake), labels))
        opt.step("G", loss_G)
        set_requires_grad([self.netD], True)
        return {**losses, "loss_G/gan": loss_G.detach()}

    @torch.no_grad()
    def visuals(self, batch: Any = None) -> Dict[str, torch.Tensor]:
        """One row per class, the fixed noise across the columns."""
        n = self.fixed_z.size(0)
        return {
            f"class_{c}": self.generate(self.fixed_z, torch.full((n,), c, dtype=torch.long, device=self.fixed_z.device))
            for c in range(self.cfg.num_classes)
        }
