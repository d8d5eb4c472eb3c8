"""CUT and FastCUT (Park, Efros, Zhang, Zhu 2020, "Contrastive Learning for Unpaired Image-to-Image
Translation"): one generator G: X -> Y and one discriminator D, with a patchwise contrastive loss between
input and output in place of CycleGAN's second generator and cycle.

The paper's objective (Sec. 3), in the order the step below computes it:
- D minimises (GAN(D(y), real) + GAN(D(G(x)), fake)) / 2 (the GAN mode's loss; LSGAN by default);
- each layer l of ``nce_layers`` of G's encoder gives features z_l = H_l(G_enc^l(x)) of the input and
  zhat_l = H_l(G_enc^l(G(x))) of the output, at the same sampled patch positions s, where H_l is a two-layer
  MLP and every feature has unit length (``networks.patchnce.PatchSampleF``);
- ell(v, v+, v-) = -log(exp(v.v+ / tau) / (exp(v.v+ / tau) + sum_n exp(v.v-_n / tau))) (Sec. 3.1): the output
  patch zhat_l^s must pick its own input patch z_l^s out of the other patches z_l^{S \\ s} of the same image
  (``losses.patch_nce_loss``);
- PatchNCE(G, H, X) = E_x sum_l sum_s ell(zhat_l^s, z_l^s, z_l^{S \\ s}) (Sec. 3.2), which the authors'
  code (and this one) averages over the patches and the layers instead of summing;
- G and H minimise lambda_GAN * GAN(D(G(x)), real) + lambda_NCE * PatchNCE(G, H, X), and with ``nce_idt``
  (CUT) lambda_NCE * (PatchNCE(G, H, X) + PatchNCE(G, H, Y)) / 2 instead, the identity term asking G to
  keep Y's patches when given y (Sec. 3.3). FastCUT: lambda_NCE 10, no identity term, and
  ``flip_equivariance``: half the batches enter G flipped left-right and the output's features are
  flipped back before they are compared with the unflipped input's.

The projection head H (``netF``). The authors' code builds it at the first training batch
(``data_dependent_initialize``): its MLPs take the channels of the generator's tapped layers, which they
read off the features of that batch, and are then initialised (``init_type``, ``init_gain``). Those
channels depend on the generator's architecture and ``nce_layers`` only, never on the data (a batch's size
and image side change N, H and W, which the MLPs never see: they act on single patch vectors). So this
model reads them off one forward of a zero image at construction and builds H then, right after G and D,
with the same layers and the same initialisation (the generator's ``init_type``/``init_gain``: the authors
use one init for every network). The authors' first batch changes no weight: its gradients are zeroed
before the first update. What differs is when H's random initial weights are drawn, not their
distribution. What building it at construction gains: H is a network like any other from the start, so
the engine broadcasts it from rank 0 with the others (every process holds the same H; the authors' lazily
built head broke multi-GPU training, taesungp/contrastive-unpaired-translation#2, #21, #114), it is in
the generator's optimiser from the first step, and checkpoints save and restore it with its Adam state.
H trains with G in the ``G`` optimiser: Adam is per parameter, so one Adam over G and H with the same
settings is the authors' two Adams (``optimizer_G``, ``optimizer_F``, both ``lr``, ``beta1``, ``beta2``).
"""

from __future__ import annotations

from typing import Dict, List, cast

import torch

from translate.augment import DiffAugment
from translate.losses import AdversarialLoss, patch_nce_loss
from translate.models.base import DataInfo, OneWayModel, Optimization, set_requires_grad
from translate.models.configs import CUTConfig
from translate.networks.discriminators import build_discriminator
from translate.networks.generators import ResnetGenerator, build_generator, generator_input_multiple
from translate.networks.init import init_weights
from translate.networks.patchnce import PatchSampleF, sample_patch_ids


class CUT(OneWayModel):
    evaluation = "one_way"
    # Unpaired folders; aligned pairs train the same way (the pairing enters no loss) and test with paired metrics.
    data_kinds = ("unaligned", "aligned")
    optimizer_groups = {"D": ("D",), "G": ("G", "F")}

    cfg: CUTConfig
    netG: ResnetGenerator  # the schema admits only ResNet generators: PatchNCE taps their encoder

    def __init__(self, cfg: CUTConfig, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.netG = cast(ResnetGenerator, build_generator(cfg.generator, info.input_nc, info.output_nc))
        self.netD = build_discriminator(cfg.discriminator, info.output_nc)
        self.netF = init_weights(PatchSampleF(self._tapped_channels(), cfg.netF_nc), cfg.generator.init_type, cfg.generator.init_gain)
        self.adversarial = AdversarialLoss(cfg.gan_mode, cfg.label_smoothing, cfg.lambda_gp, cfg.clip_value)
        self.augment = DiffAugment(cfg.diffaugment)

    @property
    def identity_term(self) -> bool:
        """Whether G also translates Y, for PatchNCE(G, H, Y) (``nce_idt``, with a PatchNCE to add it to)."""
        return self.cfg.nce_idt and self.cfg.lambda_NCE > 0

    @torch.no_grad()
    def _tapped_channels(self) -> List[int]:
        """The channels of G's ``nce_layers``, from one forward of a zero image (the smallest side whose
        feature maps stay larger than the reflection pads they meet)."""
        side = 4 * generator_input_multiple(self.netG)
        probe = torch.zeros(1, self.info.input_nc, side, side)
        return [f.size(1) for f in self.netG.encode(probe, self.cfg.nce_layers)]

    def training_step(self, batch: Dict[str, torch.Tensor], opt: Optimization) -> Dict[str, torch.Tensor]:
        cfg = self.cfg
        real_A, real_B = batch["A"], batch["B"]
        idt = self.identity_term
        real = torch.cat([real_A, real_B]) if idt else real_A  # one pass of G for G(x) and G(y)
        # FastCUT's flip: drawn once per batch, as in the authors' code.
        flipped = cfg.flip_equivariance and bool(torch.rand(()) < 0.5)
        if flipped:
            real = real.flip(3)
        with torch.set_grad_enabled(opt.generator_step), opt.autocast():  # G's graph only when G learns from it
            fake = self.netG(real)
        fake_B, idt_B = fake[: real_A.size(0)], fake[real_A.size(0) :]

        # D: (GAN(D(y), real) + GAN(D(G(x)), fake)) / 2
        with opt.autocast():
            pred_real = self.netD(self.augment(real_B))
            pred_fake = self.netD(self.augment(fake_B.detach()))
        loss_D, losses = self.adversarial.discriminator_loss(pred_real, pred_fake, self.netD, real_B, fake_B)
        opt.step("D", loss_D * 0.5)
        self.adversarial.after_discriminator_step([self.netD])
        if not opt.generator_step:
            return losses

        # G and H: lambda_GAN GAN(D(G(x)), real) + lambda_NCE PatchNCE(G, H, X) [averaged with PatchNCE(G, H, Y)]
        set_requires_grad([self.netD], False)
        with opt.autocast():
            loss_gan = self.adversarial.generator_loss(self.netD(self.augment(fake_B))) * cfg.lambda_GAN
            losses["loss_G/gan"] = loss_gan.detach()
            loss_G = loss_gan
            if cfg.lambda_NCE > 0:
                loss_nce = self.patch_nce(real_A, fake_B, flipped) * cfg.lambda_NCE
                losses["loss_G/NCE"] = loss_nce.detach()
                if idt:
                    loss_nce_Y = self.patch_nce(real_B, idt_B, flipped) * cfg.lambda_NCE
                    losses["loss_G/NCE_Y"] = loss_nce_Y.detach()
                    loss_nce = (loss_nce + loss_nce_Y) * 0.5
                loss_G = loss_G + loss_nce
        opt.step("G", loss_G)
        set_requires_grad([self.netD], True)
        return losses

    def patch_nce(self, source: torch.Tensor, output: torch.Tensor, flipped: bool = False) -> torch.Tensor:
        """PatchNCE(G, H, source -> output): the mean over ``nce_layers`` of the mean per-patch loss of
        ``losses.patch_nce_loss``, the output's patches as queries and the source's at the same positions
        as keys. ``flipped``: ``output`` came from the flipped source, so its features are flipped back.

        Shapes: ``source``, ``output`` ``[N, C, H, W]`` -> a scalar."""
        cfg = self.cfg
        features = self.netG.encode(output, cfg.nce_layers)
        if flipped:
            features = [f.flip(3) for f in features]
        # The keys carry no gradient (patch_nce_loss detaches them, as the authors do): no graph to keep.
        with torch.no_grad():
            source_features = self.netG.encode(source, cfg.nce_layers)
            ids = sample_patch_ids(source_features, cfg.num_patches)
            keys = self.netF(source_features, ids)
        queries = self.netF(features, ids)
        per_layer = [
            patch_nce_loss(q, k, source.size(0), cfg.nce_T, cfg.nce_includes_all_negatives_from_minibatch).mean()
            for q, k in zip(queries, keys)
        ]
        return torch.stack(per_layer).mean()

    @torch.no_grad()
    def visuals(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """real_A, fake_B = G(real_A), real_B and, with the identity term, idt_B = G(real_B)."""
        out = self.translate(batch)
        if self.identity_term and "B" in batch:
            out["idt_B"] = self.netG(batch["B"])
        return out
