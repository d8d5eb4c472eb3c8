"""The adversarial losses on known logits, one-sided label smoothing, and the WGAN-GP gradient penalty."""

from __future__ import annotations

import math

import pytest
import torch

from translate.losses import GANLoss, gradient_penalty

# Logits 0 and 2: sigmoid 0.5 and 0.88.
LOGITS = torch.tensor([0.0, 2.0])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# (mode, D on real, D on fake, G on fake) for LOGITS
EXPECTED = {
    # -log sigmoid(x) = softplus(-x);  -log(1 - sigmoid(x)) = softplus(x)
    "vanilla": ((softplus(0) + softplus(-2)) / 2, (softplus(0) + softplus(2)) / 2, (softplus(0) + softplus(-2)) / 2),
    # mean (x - 1)^2, mean x^2
    "lsgan": ((1 + 1) / 2, (0 + 4) / 2, (1 + 1) / 2),
    # -mean x, mean x; the generator raises the critic's score
    "wgangp": (-1.0, 1.0, -1.0),
    # the original WGAN's critic loss is the same; only its Lipschitz constraint (clipping) differs
    "wgan": (-1.0, 1.0, -1.0),
    # mean relu(1 - x), mean relu(1 + x); G: -mean x
    "hinge": ((1 + 0) / 2, (1 + 3) / 2, -1.0),
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_gan_loss_values_on_known_logits(mode):
    loss = GANLoss(mode)
    d_real, d_fake, g_fake = EXPECTED[mode]
    assert loss(LOGITS, True).item() == pytest.approx(d_real)
    assert loss(LOGITS, False).item() == pytest.approx(d_fake)
    assert loss(LOGITS, True, for_discriminator=False).item() == pytest.approx(g_fake)


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_gan_loss_averages_over_patches_and_returns_fp32(mode):
    patches = LOGITS.repeat(3, 1, 2, 2).reshape(3, 1, 4, 2).to(torch.bfloat16)
    value = GANLoss(mode)(patches, True)
    assert value.dtype == torch.float32 and value.dim() == 0
    assert value.item() == pytest.approx(EXPECTED[mode][0], rel=1e-2)


# D's loss on LOGITS against the smoothed real target 0.9, worked out by hand:
SMOOTHED_REAL = {
    # BCE against t: t softplus(-x) + (1 - t) softplus(x)
    "vanilla": (0.9 * softplus(0) + 0.1 * softplus(0) + 0.9 * softplus(-2) + 0.1 * softplus(2)) / 2,
    # mean (x - 0.9)^2 = (0.81 + 1.21) / 2
    "lsgan": 1.01,
}


@pytest.mark.parametrize("mode", ["vanilla", "lsgan"])
def test_label_smoothing_only_softens_the_discriminators_real_target(mode):
    plain, smooth = GANLoss(mode), GANLoss(mode, label_smoothing=0.1)
    assert smooth(LOGITS, True).item() == pytest.approx(SMOOTHED_REAL[mode])
    assert smooth(LOGITS, True).item() != pytest.approx(plain(LOGITS, True).item())
    assert smooth(LOGITS, False).item() == pytest.approx(plain(LOGITS, False).item())
    assert smooth(LOGITS, True, for_discriminator=False).item() == pytest.approx(plain(LOGITS, True, for_discriminator=False).item())


def test_score_is_a_probability_for_vanilla_and_the_raw_mean_otherwise():
    assert GANLoss("vanilla").score(LOGITS).item() == pytest.approx(torch.sigmoid(LOGITS).mean().item())
    for mode in ("lsgan", "wgangp", "hinge", "wgan"):
        assert GANLoss(mode).score(LOGITS).item() == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, needle", [({"gan_mode": "wgan_gp"}, "wgan_gp"), ({"label_smoothing": 1.0}, "label_smoothing")])
def test_bad_loss_settings_are_named(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        GANLoss(**kwargs)


# --- gradient penalty ----------------------------------------------------------------------------------


class LinearCritic(torch.nn.Module):
    """f(x) = <w, x>: its gradient is w at every x, so the penalty is weight * (|w| - 1)^2 exactly."""

    def __init__(self, numel: int, norm: float) -> None:
        super().__init__()
        w = torch.randn(numel, generator=torch.Generator().manual_seed(0))
        self.w = torch.nn.Parameter(w * norm / w.norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


def _images(seed: int) -> torch.Tensor:
    return torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    critic = LinearCritic(3 * 8 * 8, norm=1.0)
    assert gradient_penalty(critic, _images(1), _images(2)).item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_penalty_grows_with_the_gradient_norm_and_trains_the_critic():
    critic = LinearCritic(3 * 8 * 8, norm=3.0)
    penalty = gradient_penalty(critic, _images(1), _images(2), weight=10.0)
    assert penalty.item() == pytest.approx(10.0 * (3.0 - 1.0) ** 2, rel=1e-4)
    penalty.backward()
    # d/dw 10 (|w| - 1)^2 = 20 (|w| - 1) w / |w|: the penalty pushes the critic back towards norm 1
    expected = 20.0 * (3.0 - 1.0) * critic.w.detach() / 3.0
    assert torch.allclose(critic.w.grad, expected, rtol=1e-4, atol=1e-6)


def test_gradient_penalty_ignores_the_gradient_through_the_condition():
    """pix2pix's critic sees cat(condition, image): only the image's gradient is penalised."""
    condition = torch.randn(4, 2, 8, 8)
    critic = LinearCritic(5 * 8 * 8, norm=1.0)
    with torch.no_grad():
        # unit norm on the image channels (the last 3), anything on the condition's
        image_part = critic.w[2 * 64 :]
        image_part /= image_part.norm()
        critic.w[: 2 * 64] *= 7.0
    penalty = gradient_penalty(critic, _images(1), _images(2), condition=condition)
    assert penalty.item() == pytest.approx(0.0, abs=1e-6)
