"""The adversarial game of each GAN mode on known logits: its losses, one-sided label smoothing, the WGAN-GP
gradient penalty, WGAN's weight clipping, and the settings a mode refuses."""

from __future__ import annotations

import math

import pytest
import torch

from translate.config import GanMode
from translate.errors import ConfigError
from translate.losses import AdversarialLoss, check_gan_mode, gradient_penalty

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


def _d_terms(loss: AdversarialLoss, real: torch.Tensor, fake: torch.Tensor) -> tuple:
    """(D's loss, its real term, its fake term), critic and images given as the models give them."""
    total, report = loss.discriminator_loss(real, fake, lambda x: x.flatten(1).sum(1), _images(1), _images(2))
    return total.item(), report["loss_D/real"].item(), report["loss_D/fake"].item()


@pytest.mark.parametrize("mode", sorted(set(EXPECTED) - {"wgangp"}))
def test_adversarial_loss_values_on_known_logits(mode):
    loss = AdversarialLoss(GanMode(mode))
    d_real, d_fake, g_fake = EXPECTED[mode]
    total, real, fake = _d_terms(loss, LOGITS, LOGITS)
    assert (real, fake, total) == (pytest.approx(d_real), pytest.approx(d_fake), pytest.approx(d_real + d_fake))
    assert loss.generator_loss(LOGITS).item() == pytest.approx(g_fake)


def test_wgangp_adds_its_penalty_to_the_critic_loss_and_nothing_to_the_generator():
    loss = AdversarialLoss(GanMode.wgangp, lambda_gp=10.0)
    d_real, d_fake, g_fake = EXPECTED["wgangp"]
    # the critic x -> sum(x) has gradient 1 in each of 3*8*8 pixels: norm 8 sqrt(3), penalty 10 (8 sqrt(3) - 1)^2
    total, real, fake = _d_terms(loss, LOGITS, LOGITS)
    assert (real, fake) == (pytest.approx(d_real), pytest.approx(d_fake))
    assert total == pytest.approx(d_real + d_fake + 10.0 * (8 * math.sqrt(3) - 1) ** 2, rel=1e-5)
    assert loss.generator_loss(LOGITS).item() == pytest.approx(g_fake)


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_adversarial_loss_averages_over_patches_and_returns_fp32(mode):
    patches = LOGITS.repeat(3, 1, 2, 2).reshape(3, 1, 4, 2).to(torch.bfloat16)
    value = AdversarialLoss(GanMode(mode)).generator_loss(patches)
    assert value.dtype == torch.float32 and value.dim() == 0
    assert value.item() == pytest.approx(EXPECTED[mode][2], rel=1e-2)


# D's loss on LOGITS against the smoothed real target 0.9, worked out by hand:
SMOOTHED_REAL = {
    # BCE against t: t softplus(-x) + (1 - t) softplus(x)
    "vanilla": (0.9 * softplus(0) + 0.1 * softplus(0) + 0.9 * softplus(-2) + 0.1 * softplus(2)) / 2,
    # mean (x - 0.9)^2 = (0.81 + 1.21) / 2
    "lsgan": 1.01,
}


@pytest.mark.parametrize("mode", ["vanilla", "lsgan"])
def test_label_smoothing_only_softens_the_discriminators_real_target(mode):
    plain, smooth = AdversarialLoss(GanMode(mode)), AdversarialLoss(GanMode(mode), label_smoothing=0.1)
    _, smooth_real, smooth_fake = _d_terms(smooth, LOGITS, LOGITS)
    _, plain_real, plain_fake = _d_terms(plain, LOGITS, LOGITS)
    assert smooth_real == pytest.approx(SMOOTHED_REAL[mode]) and smooth_real != pytest.approx(plain_real)
    assert smooth_fake == pytest.approx(plain_fake)
    assert smooth.generator_loss(LOGITS).item() == pytest.approx(plain.generator_loss(LOGITS).item())


def test_score_is_a_probability_for_vanilla_and_the_raw_mean_otherwise():
    assert AdversarialLoss(GanMode.vanilla).score(LOGITS).item() == pytest.approx(torch.sigmoid(LOGITS).mean().item())
    for mode in ("lsgan", "wgangp", "hinge", "wgan"):
        assert AdversarialLoss(GanMode(mode)).score(LOGITS).item() == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, needle", [({"mode": "wgan_gp"}, "wgan_gp"), ({"label_smoothing": 1.0}, "label_smoothing")])
def test_bad_loss_settings_are_named(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        AdversarialLoss(**kwargs)


@pytest.mark.parametrize("mode, clipped", [(mode, mode == "wgan") for mode in sorted(EXPECTED)])
def test_only_wgan_clips_the_critics_weights_after_its_update(mode, clipped):
    critic = torch.nn.Linear(4, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.5, -0.5, 0.001, -0.2]]))
    AdversarialLoss(GanMode(mode), clip_value=0.01).after_discriminator_step([critic])
    expected = [[0.01, -0.01, 0.001, -0.01]] if clipped else [[0.5, -0.5, 0.001, -0.2]]
    assert torch.allclose(critic.weight, torch.tensor(expected))


@pytest.mark.parametrize(
    "norm, compile, needle",
    [("batch", False, "model.discriminator.norm=instance"), ("instance", True, "device.compile=false")],
)
def test_wgangp_refuses_a_batch_norm_critic_and_compilation(norm, compile, needle):
    with pytest.raises(ConfigError, match=needle):
        check_gan_mode(GanMode.wgangp, norm, compile)
    for mode in set(GanMode) - {GanMode.wgangp}:
        check_gan_mode(mode, norm, compile)


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
    # the condition bound inside the critic, as pix2pix's model does
    penalty = gradient_penalty(lambda b: critic(torch.cat([condition, b], 1)), _images(1), _images(2))
    assert penalty.item() == pytest.approx(0.0, abs=1e-6)
