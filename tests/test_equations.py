"""Each model's equations, pinned by values computed by hand.

The networks are replaced by tiny deterministic stand-ins whose outputs are known (a generator x -> x + c, a
discriminator that weighs each channel by its own number), and a Recorder takes the loss of each
``opt.step(name, loss)``. The expected losses are written out below from the papers' equations with plain
tensor arithmetic, never with the code under test, and the weights that default to one number get distinct
values (lambda_A != lambda_B) so that swapping them shows. Also: the image pool's swap rate, the gradient
penalty's pull towards unit gradient norms, the learning-rate schedules' values by epoch, and the papers'
defaults as the YAML composes them. (The WGAN-GP weighting inside each D loss is pinned in test_trust.py.)
"""

from __future__ import annotations

import math
from typing import List

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import helpers
from _models_helpers import TINY_CYCLEGAN, TINY_PIX2PIX, Recorder, train_config
from translate.image_pool import ImagePool
from translate.losses import gradient_penalty
from translate.models.base import build_model
from translate.settings.validate import validate_train

# --- the adversarial terms, by hand -----------------------------------------------------------------------


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of sigmoid(logits) against ``target``: -t log s(x) - (1 - t) log(1 - s(x))
    = t softplus(-x) + (1 - t) softplus(x)."""
    return (target * F.softplus(-logits) + (1 - target) * F.softplus(logits)).mean()


def d_terms(mode: str, real: torch.Tensor, fake: torch.Tensor, smoothing: float) -> torch.Tensor:
    """The discriminator's real + fake terms on logits ``real`` and ``fake`` (before any halving)."""
    if mode == "vanilla":
        return bce(real, 1 - smoothing) + bce(fake, 0.0)
    if mode == "lsgan":
        return ((real - (1 - smoothing)) ** 2).mean() + (fake**2).mean()
    assert mode == "hinge"
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def g_term(mode: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial term on D's logits ``fake``: exact real targets, never smoothed."""
    if mode == "vanilla":
        return bce(fake, 1.0)
    if mode == "lsgan":
        return ((fake - 1) ** 2).mean()
    assert mode == "hinge"
    return -fake.mean()


#: (gan_mode, label_smoothing): smoothing only for the modes that have targets.
MODES = [("vanilla", 0.0), ("vanilla", 0.2), ("lsgan", 0.0), ("lsgan", 0.3), ("hinge", 0.0)]
MODE_IDS = [f"{m}-smooth{s}" for m, s in MODES]


def _batch(seed: int, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --- stand-in networks ------------------------------------------------------------------------------------


class Shift(nn.Module):
    """x -> x + c."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c


class Scale(nn.Module):
    """x -> s x."""

    def __init__(self, s: float) -> None:
        super().__init__()
        self.s = s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s * x


class ChannelCritic(nn.Module):
    """Patch logits ``sum_k w_k x_k + b`` ([N, 1, H, W]) with a distinct weight per channel, so that channel
    order changes the output; records every input it sees."""

    def __init__(self, weights: List[float], bias: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("w", torch.tensor(weights).view(1, -1, 1, 1))
        self.bias = bias
        self.seen: List[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return (x * self.w).sum(1, keepdim=True) + self.bias


def critic(weights: List[float], bias: float, x: torch.Tensor) -> torch.Tensor:
    """What :class:`ChannelCritic` computes, written out for the expected values."""
    return sum(w * x[:, k : k + 1] for k, w in enumerate(weights)) + bias


# --- the cGAN: D's loss not halved, G towards the real target ---------------------------------------------


class ClassImage(nn.Module):
    """G(z, y): an image filled with 0.1 (y + 1) - 0.5, whatever z."""

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (0.1 * (labels.float() + 1) - 0.5).view(-1, 1, 1, 1).expand(-1, 1, 16, 16)


class ClassCritic(nn.Module):
    """D(x, y) = mean(x) + 0.3 y - 0.2, one logit per image."""

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(1) + 0.3 * labels.float() - 0.2


@pytest.mark.parametrize("mode, smoothing", MODES, ids=MODE_IDS)
def test_cgan_losses_are_the_papers_on_known_networks(mode, smoothing):
    """D: GAN(D(x|y), real) + GAN(D(G(z|y)|y), fake), not halved; G: GAN(D(G(z|y)|y), real)."""
    model = build_model(
        helpers.train_config(*helpers.TINY, f"model.gan_mode={mode}", f"model.label_smoothing={smoothing}").model,
        {"input_nc": 1, "output_nc": 1, "image_size": 16, "num_classes": 10},
    )
    model.netG, model.netD = ClassImage(), ClassCritic()
    real, labels = _batch(0, 4, 1, 16, 16), torch.tensor([0, 3, 7, 9])
    opt = Recorder()
    model.training_step({"image": real, "label": labels}, opt)

    d_real = real.flatten(1).mean(1) + 0.3 * labels - 0.2
    d_fake = (0.1 * (labels + 1) - 0.5) + 0.3 * labels - 0.2  # the fake image's mean is its fill value
    assert opt.losses["D"].item() == pytest.approx(d_terms(mode, d_real, d_fake, smoothing).item(), rel=1e-5)
    assert opt.losses["G"].item() == pytest.approx(g_term(mode, d_fake).item(), rel=1e-5)


# --- pix2pix: D sees cat(A, B) and cat(A, G(A)); its loss halved; lambda_L1 ---------------------------------

#: The stand-in D's weights for the channels of cat(A, B): A's three first, then B's.
PAIR_WEIGHTS = [0.1, 0.2, 0.3, -0.4, 0.5, 0.6]


@pytest.mark.parametrize("mode, smoothing", MODES, ids=MODE_IDS)
def test_pix2pix_losses_are_the_papers_on_known_networks(mode, smoothing):
    """D: (GAN(D(A, B), real) + GAN(D(A, G(A)), fake)) / 2; G: GAN(D(A, G(A)), real) + lambda_L1 ||B - G(A)||_1."""
    cfg = train_config(
        [*TINY_PIX2PIX, "data.root=unused", f"model.gan_mode={mode}", f"model.label_smoothing={smoothing}", "model.lambda_L1=7"]
    )
    model = build_model(cfg.model, {"input_nc": 3, "output_nc": 3, "image_size": 32})
    model.netG, model.netD = Shift(0.25), ChannelCritic(PAIR_WEIGHTS, bias=0.05)
    a, b = _batch(0, 2, 3, 8, 8), _batch(1, 2, 3, 8, 8)
    opt = Recorder()
    model.training_step({"A": a, "B": b}, opt)

    fake_b = a + 0.25
    # what D saw, in order: the real pair and the fake pair for its own step, the fake pair for G's, A's
    # channels first each time
    seen = model.netD.seen
    assert len(seen) == 3
    assert torch.equal(seen[0], torch.cat([a, b], 1))
    assert torch.allclose(seen[1], torch.cat([a, fake_b], 1)) and torch.allclose(seen[2], torch.cat([a, fake_b], 1))

    d_real = critic(PAIR_WEIGHTS, 0.05, torch.cat([a, b], 1))
    d_fake = critic(PAIR_WEIGHTS, 0.05, torch.cat([a, fake_b], 1))
    assert opt.losses["D"].item() == pytest.approx(0.5 * d_terms(mode, d_real, d_fake, smoothing).item(), rel=1e-5)
    l1 = (b - fake_b).abs().mean()
    assert opt.losses["G"].item() == pytest.approx((g_term(mode, d_fake) + 7 * l1).item(), rel=1e-5)


# --- CycleGAN: cycle and identity with their own weights; each D judges its own domain, halved -----------

#: Stand-ins: G_A(x) = x + 0.1, G_B(x) = 0.5 x; D_A and D_B weigh the three channels differently.
DA_WEIGHTS, DA_BIAS = [0.3, -0.2, 0.5], 0.1
DB_WEIGHTS, DB_BIAS = [-0.6, 0.4, 0.2], -0.2


def cyclegan(mode: str, smoothing: float, lambda_identity: float):
    cfg = train_config(
        [
            *TINY_CYCLEGAN,
            "data.root=unused",
            f"model.gan_mode={mode}",
            f"model.label_smoothing={smoothing}",
            "model.lambda_A=3",
            "model.lambda_B=7",
            f"model.lambda_identity={lambda_identity}",
        ]
    )
    model = build_model(cfg.model, {"input_nc": 3, "output_nc": 3, "image_size": 16})
    model.netG_A, model.netG_B = Shift(0.1), Scale(0.5)
    model.netD_A, model.netD_B = ChannelCritic(DA_WEIGHTS, DA_BIAS), ChannelCritic(DB_WEIGHTS, DB_BIAS)
    return model


@pytest.mark.parametrize("mode, smoothing", MODES, ids=MODE_IDS)
def test_cyclegan_losses_are_the_papers_on_known_networks(mode, smoothing):
    """G: GAN(D_A(G_A(A)), real) + GAN(D_B(G_B(B)), real) + lambda_A ||G_B(G_A(A)) - A||_1
    + lambda_B ||G_A(G_B(B)) - B||_1 + lambda_identity (lambda_B ||G_A(B) - B||_1 + lambda_A ||G_B(A) - A||_1);
    D_A: (GAN(D_A(B), real) + GAN(D_A(G_A(A)), fake)) / 2, D_B likewise on A and G_B(B)."""
    model = cyclegan(mode, smoothing, lambda_identity=0.4)
    a, b = _batch(0, 2, 3, 4, 4), _batch(1, 2, 3, 4, 4)
    opt = Recorder()
    out = model.training_step({"A": a, "B": b}, opt)

    fake_b, fake_a = a + 0.1, 0.5 * b
    rec_a, rec_b = 0.5 * fake_b, fake_a + 0.1
    da = lambda x: critic(DA_WEIGHTS, DA_BIAS, x)  # noqa: E731
    db = lambda x: critic(DB_WEIGHTS, DB_BIAS, x)  # noqa: E731
    expected = {
        "loss_G/gan_A": g_term(mode, da(fake_b)),
        "loss_G/gan_B": g_term(mode, db(fake_a)),
        "loss_G/cycle_A": 3 * (rec_a - a).abs().mean(),
        "loss_G/cycle_B": 7 * (rec_b - b).abs().mean(),
        # identity: G_A should leave a B image alone (weighted by lambda_B), G_B an A image (by lambda_A)
        "loss_G/idt_A": 0.4 * 7 * ((b + 0.1) - b).abs().mean(),
        "loss_G/idt_B": 0.4 * 3 * (0.5 * a - a).abs().mean(),
        "loss_D/A": 0.5 * d_terms(mode, da(b), da(fake_b), smoothing),
        "loss_D/B": 0.5 * d_terms(mode, db(a), db(fake_a), smoothing),
    }
    for key, value in expected.items():
        assert out[key].item() == pytest.approx(value.item(), rel=1e-5), key
    g_keys = [k for k in expected if k.startswith("loss_G/")]
    assert opt.losses["G"].item() == pytest.approx(sum(expected[k] for k in g_keys).item(), rel=1e-5)
    assert opt.losses["D"].item() == pytest.approx((expected["loss_D/A"] + expected["loss_D/B"]).item(), rel=1e-5)


def test_cyclegan_without_identity_minimises_gan_and_cycle_terms_only():
    model = cyclegan("lsgan", 0.0, lambda_identity=0.0)
    a, b = _batch(0, 2, 3, 4, 4), _batch(1, 2, 3, 4, 4)
    opt = Recorder()
    out = model.training_step({"A": a, "B": b}, opt)
    fake_b, fake_a = a + 0.1, 0.5 * b
    expected = (
        ((critic(DA_WEIGHTS, DA_BIAS, fake_b) - 1) ** 2).mean()
        + ((critic(DB_WEIGHTS, DB_BIAS, fake_a) - 1) ** 2).mean()
        + 3 * (0.5 * fake_b - a).abs().mean()
        + 7 * (fake_a + 0.1 - b).abs().mean()
    )
    assert opt.losses["G"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert not any("idt" in key for key in out)


# --- the image pool -------------------------------------------------------------------------------------


def test_a_full_pool_returns_a_past_image_half_the_time():
    """Per image, once the pool is full: a stored (past) image with probability 1/2, else the new one. Over
    n draws the count of past images is Binomial(n, 1/2); 4.5 standard deviations either side leave a
    correct pool failing with probability about 7e-6 (and the seed is fixed), while a swap rate off by
    0.04 or more falls outside."""
    torch.manual_seed(0)
    size, n = 10, 4000
    pool = ImagePool(size)
    pool.query(torch.full((size, 1, 1, 1), -1.0))  # fill it with past images, all marked -1
    new = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    out = pool.query(new).flatten()
    from_past = int((out != new.flatten()).sum())
    tolerance = 4.5 * math.sqrt(n * 0.5 * 0.5)
    assert abs(from_past - n / 2) < tolerance, (from_past, n / 2, tolerance)
    # a past image is one that was stored before it was drawn: the fill, or an earlier image of this batch
    past = out[out != new.flatten()]
    positions = (out != new.flatten()).nonzero().flatten().float()
    assert bool(((past == -1) | (past < positions)).all())


# --- the gradient penalty pulls the critic's gradient norm to 1 ---------------------------------------------


class LinearCritic(nn.Module):
    """f(x) = <w, x>: its gradient is w everywhere."""

    def __init__(self, numel: int, norm: float) -> None:
        super().__init__()
        w = torch.randn(numel, generator=torch.Generator().manual_seed(0))
        self.w = nn.Parameter(w * norm / w.norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


@pytest.mark.parametrize("norm", [0.25, 3.0])
def test_the_penalty_of_a_linear_critic_is_weight_times_the_squared_distance_of_its_norm_from_one(norm):
    penalty = gradient_penalty(LinearCritic(48, norm), _batch(0, 5, 3, 4, 4), _batch(1, 5, 3, 4, 4), weight=6.0)
    assert penalty.item() == pytest.approx(6.0 * (norm - 1.0) ** 2, rel=1e-5)


@pytest.mark.parametrize("norm", [0.25, 3.0])
def test_minimising_the_penalty_alone_drives_a_linear_critics_norm_to_one(norm):
    critic_net = LinearCritic(48, norm)
    opt = torch.optim.SGD(critic_net.parameters(), lr=0.01)
    for step in range(60):
        loss = gradient_penalty(critic_net, _batch(2 * step, 5, 3, 4, 4), _batch(2 * step + 1, 5, 3, 4, 4), weight=10.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # each step moves |w| by 0.01 * 20 (|w| - 1): the distance shrinks by 0.8 a step, to 1e-5 of its start
    assert critic_net.w.norm().item() == pytest.approx(1.0, abs=1e-4)


def test_minimising_the_penalty_alone_drives_a_nonlinear_critics_gradient_norms_to_one():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.Tanh(), nn.Linear(32, 1))
    with torch.no_grad():
        for layer in (net[1], net[3]):
            layer.weight.mul_(4.0)  # steep: gradient norms far above 1

    def gradient_norms(x: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(x).sum(), x)
        return grad.flatten(1).norm(dim=1)

    probe = _batch(99, 64, 3, 4, 4)
    before = (gradient_norms(probe) - 1).abs().mean().item()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(150):
        loss = gradient_penalty(net, _batch(2 * step, 32, 3, 4, 4), _batch(2 * step + 1, 32, 3, 4, 4), weight=10.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = (gradient_norms(probe) - 1).abs().mean().item()
    # a tanh network cannot have unit gradient norm everywhere; on average it comes within a few percent
    assert before > 1.0 and after < 0.1, (before, after)


# --- the papers' defaults, as the YAML composes them ----------------------------------------------------


def _composed(*overrides: str):
    return validate_train(helpers.compose_config("train", *overrides))


PAPER_OPTIM = (2e-4, 0.5, 0.999)


@pytest.mark.parametrize(
    "overrides", [["model=pix2pix", "data=aligned", "data.root=x"], ["experiment=pix2pix_facades"]], ids=["model", "preset"]
)
def test_pix2pix_defaults_are_the_papers(overrides):
    cfg = _composed(*overrides)
    m, g, d = cfg.model, cfg.model.generator, cfg.model.discriminator
    assert (g.arch, g.norm, g.dropout, g.init_type, g.init_gain) == ("unet_256", "batch", True, "normal", 0.02)
    # basic: the 70x70 PatchGAN (3 layers), seeing the pair
    assert (d.arch, d.norm, d.init_type, d.init_gain) == ("basic", "batch", "normal", 0.02)
    assert (m.gan_mode, m.lambda_L1, m.label_smoothing) == ("vanilla", 100.0, 0.0)
    assert (m.optim.lr, m.optim.beta1, m.optim.beta2, m.optim.weight_decay) == (*PAPER_OPTIM, 0.0)
    t = cfg.trainer
    assert (t.batch_size, t.n_epochs, t.n_epochs_decay, t.lr_policy) == (1, 100, 100, "linear")
    assert (cfg.data.load_size, cfg.data.crop_size, cfg.data.preprocess, cfg.data.flip) == (286, 256, "resize_and_crop", True)
    if "experiment=pix2pix_facades" in overrides:
        assert (cfg.data.name, cfg.data.direction) == ("facades", "BtoA")  # labels -> photo, as in the paper


@pytest.mark.parametrize(
    "overrides", [["model=cyclegan", "data=unaligned", "data.root=x"], ["experiment=cyclegan_horse2zebra"]], ids=["model", "preset"]
)
def test_cyclegan_defaults_are_the_papers(overrides):
    cfg = _composed(*overrides)
    m, g, d = cfg.model, cfg.model.generator, cfg.model.discriminator
    assert (g.arch, g.norm, g.dropout, g.init_type, g.init_gain) == ("resnet_9blocks", "instance", False, "normal", 0.02)
    assert (d.arch, d.norm, d.init_type, d.init_gain) == ("basic", "instance", "normal", 0.02)
    assert (m.gan_mode, m.lambda_A, m.lambda_B, m.lambda_identity, m.pool_size, m.label_smoothing) == ("lsgan", 10.0, 10.0, 0.5, 50, 0.0)
    assert (m.optim.lr, m.optim.beta1, m.optim.beta2, m.optim.weight_decay) == (*PAPER_OPTIM, 0.0)
    t = cfg.trainer
    assert (t.batch_size, t.n_epochs, t.n_epochs_decay, t.lr_policy) == (1, 100, 100, "linear")
    assert (cfg.data.load_size, cfg.data.crop_size, cfg.data.preprocess, cfg.data.flip) == (286, 256, "resize_and_crop", True)
