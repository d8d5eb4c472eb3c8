"""Adversarial losses shared by every model, and the WGAN-GP gradient penalty."""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

GAN_MODES = ("vanilla", "lsgan", "wgangp", "hinge", "wgan")


class GANLoss(nn.Module):
    """Adversarial loss on raw discriminator outputs (logits; no sigmoid in any network).

    - ``vanilla``: binary cross-entropy with logits (the original GAN, as in pix2pix and the cGAN).
    - ``lsgan``: mean squared error to the targets (CycleGAN's default).
    - ``wgangp``: -mean for real, +mean for fake (pair it with :func:`gradient_penalty`).
    - ``wgan``: the same critic loss (Arjovsky et al. 2017), its Lipschitz bound kept by clipping the
      critic's weights after each update instead (see ``translate.models.base.clip_weights``).
    - ``hinge``: D: relu(1 - real) + relu(1 + fake); G: -mean(fake).

    ``label_smoothing`` is one-sided (Salimans et al. 2016): the discriminator's target for real
    images is ``1 - label_smoothing``; fake targets and the generator's targets stay exact.
    """

    def __init__(self, gan_mode: str = "vanilla", label_smoothing: float = 0.0) -> None:
        super().__init__()
        gan_mode = str(gan_mode)
        if gan_mode not in GAN_MODES:
            raise ValueError(f"gan_mode={gan_mode!r} is not supported; use one of {', '.join(GAN_MODES)}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1)")
        self.gan_mode = gan_mode
        self.label_smoothing = label_smoothing

    def forward(self, prediction: torch.Tensor, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        """Loss of ``prediction`` (any shape, e.g. [N, 1, H', W'] patch logits) against real/fake."""
        prediction = prediction.float()
        if self.gan_mode in ("vanilla", "lsgan"):
            target = 1.0 - self.label_smoothing if (target_is_real and for_discriminator) else float(target_is_real)
            target_tensor = torch.full_like(prediction, target)
            if self.gan_mode == "vanilla":
                return F.binary_cross_entropy_with_logits(prediction, target_tensor)
            return F.mse_loss(prediction, target_tensor)
        if self.gan_mode == "hinge" and for_discriminator:
            return F.relu(1.0 - prediction).mean() if target_is_real else F.relu(1.0 + prediction).mean()
        return -prediction.mean() if target_is_real else prediction.mean()

    def score(self, prediction: torch.Tensor) -> torch.Tensor:
        """Mean discriminator output as a readable number: a probability for ``vanilla``
        (the D(x) and D(G(z)) GAN tutorials print), the raw mean otherwise."""
        prediction = prediction.detach().float()
        return torch.sigmoid(prediction).mean() if self.gan_mode == "vanilla" else prediction.mean()

    def report(
        self, pred_real: torch.Tensor, pred_fake: torch.Tensor, loss_real: torch.Tensor, loss_fake: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """What a discriminator update logs: its two loss terms and its mean outputs (see :meth:`score`)."""
        return {
            "loss_D/real": loss_real.detach(),
            "loss_D/fake": loss_fake.detach(),
            "D_real": self.score(pred_real),
            "D_fake": self.score(pred_fake),
        }


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
    condition: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """WGAN-GP penalty ``weight * E[(||grad_x critic(x)||_2 - 1)^2]`` on random interpolates of
    ``real`` and ``fake`` ([N, C, H, W]). ``condition``, if given, is concatenated to the interpolate
    along channels and held fixed (pix2pix's conditional critic)."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    inputs = mixed if condition is None else torch.cat([condition.detach(), mixed], dim=1)
    out = critic(inputs).float()
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return weight * ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()
