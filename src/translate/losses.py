"""The adversarial game every GAN here plays, one object per GAN mode (``model.gan_mode``), and CUT's
contrastive PatchNCE loss (:func:`patch_nce_loss`).

:class:`AdversarialLoss` owns everything that differs between the modes: the discriminator's loss on its
outputs for real and generated images, with the WGAN-GP gradient penalty added where the mode has one; the
constraint after the discriminator's update (WGAN's weight clipping); the generator's loss; and the checks
of settings a mode cannot train with. Models call it and never branch on the mode.

- ``vanilla``: binary cross-entropy with logits (the original GAN, as in pix2pix and the cGAN); the
  generator's loss is the non-saturating -log D(G(z)).
- ``lsgan``: mean squared error to the targets 1 and 0 (CycleGAN's default).
- ``wgangp``: the critic minimises E[D(fake)] - E[D(real)] + lambda_gp * GP (Gulrajani et al. 2017).
- ``wgan``: the same critic loss; the critic's weights are clipped to [-clip_value, clip_value] after each
  update instead of the penalty (Arjovsky et al. 2017).
- ``hinge``: D: E[relu(1 - D(real))] + E[relu(1 + D(fake))]; G: -E[D(fake)].

``label_smoothing`` is one-sided (Salimans et al. 2016): the discriminator's target for real images is
``1 - label_smoothing`` in ``vanilla`` and ``lsgan``; fake targets and the generator's targets stay exact.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from translate.config import GanMode
from translate.errors import ConfigError

#: A critic as the penalty sees it: images in, logits out (a condition, if any, bound inside).
Critic = Callable[[torch.Tensor], torch.Tensor]


def check_gan_mode(mode: GanMode, critic_norm: str, compile: bool, where: str = "model") -> None:
    """Refuse settings that ``mode`` cannot train with, naming the keys and what would work.

    WGAN-GP penalises the gradient of the critic at each interpolate separately: batch norm mixes the samples
    of a batch, so that per-sample gradient is not the one the penalty is defined on. And the penalty is
    differentiated again in the backward pass, which compiled graphs (aot_autograd) cannot do.
    """
    if mode != GanMode.wgangp:
        return
    if str(critic_norm) == "batch":
        raise ConfigError(
            f"{where}.gan_mode=wgangp with {where}.discriminator.norm=batch: batch norm breaks the per-sample gradient "
            f"penalty; set {where}.discriminator.norm=instance (or none)"
        )
    if compile:
        raise ConfigError(
            f"device.compile=true with {where}.gan_mode=wgangp: torch.compile cannot take the gradient penalty's "
            "second derivative; set device.compile=false (or another model.gan_mode)"
        )


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP penalty ``weight * E[(||grad_x critic(x)||_2 - 1)^2]`` on random interpolates ``x`` of
    ``real`` and ``fake`` ([N, C, H, W]), one mixing weight per sample."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(mixed).float()
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return weight * ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


class AdversarialLoss(nn.Module):
    """One GAN mode's losses on raw discriminator outputs (logits: no network here ends in a sigmoid).

    Args:
        mode: the GAN mode (see the module docstring).
        label_smoothing: one-sided smoothing of the real target, in [0, 1).
        lambda_gp: weight of the WGAN-GP penalty (``wgangp``).
        clip_value: the bound of the critic's weights after each update (``wgan``).

    Predictions may have any shape (``[N]`` for the cGAN, ``[N, 1, H', W']`` patch logits for a PatchGAN);
    every loss is a mean over all of their elements.
    """

    def __init__(self, mode: GanMode = GanMode.vanilla, label_smoothing: float = 0.0, lambda_gp: float = 10.0, clip_value: float = 0.01):
        super().__init__()
        self.mode = GanMode(mode)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1)")
        self.label_smoothing = label_smoothing
        self.lambda_gp = lambda_gp
        self.clip_value = clip_value

    def _term(self, prediction: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
        prediction = prediction.float()
        if self.mode in (GanMode.vanilla, GanMode.lsgan):
            target = 1.0 - self.label_smoothing if (real and for_discriminator) else float(real)
            targets = torch.full_like(prediction, target)
            if self.mode == GanMode.vanilla:
                return F.binary_cross_entropy_with_logits(prediction, targets)
            return F.mse_loss(prediction, targets)
        if self.mode == GanMode.hinge and for_discriminator:
            return F.relu(1.0 - prediction).mean() if real else F.relu(1.0 + prediction).mean()
        return -prediction.mean() if real else prediction.mean()

    def discriminator_loss(
        self,
        pred_real: torch.Tensor,
        pred_fake: torch.Tensor,
        critic: Optional[Critic] = None,
        real: Optional[torch.Tensor] = None,
        fake: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The discriminator's loss on its outputs for real and generated images, and what it logs (its two
        terms and its mean outputs, see :meth:`score`).

        ``critic``, ``real`` and ``fake``: the discriminator as the penalty differentiates it and the images it
        interpolates between; a model always passes them, and modes without a penalty leave them unused.
        """
        loss_real = self._term(pred_real, True, for_discriminator=True)
        loss_fake = self._term(pred_fake, False, for_discriminator=True)
        loss = loss_real + loss_fake
        if self.mode == GanMode.wgangp:
            if critic is None or real is None or fake is None:
                raise ValueError("gan_mode=wgangp needs the critic and the real and fake images for its gradient penalty")
            loss = loss + gradient_penalty(critic, real, fake, self.lambda_gp)
        report = {
            "loss_D/real": loss_real.detach(),
            "loss_D/fake": loss_fake.detach(),
            "D_real": self.score(pred_real),
            "D_fake": self.score(pred_fake),
        }
        return loss, report

    def generator_loss(self, pred_fake: torch.Tensor) -> torch.Tensor:
        """The generator's loss on the discriminator's outputs for its images."""
        return self._term(pred_fake, True, for_discriminator=False)

    @torch.no_grad()
    def after_discriminator_step(self, critics: Iterable[nn.Module]) -> None:
        """What the mode does to the discriminators after their update: ``wgan`` clips every weight of
        ``critics`` to [-clip_value, clip_value] (its Lipschitz constraint); the others nothing."""
        if self.mode != GanMode.wgan:
            return
        for net in critics:
            for p in net.parameters():
                p.clamp_(-self.clip_value, self.clip_value)

    def score(self, prediction: torch.Tensor) -> torch.Tensor:
        """Mean discriminator output as a readable number: a probability for ``vanilla`` (the D(x) and
        D(G(z)) of GAN tutorials), the raw mean otherwise."""
        prediction = prediction.detach().float()
        return torch.sigmoid(prediction).mean() if self.mode == GanMode.vanilla else prediction.mean()


#: What the authors put in place of a query's similarity with its own key among the negatives (before the
#: division by the temperature): exp(-10 / 0.07) is about 1e-62, so the positive counts once, in its own column.
_SELF_SIMILARITY = -10.0


def patch_nce_loss(
    queries: torch.Tensor, keys: torch.Tensor, num_images: int, temperature: float = 0.07, negatives_from_minibatch: bool = False
) -> torch.Tensor:
    """PatchNCE (Park et al. 2020, Sec. 3.1-3.2, at one layer): each query patch of the output must pick its key,
    the input patch at the same position, out of the other input patches, by a softmax over similarities.

    For query ``v`` with positive ``v+`` and negatives ``v-_j`` (the other patches of the same image, or of
    the whole batch with ``negatives_from_minibatch``, the authors' single-image setting):

        loss(v) = -log( exp(v.v+ / T) / (exp(v.v+ / T) + sum_j exp(v.v-_j / T)) )

    a cross-entropy whose class 0 is the positive. As in the authors' code, the keys carry no gradient
    (only the output's patches are pulled towards the input's), and the query's similarity with its own key
    appears a second time among the negatives, masked to ``_SELF_SIMILARITY``.

    Args:
        queries, keys: ``[num_images * P, C]``, rows image-major (row ``n * P + p`` is patch ``p`` of image
            ``n``), of unit length: what :class:`~translate.networks.patchnce.PatchSampleF` returns.
        num_images: the batch's images N (the rows of one image are its negatives' pool).
        temperature: T (0.07 in the paper).

    Returns: ``[num_images * P]`` per-patch losses (float32); the paper averages them.
    """
    q, k = queries.float(), keys.detach().float()
    dim = q.size(1)
    positives = (q * k).sum(dim=1, keepdim=True)
    groups = 1 if negatives_from_minibatch else num_images
    q, k = q.view(groups, -1, dim), k.view(groups, -1, dim)
    patches = q.size(1)
    negatives = torch.bmm(q, k.transpose(1, 2))
    own = torch.eye(patches, dtype=torch.bool, device=q.device)[None]
    negatives = negatives.masked_fill(own, _SELF_SIMILARITY).view(-1, patches)
    logits = torch.cat([positives, negatives], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(logits.size(0), dtype=torch.long, device=logits.device), reduction="none")
