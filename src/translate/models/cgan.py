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
from translate.errors import ConfigError
from translate.losses import GANLoss, gradient_penalty
from translate.models.base import DataInfo, GANModel, Optimization, check_critic_norm, clip_weights, set_requires_grad
from translate.networks.discriminators import build_conditional_discriminator
from translate.networks.generators import ConditionalGenerator
from translate.networks.init import init_weights


class CGAN(GANModel):
    task = "generate"
    evaluation = "digits"
    generators = ("G",)
    data_kinds = ("mnist",)
    optimizer_groups = {"D": ("D",), "G": ("G",)}

    def __init__(self, cfg: Any, info: DataInfo) -> None:
        super().__init__(cfg, info)
        check_critic_norm(cfg)
        if info.image_size is None:
            raise ConfigError("data.image_size: the cGAN needs a fixed image size; set data.image_size")
        if info.num_classes is not None and info.num_classes != cfg.num_classes:
            raise ConfigError(f"model.num_classes={cfg.num_classes} but the dataset has {info.num_classes} classes")
        g, d = cfg.generator, cfg.discriminator
        self.netG = init_weights(
            ConditionalGenerator(cfg.z_dim, cfg.num_classes, info.output_nc, info.image_size, g.ngf, g.conditional_bn, str(g.upsample)),
            g.init_type,
            g.init_gain,
        )
        self.netD = build_conditional_discriminator(d, info.input_nc, cfg.num_classes, info.image_size)
        self.criterion = GANLoss(cfg.gan_mode, cfg.label_smoothing)
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
            loss_D_real = self.criterion(pred_real, True)
            loss_D_fake = self.criterion(pred_fake, False)
        loss_D = loss_D_real + loss_D_fake
        if self.cfg.gan_mode == "wgangp":
            loss_D = loss_D + gradient_penalty(lambda x: self.netD(x, labels), real, fake, self.cfg.lambda_gp)
        opt.step("D", loss_D)
        if self.cfg.gan_mode == "wgan":
            clip_weights([self.netD], self.cfg.clip_value)
        losses = self.criterion.report(pred_real, pred_fake, loss_D_real, loss_D_fake)
        if not opt.generator_step:
            return losses

        # G: maximise log D(G(z|y)|y), with D frozen
        set_requires_grad([self.netD], False)
        with opt.autocast():
            loss_G = self.criterion(self.netD(self.augment(fake), labels), True, for_discriminator=False)
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
