"""Better images for the same compute: DiffAugment, spectral normalisation, the projection discriminator and
class-conditional batch norm, each checked for what it promises and trained, resumed bit for bit and exported."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf

import helpers
from _robust_helpers import CGAN, COMMON, CYCLEGAN, PIX2PIX, assert_one_line_error, fit, model_overrides, run_cli_inprocess
from helpers import assert_same_tensors, load_ckpt
from translate.augment import POLICIES, DiffAugment, brightness, contrast, cutout, parse_policy, saturation, translation
from translate.cli.exporting import export_generator
from translate.cli.testing import load_trained
from translate.config import ExportConfig, ExportFormat
from translate.errors import ConfigError
from translate.models.base import Optimization, build_model
from translate.models.configs import DCGANDiscriminatorConfig
from translate.networks.configs import DiscriminatorConfig
from translate.networks.discriminators import (
    ConditionalDiscriminator,
    PixelDiscriminator,
    ProjectionDiscriminator,
    build_conditional_discriminator,
    build_discriminator,
)
from translate.networks.generators import ConditionalBatchNorm2d, ConditionalGenerator
from translate.networks.init import init_weights
from translate.settings.validate import validate_test

ALL = "color,translation,cutout"
#: The cGAN of experiment=cgan_projection, tiny: projection D with spectral norm and no batch norm,
#: conditional batch norm in G, hinge loss, and DiffAugment.
PROJECTION = [
    "model.gan_mode=hinge",
    "model.discriminator.arch=projection",
    "model.discriminator.spectral_norm=true",
    "model.discriminator.norm=none",
    "model.generator.conditional_bn=true",
]


def images(n: int = 8, c: int = 3, side: int = 16, seed: int = 0) -> torch.Tensor:
    """Random images in [0.1, 1]: no pixel is zero, so a zero in an output was put there by the augmentation."""
    return torch.rand(n, c, side, side, generator=torch.Generator().manual_seed(seed)) * 0.9 + 0.1


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` [C, H, W] moved down by dy and right by dx, zeros where nothing moved in."""
    out = torch.zeros_like(x)
    h, w = x.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[:, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    return out


# --- DiffAugment -----------------------------------------------------------------------------------------


def test_no_policy_returns_the_images_and_draws_no_random_numbers():
    x = images()
    state = torch.get_rng_state()
    assert DiffAugment("")(x) is x and not DiffAugment("")
    # a run without DiffAugment keeps the random stream (and so the results) it had before the option existed
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("policy", ["colour", "color,flip", "translation,,Cutout"])
def test_an_unknown_policy_is_refused_naming_the_key_and_the_valid_names(policy):
    with pytest.raises(ConfigError) as err:
        parse_policy(policy)
    message = str(err.value)
    assert "\n" not in message and f"model.diffaugment={policy}" in message and "color, translation, cutout" in message


def test_policies_apply_in_the_papers_order_whatever_order_they_are_named_in():
    assert parse_policy(" cutout, color ,translation") == ("color", "translation", "cutout") == tuple(POLICIES)


def test_translation_moves_each_sample_by_at_most_an_eighth_of_the_side_filling_with_zeros():
    x = images(n=16, side=16)
    torch.manual_seed(0)
    out = translation(x)
    found = []
    for i in range(len(x)):
        # the paper's range: up to 16 / 8 = 2 pixels each way
        fits = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(out[i], shifted(x[i], dy, dx))]
        assert fits, f"sample {i} is not x shifted by <= 2 pixels"
        found.append(fits[0])
    assert len(set(found)) > 1  # each sample draws its own shift


def test_cutout_zeroes_a_square_of_half_the_side_per_sample():
    x = images(n=32, side=16)
    torch.manual_seed(0)
    out = cutout(x)
    sides = set()
    for i in range(len(x)):
        cut = (out[i] == 0).all(0)
        rows, cols = cut.any(1).nonzero().flatten(), cut.any(0).nonzero().flatten()
        box = cut[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        assert box.all() and cut.sum() == box.numel(), f"sample {i}: the zeros are not one rectangle"
        assert len(rows) <= 8 and len(cols) <= 8
        # a square clipped by the border is cut short only on the side of that border
        assert len(rows) == 8 or rows[0] == 0 or rows[-1] == 15
        assert torch.equal(out[i][:, ~cut], x[i][:, ~cut])
        sides.add((len(rows), len(cols)))
    assert (8, 8) in sides and len(sides) > 1


def test_colour_changes_are_per_sample_brightness_saturation_and_contrast():
    x = images(n=16)
    torch.manual_seed(0)
    moved = brightness(x) - x
    offsets = moved.flatten(1)
    assert torch.allclose(offsets, offsets[:, :1].expand_as(offsets), atol=1e-6)  # one offset per image
    assert offsets.abs().max() <= 0.5 and offsets[:, 0].std() > 0.05

    grey = x.mean(1, keepdim=True)
    sat = saturation(x)
    assert torch.allclose(sat.mean(1, keepdim=True), grey, atol=1e-6)  # the grey of every pixel is kept
    factors = ((sat - grey).flatten(1) / (x - grey).flatten(1)).median(1).values
    assert torch.allclose(sat - grey, factors.view(-1, 1, 1, 1) * (x - grey), atol=1e-5)
    assert factors.min() >= 0 and factors.max() <= 2 and factors.std() > 0.1

    mean = x.mean((1, 2, 3), keepdim=True)
    con = contrast(x)
    assert torch.allclose(con.mean((1, 2, 3), keepdim=True), mean, atol=1e-5)
    factors = ((con - mean).flatten(1) / (x - mean).flatten(1)).median(1).values
    assert torch.allclose(con - mean, factors.view(-1, 1, 1, 1) * (x - mean), atol=1e-5)
    assert factors.min() >= 0.5 and factors.max() <= 1.5 and factors.std() > 0.05


def test_a_pair_augmented_together_stays_aligned_and_each_image_keeps_its_own_colour_statistics():
    a, b1, b2 = images(seed=1), images(seed=2), images(seed=3)
    augment = DiffAugment(ALL)
    torch.manual_seed(5)
    same = augment(torch.cat([a, a], 1), groups=(3, 3))
    assert torch.equal(same[:, :3], same[:, 3:])  # identical inputs get identical shifts, cutouts and colours
    torch.manual_seed(5)
    one = augment(torch.cat([a, b1], 1), groups=(3, 3))
    torch.manual_seed(5)
    other = augment(torch.cat([a, b2], 1), groups=(3, 3))
    # A's augmentation does not depend on what B is: no statistic is shared across the pair
    assert torch.equal(one[:, :3], other[:, :3]) and torch.equal(one[:, :3], same[:, :3])


def test_diffaugment_is_differentiable_and_repeats_under_the_same_seed():
    x = images().requires_grad_(True)
    torch.manual_seed(3)
    out = DiffAugment(ALL)(x)
    out.square().sum().backward()
    # the generator learns through the augmentation: every pixel that survives translation and cutout gets a gradient
    assert torch.isfinite(x.grad).all() and (x.grad != 0).float().mean() > 0.3
    torch.manual_seed(3)
    assert torch.equal(DiffAugment(ALL)(x.detach()), out.detach())


class _Steps(Optimization):
    """Runs each update's backward so that the model's step completes; applies nothing."""

    def step(self, name, loss):
        loss.backward()


def _seen_by(net: nn.Module) -> list:
    seen: list = []
    net.register_forward_pre_hook(lambda module, args: seen.append([a.detach().clone() for a in args]))
    return seen


def test_the_cgan_discriminator_sees_augmented_images_and_the_true_labels():
    cfg = helpers.train_config(*CGAN, f"model.diffaugment='{ALL}'").model
    model = build_model(cfg, {"input_nc": 1, "output_nc": 1, "image_size": 16, "num_classes": 10})
    seen = _seen_by(model.netD)
    real, labels = images(n=4, c=1) * 2 - 1, torch.tensor([0, 3, 5, 9])
    model.training_step({"image": real, "label": labels}, _Steps())
    assert len(seen) == 3  # D(real), D(fake) for D, D(fake) for G
    assert not torch.equal(seen[0][0], real) and seen[0][0].shape == real.shape
    assert all(torch.equal(args[1], labels) for args in seen)


def test_the_pix2pix_discriminator_sees_each_pair_augmented_as_one():
    cfg = helpers.train_config(*PIX2PIX, "data.root=unused", f"model.diffaugment='{ALL}'").model
    model = build_model(cfg, {"input_nc": 3, "output_nc": 3, "image_size": 32})
    seen = _seen_by(model.netD)
    x = images(n=2, side=32) * 2 - 1
    model.training_step({"A": x, "B": x}, _Steps())
    pair = seen[0][0]
    assert not torch.equal(pair, torch.cat([x, x], 1))
    assert torch.equal(pair[:, :3], pair[:, 3:])  # A and B of the real pair moved and were cut as one


def test_the_cyclegan_discriminators_see_augmented_images():
    cfg = helpers.train_config(*CYCLEGAN, "data.root=unused", f"model.diffaugment='{ALL}'").model
    model = build_model(cfg, {"input_nc": 3, "output_nc": 3, "image_size": 16})
    seen_A = _seen_by(model.netD_A)
    a, b = images(n=1, seed=1) * 2 - 1, images(n=1, seed=2) * 2 - 1
    model.training_step({"A": a, "B": b}, _Steps())
    # G's step (fake_B), then D_A's (real_B, then the pooled fake_B): real B reaches D_A augmented
    assert len(seen_A) == 3 and not torch.equal(seen_A[1][0], b)


def test_a_misspelled_policy_stops_translate_train_with_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli_inprocess(monkeypatch, capsys, *COMMON, *CGAN, "model.diffaugment='color,shift'", "trainer.max_steps=1")
    assert_one_line_error(code, err, "model.diffaugment=color,shift", "'shift'", "color, translation, cutout")
    # unquoted, Hydra would read the comma as a sweep: the one line says how to pass the list as one value
    code, err = run_cli_inprocess(monkeypatch, capsys, *COMMON, *CGAN, "model.diffaugment=color,cutout", "trainer.max_steps=1")
    assert_one_line_error(code, err, "model.diffaugment=color,cutout", "\"model.diffaugment='color,cutout'\"", "-m")


# --- spectral normalisation --------------------------------------------------------------------------------

SPECTRAL = (nn.Conv2d, nn.Linear, nn.Embedding)


def _discriminators(spectral_norm: bool) -> dict:
    d_cfg = OmegaConf.structured(DCGANDiscriminatorConfig(norm="none", spectral_norm=spectral_norm, ndf=8))
    return {
        "patchgan": build_discriminator(OmegaConf.structured(DiscriminatorConfig(ndf=8, norm="none", spectral_norm=spectral_norm)), 6),
        "pixel": build_discriminator(OmegaConf.structured(DiscriminatorConfig(arch="pixel", ndf=8, spectral_norm=spectral_norm)), 6),
        "dcgan": build_conditional_discriminator(d_cfg, 1, 10, 16),
        "projection": build_conditional_discriminator(OmegaConf.merge(d_cfg, {"arch": "projection"}), 1, 10, 16),
    }


def _largest_singular_value(m: nn.Module) -> float:
    return torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()


@pytest.mark.parametrize("arch", ["patchgan", "pixel", "dcgan", "projection"])
def test_spectral_norm_divides_every_weight_of_every_discriminator_by_its_largest_singular_value(arch):
    torch.manual_seed(0)
    net = _discriminators(True)[arch].train()
    layers = [m for m in net.modules() if isinstance(m, SPECTRAL)]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    # the power iteration runs once per training forward; a few batches bring every estimate to sigma
    for _ in range(5):
        if arch in ("dcgan", "projection"):
            net(torch.randn(2, 1, 16, 16), torch.tensor([1, 2]))
        else:
            net(torch.randn(2, 6, 32, 32))
    for m in layers:
        assert _largest_singular_value(m) == pytest.approx(1.0, abs=0.02), m
    # off by default: the plain layers keep weights of initialisation size
    plain = [m for m in _discriminators(False)[arch].modules() if isinstance(m, SPECTRAL)]
    assert not any(hasattr(m, "parametrizations") for m in plain)


def test_initialisation_sets_the_weight_under_spectral_norm_and_restarts_its_power_iteration():
    # seeded: the last convolution has only 128 weights, whose sample std strays beyond 5% of 0.3 often
    torch.manual_seed(0)
    net = init_weights(PixelDiscriminator(3, ndf=64, norm="none", spectral_norm=True), "normal", 0.3)
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and m.in_channels > 3:
            # the unnormalised weight has the configured N(0, 0.3), not torch's default init
            assert m.parametrizations.weight.original.std().item() == pytest.approx(0.3, rel=0.05)
            # and the normalised weight is already right before any training forward: the estimates follow the new weight
            assert _largest_singular_value(m) == pytest.approx(1.0, abs=0.02)


# --- the projection discriminator and class-conditional batch norm --------------------------------------


def test_projection_logit_is_the_unconditional_term_plus_the_class_embedding_times_the_features():
    torch.manual_seed(0)
    d = ProjectionDiscriminator(1, 10, 16, ndf=8, norm="none").eval()
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 3])
    # phi keeps where the features are: the trunk's whole 4 x 4 x 16 map (summing it over positions left
    # the MNIST cGAN at chance, see ProjectionDiscriminator)
    phi = d.trunk(x).flatten(1)
    assert phi.shape == (4, 16 * 4 * 4) and torch.equal(d.features(x), phi)
    expected = d.psi(phi).flatten() + (d.embed.weight[y] * phi).sum(1)
    assert torch.allclose(d(x, y), expected, atol=1e-6)
    # the class enters only through the projection: its logit moves with the class embedding alone
    assert not torch.allclose(d(x, y), d(x, y + 1))
    with torch.no_grad():
        d.embed.weight.zero_()
    assert torch.equal(d(x, y), d(x, y + 1))


def test_an_unknown_cgan_discriminator_arch_is_refused_with_the_choices():
    cfg = OmegaConf.structured(DCGANDiscriminatorConfig(arch="patchgan"))
    with pytest.raises(
        ConfigError, match=r"^model.discriminator.arch=patchgan is not a cGAN discriminator; use one of: dcgan, projection$"
    ):
        build_conditional_discriminator(cfg, 1, 10, 16)
    assert isinstance(
        build_conditional_discriminator(OmegaConf.structured(DCGANDiscriminatorConfig()), 1, 10, 16), ConditionalDiscriminator
    )


def test_conditional_batch_norm_is_batch_norm_with_a_gain_and_bias_per_class():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(4, num_classes=3)
    # each class starts with its own gain and bias: 1 + and 0 + orthonormal rows, so the class matters from step 0
    for table, centre in ((cbn.gain.weight, 1.0), (cbn.bias.weight, 0.0)):
        deviation = table.detach() - centre
        assert torch.allclose(deviation @ deviation.T, torch.eye(3), atol=1e-5)
    with torch.no_grad():
        cbn.gain.weight.normal_()
        cbn.bias.weight.normal_()
    x, y = torch.randn(6, 4, 5, 5), torch.tensor([0, 1, 2, 2, 1, 0])
    normed = nn.functional.batch_norm(x, None, None, training=True)
    expected = cbn.gain.weight[y][:, :, None, None] * normed + cbn.bias.weight[y][:, :, None, None]
    assert torch.allclose(cbn(x, y), expected, atol=1e-5)


def test_the_conditional_bn_generator_takes_the_class_only_through_its_norms():
    torch.manual_seed(0)
    g = init_weights(ConditionalGenerator(z_dim=8, num_classes=10, out_channels=1, image_size=16, ngf=4, conditional_bn=True))
    assert g.model[0].in_channels == 8  # z alone: no one-hot input
    norms = [m for m in g.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert len(norms) == 2 and not any(isinstance(m, nn.BatchNorm2d) and m.affine for m in g.modules())
    z, sevens, sixes = torch.randn(4, 8), torch.full((4,), 7), torch.full((4,), 6)
    out = g(z, sevens)
    assert out.shape == (4, 1, 16, 16)
    assert not torch.allclose(out, g(z, sixes))  # each class has its own gains and biases from the start
    with torch.no_grad():
        for m in norms:  # every class given class 0's gains and biases: no other path is left for the class
            m.gain.weight.copy_(m.gain.weight[:1].expand_as(m.gain.weight))
            m.bias.weight.copy_(m.bias.weight[:1].expand_as(m.bias.weight))
    assert torch.equal(g(z, sevens), g(z, sixes))


def test_the_projection_preset_sets_the_recipe_and_only_that(compose_config):
    from translate.settings.validate import validate_train

    m = validate_train(compose_config("train", "experiment=cgan_projection")).model
    assert (m.name, m.gan_mode, m.discriminator.arch, m.discriminator.spectral_norm, str(m.discriminator.norm)) == (
        "cgan",
        "hinge",
        "projection",
        True,
        "none",
    )
    assert m.generator.conditional_bn and (m.optim.beta1, m.optim.beta2) == (0.5, 0.999)
    # G learns twice as fast as D against the spectrally normalised D (see conf/experiment/cgan_projection.yaml)
    assert (m.optim.lr, m.optim.G.lr, m.optim.D.lr) == (2e-4, 4e-4, None)


# --- each option trains, resumes bit for bit and exports --------------------------------------------------

#: (model, its options): every option of this file is switched on in at least one.
CASES = {
    "cgan_projection": ("cgan", [*PROJECTION, f"model.diffaugment='{ALL}'"]),
    "cgan_dcgan_sn": (
        "cgan",
        ["model.discriminator.spectral_norm=true", "model.diffaugment=translation", "model.generator.upsample=resize_conv"],
    ),
    "pix2pix": (
        "pix2pix",
        [
            "model.discriminator.spectral_norm=true",
            "model.discriminator.norm=none",
            f"model.diffaugment='{ALL}'",
            "model.generator.upsample=resize_conv",
        ],
    ),
    "cyclegan": (
        "cyclegan",
        ["model.discriminator.spectral_norm=true", f"model.diffaugment='{ALL}'", "model.generator.upsample=resize_conv"],
    ),
}


@pytest.fixture
def deterministic():
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield ["device.deterministic=true"]
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


@pytest.mark.parametrize("case", CASES)
def test_each_option_trains_resumes_bit_for_bit_and_exports(case, deterministic, tmp_path):
    # Exact, not within a tolerance: both runs compute on one machine and one numeric path (same kernels, same
    # threads, same order of sums), so any difference is state the resume lost, whatever the CPU kind.
    model, options = CASES[case]
    overrides = [*model_overrides(model, tmp_path / "data"), *options, *deterministic]
    straight, run = tmp_path / "straight", tmp_path / "run"
    fit(straight, *overrides, "trainer.max_steps=5")
    fit(run, *overrides, "trainer.max_steps=2")
    fit(run, *overrides, "trainer.max_steps=5", f"resume={run}")
    expected, got = load_ckpt(straight / "checkpoints" / "latest.pt"), load_ckpt(run / "checkpoints" / "latest.pt")
    assert got["step"] == expected["step"] == 5
    if "spectral_norm=true" in " ".join(options):
        # the power-iteration vectors are training state too, saved with the weights
        assert any(k.endswith("parametrizations.weight.0._u") for k in got["networks"]["D" if model != "cyclegan" else "D_A"])
    assert_same_tensors(got["networks"], expected["networks"])
    assert_same_tensors(got["optimizers"], expected["optimizers"])
    assert_same_tensors(got["extra"], expected["extra"])

    # translate-test and translate-export rebuild the run from its checkpoint alone
    path = export_generator(ExportConfig(run=str(run), format=ExportFormat.torchscript, output=str(tmp_path / "g.pt")))
    net = (
        load_trained(validate_test(helpers.compose_config("test", f"run={run}", "device=cpu")))[0]
        .networks["G" if model != "cyclegan" else "G_A"]
        .eval()
    )
    if model == "cgan":
        inputs = (torch.randn(3, 8), torch.tensor([0, 4, 9]))
    else:
        inputs = (torch.rand(2, 3, 32, 32) * 2 - 1,)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(path))(*inputs), net(*inputs), atol=1e-5)


def test_the_conditional_bn_generator_exports_to_onnx(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    fit(tmp_path / "run", *CGAN, *PROJECTION, "trainer.max_steps=2")
    path = export_generator(ExportConfig(run=str(tmp_path / "run"), format=ExportFormat.onnx, output=str(tmp_path / "g.onnx")))
    net = load_trained(validate_test(helpers.compose_config("test", f"run={tmp_path / 'run'}", "device=cpu")))[0].netG.eval()
    z, labels = torch.randn(3, 8), torch.tensor([1, 5, 9])
    (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"z": z.numpy(), "labels": labels.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(got), net(z, labels), atol=1e-4)


def test_spectral_norm_and_diffaugment_train_under_bf16_autocast(tmp_path):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if nn.functional.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3)).dtype != torch.bfloat16:
            pytest.skip("this torch has no CPU autocast for bf16")
    fit(tmp_path / "run", *CGAN, *PROJECTION, f"model.diffaugment='{ALL}'", "device.amp=bf16", "trainer.max_steps=3")
    state = load_ckpt(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert state["step"] == 3
    for name, tensor in state["networks"]["D"].items():
        assert torch.isfinite(tensor).all(), name
        # the power iteration ran under autocast, but its vectors stay float32 (they are written in place)
        assert tensor.dtype == torch.float32, name


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="torch.compile on the CPU needs a C compiler")
def test_a_compiled_spectral_norm_discriminator_computes_and_updates_what_the_eager_one_does(tmp_path, monkeypatch):
    # A private inductor cache: entries another run left in /tmp must not decide whether this one passes.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch.manual_seed(0)
    # 8 px: one convolution, psi and the embedding, each spectrally normalised; small graphs compile fast
    eager = ProjectionDiscriminator(1, 10, 8, ndf=4, norm="none", spectral_norm=True)
    compiled = ProjectionDiscriminator(1, 10, 8, ndf=4, norm="none", spectral_norm=True)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile(dynamic=False)  # as the engine compiles every network with device.compile=true
    x, y = torch.randn(4, 1, 8, 8, requires_grad=True), torch.tensor([0, 3, 5, 9])
    for net in (eager, compiled):
        x.grad = None
        net(x, y).square().mean().backward()
        net.grad_x = x.grad
    # The same sums in another order (inductor fuses them): equal up to float32 rounding, measured against each
    # gradient's norm (spectral norm's gradient subtracts a projection, so small entries carry the big ones' error).
    pairs = {"x": (compiled.grad_x, eager.grad_x)}
    pairs.update({k: (compiled.get_parameter(k).grad, p.grad) for k, p in eager.named_parameters()})
    for k, (got, want) in pairs.items():
        assert (got - want).norm() <= 1e-3 * want.norm(), k
    state, expected = compiled.state_dict(), eager.state_dict()
    assert state.keys() == expected.keys() and not any("_orig_mod" in k for k in state)
    vectors = [k for k in state if k.endswith(("._u", "._v")) and state[k].numel() > 1]
    # the power iteration ran inside the compiled graph and wrote its vectors back, as eager training does
    assert vectors and all(torch.allclose(state[k], expected[k], atol=1e-5) for k in vectors)
