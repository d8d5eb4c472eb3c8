"""CUT and FastCUT: PatchNCE pinned on hand-computed cases, the generator's objective as the paper writes it,
the projection head built at construction with the layers and initialisation the authors' first batch would
give it and identical on every process, exact resume with it, the authors' defaults as the YAML composes them,
and translate-test's one-way protocol on unpaired and on paired data."""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import List

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import helpers
from _models_helpers import (
    CPU,
    TINY_CUT,
    Recorder,
    as_input,
    as_png_levels,
    assert_test_outputs,
    load_run_model,
    png_error,
    read_metrics,
    train,
    translate_test,
    write_folder,
    write_pairs,
)
from test_distributed import LOOPBACK, _free_port
from translate.cli.export import main as export_main
from translate.config import Weights
from translate.errors import ConfigError
from translate.losses import patch_nce_loss
from translate.models.base import build_model
from translate.models.checkpoint import Checkpoint, trained_model
from translate.networks.antialias import BlurDownsample, BlurUpsample, _replicate_pad1
from translate.networks.discriminators import NLayerDiscriminator
from translate.networks.generators import ResnetGenerator
from translate.networks.patchnce import PatchSampleF, sample_patch_ids
from translate.training.engine import Trainer

SIZE = 16  # TINY_CUT's


# --- PatchNCE on a case small enough to compute by hand ---------------------------------------------------


def unit(rows: List[List[float]]) -> torch.Tensor:
    t = torch.tensor(rows)
    return t / t.norm(dim=1, keepdim=True)


#: Two images of three patches each, in 2-D: rows 0-2 are image 0's patches, rows 3-5 image 1's.
QUERIES = unit([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0], [0.8, -0.6], [0.6, 0.8]])
KEYS = unit([[0.8, 0.6], [1.0, 0.0], [0.0, -1.0], [-0.6, 0.8], [0.0, 1.0], [1.0, 0.0]])


def by_hand(queries: torch.Tensor, keys: torch.Tensor, patches: int, temperature: float, whole_batch: bool = False) -> List[float]:
    """-log(exp(q_i.k_i / T) / (exp(q_i.k_i / T) + sum_j exp(q_i.k_j / T) + exp(-10 / T))) for each row i, the
    j running over the other rows of i's image (of the batch with ``whole_batch``); the last term is the
    authors' masked self-similarity, which stands in the negatives' column of the positive."""
    q, k = queries.tolist(), keys.tolist()
    losses = []
    for i in range(len(q)):
        image = i // patches
        dots = [sum(a * b for a, b in zip(q[i], k[j])) / temperature for j in range(len(k))]
        others = [dots[j] for j in range(len(k)) if j != i and (whole_batch or j // patches == image)]
        denominator = math.exp(dots[i]) + sum(math.exp(d) for d in others) + math.exp(-10 / temperature)
        losses.append(-math.log(math.exp(dots[i]) / denominator))
    return losses


@pytest.mark.parametrize("temperature", [0.07, 0.5, 2.0])
def test_patch_nce_is_the_softmax_cross_entropy_of_the_positive_among_its_images_patches(temperature):
    got = patch_nce_loss(QUERIES, KEYS, num_images=2, temperature=temperature)
    assert got.shape == (6,)
    assert got.tolist() == pytest.approx(by_hand(QUERIES, KEYS, 3, temperature), rel=1e-5, abs=1e-6)


def test_the_positive_is_the_key_at_the_same_position():
    # Keys in another order make other keys the positives: a different, larger loss.
    right = patch_nce_loss(QUERIES, QUERIES, 2, 0.07)
    shuffled = patch_nce_loss(QUERIES, QUERIES[[1, 2, 0, 4, 5, 3]], 2, 0.07)
    assert right.mean() < 0.1 < shuffled.mean()


def test_the_negatives_come_from_the_same_image_only_unless_asked():
    other = KEYS.clone()
    other[3:] = unit([[0.0, 1.0], [-1.0, 0.0], [0.6, -0.8]])  # image 1's keys change
    same, changed = patch_nce_loss(QUERIES, KEYS, 2, 0.5), patch_nce_loss(QUERIES, other, 2, 0.5)
    assert torch.equal(same[:3], changed[:3])  # image 0's losses do not see image 1's patches
    assert not torch.allclose(same[3:], changed[3:])
    everyone = patch_nce_loss(QUERIES, other, 2, 0.5, negatives_from_minibatch=True)
    assert everyone.tolist() == pytest.approx(by_hand(QUERIES, other, 3, 0.5, whole_batch=True), rel=1e-5)
    assert not torch.allclose(everyone[:3], changed[:3])


def test_only_the_queries_get_a_gradient():
    queries, keys = QUERIES.clone().requires_grad_(True), KEYS.clone().requires_grad_(True)
    patch_nce_loss(queries, keys, 2, 0.07).mean().backward()
    assert keys.grad is None
    assert queries.grad is not None and queries.grad.abs().sum() > 0


# --- anti-aliased resampling, in the authors' layer order ------------------------------------------------


def test_blur_resampling_keeps_a_flat_image_flat_and_halves_or_doubles_its_sides():
    flat = torch.full((1, 4, 6, 10), 0.3)
    torch.testing.assert_close(BlurDownsample(4)(flat), torch.full((1, 4, 3, 5), 0.3))
    torch.testing.assert_close(BlurUpsample(4)(flat), torch.full((1, 4, 12, 20), 0.3))
    assert BlurDownsample(2)(torch.randn(1, 2, 7, 5)).shape == (1, 2, 4, 3)  # ceil(side / 2)


def test_the_upsamplings_padding_is_replication_padding_values_and_gradients():
    x = torch.randn(2, 3, 5, 4, requires_grad=True)
    weights = torch.randn(2, 3, 7, 6)
    ours = (_replicate_pad1(x) * weights).sum()
    theirs = (torch.nn.ReplicationPad2d(1)(x) * weights).sum()
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(torch.autograd.grad(ours, x)[0], torch.autograd.grad(theirs, x)[0])


def test_the_antialiased_networks_have_the_authors_layer_indices_and_sizes():
    g = ResnetGenerator(3, 3, ngf=64, n_blocks=9, antialias=True, antialias_up=True)
    # the same parameters as the plain ResNet (stride-1 convolutions in place of strided ones), and the
    # blur filters as buffers at the indices of CUT's code, so its nce_layers and checkpoints fit
    assert sum(p.numel() for p in g.parameters()) == 11_378_179
    assert {k for k in g.state_dict() if k.endswith("filt")} == {f"model.{i}.filt" for i in (7, 11, 21, 25)}
    assert {int(k.split(".")[1]) for k in g.state_dict() if k.endswith(".weight") and "conv_block" not in k} == {1, 4, 8, 22, 26, 30}
    d = NLayerDiscriminator(3, ndf=8, n_layers=3, norm="instance", antialias=True)
    assert {k for k in d.state_dict() if k.endswith("filt")} == {f"model.{i}.filt" for i in (2, 6, 10)}
    assert d(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)  # the 70x70 PatchGAN's 30 x 30 patches


# --- the projection head ----------------------------------------------------------------------------------


def test_the_head_samples_the_same_positions_of_every_image_and_projects_them_to_unit_vectors():
    torch.manual_seed(0)
    features = [torch.randn(2, 3, 5, 4), torch.randn(2, 6, 2, 2)]
    head = PatchSampleF([3, 6], nc=7)
    ids = sample_patch_ids(features, num_patches=6)
    assert [len(i) for i in ids] == [6, 4]  # at most every position of a map
    assert all(len(set(i.tolist())) == len(i) and max(i.tolist()) < f.shape[2] * f.shape[3] for i, f in zip(ids, features))
    out = head(features, ids)
    assert [o.shape for o in out] == [(12, 7), (8, 7)]
    for layer, (feature, positions) in enumerate(zip(features, ids)):
        mlp = getattr(head, f"mlp_{layer}")
        for n in range(2):
            for p, position in enumerate(positions.tolist()):
                y, x = divmod(position, feature.shape[3])
                expected = mlp(feature[n, :, y, x])
                torch.testing.assert_close(out[layer][n * len(positions) + p], expected / expected.norm())


def tiny_cut(*overrides: str):
    return helpers.train_config(*CPU, *TINY_CUT, "data.root=unused", *overrides)


def test_the_head_is_built_at_construction_for_the_layers_any_batch_would_give_it():
    cfg = tiny_cut("model.netF_nc=256")
    torch.manual_seed(0)
    model = build_model(cfg.model, {"input_nc": 3, "output_nc": 3, "image_size": SIZE})
    # What the authors' first batch would size it from: the channels of the tapped layers, whatever the
    # batch's size and side (the MLPs see one patch vector at a time).
    for batch in (torch.randn(1, 3, SIZE, SIZE), torch.randn(3, 3, 2 * SIZE, 2 * SIZE)):
        channels = [f.size(1) for f in model.netG.encode(batch, cfg.model.nce_layers)]
        assert [getattr(model.netF, f"mlp_{i}")[0].in_features for i in range(4)] == channels == [3, 8, 16, 16]
    # Their init: xavier_normal with gain 0.02 (std 0.02 sqrt(2 / (fan_in + fan_out))) and zero biases.
    weight = model.netF.mlp_3[2].weight
    assert weight.shape == (256, 256)
    assert weight.std().item() == pytest.approx(0.02 * math.sqrt(2 / 512), rel=0.03)
    assert all(torch.count_nonzero(m.bias) == 0 for i in range(4) for m in getattr(model.netF, f"mlp_{i}") if hasattr(m, "bias"))
    # It trains with G, in G's optimiser, and is saved as a network of its own.
    assert model.optimizer_groups["G"] == ("G", "F") and "F" in model.networks


# --- the objective, against the paper's equations on the model's own networks -------------------------------


def patch_nce_by_hand(model, source: torch.Tensor, output: torch.Tensor, flipped: bool, temperature: float) -> torch.Tensor:
    """PatchNCE(G, H, source -> output) over every position of every tapped layer: per image, each output
    patch against all of the source's patches of that image; the mean over patches, images and layers."""
    layers = model.cfg.nce_layers
    with torch.no_grad():
        sources, outputs = model.netG.encode(source, layers), model.netG.encode(output, layers)
        terms = []
        for i, (z, zhat) in enumerate(zip(sources, outputs)):
            if flipped:
                zhat = zhat.flip(3)
            mlp = getattr(model.netF, f"mlp_{i}")
            for n in range(z.size(0)):
                k = mlp(z[n].flatten(1).T)
                q = mlp(zhat[n].flatten(1).T)
                # the authors' normalisation: x / (||x|| + 1e-7), which leaves a zero vector (all ReLUs off) at zero
                k, q = k / (k.norm(dim=1, keepdim=True) + 1e-7), q / (q.norm(dim=1, keepdim=True) + 1e-7)
                logits = q @ k.T / temperature
                # each row: its positive once, its own entry masked among the negatives, the other patches
                masked = torch.full((len(q), 1), -10.0 / temperature)
                terms.append((torch.logsumexp(torch.cat([logits, masked], 1), 1) - logits.diagonal()).mean())
        per_layer = torch.stack(terms).view(len(layers), -1).mean(1)
    return per_layer.mean()


@pytest.mark.parametrize("variant", ["cut", "fastcut"])
def test_the_losses_are_the_papers_on_the_models_own_networks(variant):
    # Distinct weights, and more patches than any map has: every position is sampled, so the loss does not
    # depend on which (PatchNCE is a mean over patches, indifferent to their order).
    extra = ["experiment=fastcut"] if variant == "fastcut" else []
    cfg = tiny_cut(*extra, "model.lambda_GAN=0.7", "model.nce_T=0.2", "model.num_patches=100000")
    m = cfg.model
    torch.manual_seed(0)
    model = build_model(m, {"input_nc": 3, "output_nc": 3, "image_size": SIZE})
    x, y = torch.rand(2, 3, SIZE, SIZE) * 2 - 1, torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    recorder = Recorder()
    torch.manual_seed(0)
    # FastCUT's coin comes first in the step: with this seed it says flip.
    flipped = m.flip_equivariance and bool(torch.rand(()) < 0.5)
    assert flipped == (variant == "fastcut")
    torch.manual_seed(0)
    logged = model.training_step({"A": x, "B": y}, recorder)

    with torch.no_grad():
        real = torch.cat([x, y]) if m.nce_idt else x
        fake = model.netG(real.flip(3) if flipped else real)
        fake_B, idt_B = fake[:2], fake[2:]
        d_real, d_fake = model.netD(y), model.netD(fake_B)
    expected_D = 0.5 * (((d_real - 1) ** 2).mean() + (d_fake**2).mean())
    gan = ((d_fake - 1) ** 2).mean() * 0.7
    nce_X = patch_nce_by_hand(model, x, fake_B, flipped, 0.2) * m.lambda_NCE
    if m.nce_idt:
        nce_Y = patch_nce_by_hand(model, y, idt_B, flipped, 0.2) * m.lambda_NCE
        expected_G = gan + (nce_X + nce_Y) / 2
        torch.testing.assert_close(logged["loss_G/NCE_Y"], nce_Y, rtol=1e-4, atol=1e-5)
    else:
        expected_G = gan + nce_X
        assert "loss_G/NCE_Y" not in logged
    torch.testing.assert_close(recorder.losses["D"], expected_D, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logged["loss_G/gan"], gan, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logged["loss_G/NCE"], nce_X, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(recorder.losses["G"], expected_G, rtol=1e-4, atol=1e-5)


def test_the_authors_defaults_compose_for_cut_and_fastcut():
    cut = helpers.train_config("model=cut", "data=horse2zebra", "data.root=x")
    fast = helpers.train_config("experiment=fastcut", "data=horse2zebra", "data.root=x")
    preset = helpers.train_config("experiment=cut_horse2zebra", "data.root=x")
    for cfg in (cut, fast, preset):
        m, g, d = cfg.model, cfg.model.generator, cfg.model.discriminator
        assert (g.arch, g.norm, g.dropout, g.antialias, g.antialias_up, g.init_type, g.init_gain) == (
            "resnet_9blocks",
            "instance",
            False,
            True,
            True,
            "xavier",
            0.02,
        )
        assert (d.arch, d.norm, d.antialias, d.init_type, d.init_gain) == ("basic", "instance", True, "xavier", 0.02)
        assert (m.gan_mode, m.lambda_GAN, m.nce_layers, m.num_patches, m.netF_nc, m.nce_T) == (
            "lsgan",
            1.0,
            [0, 4, 8, 12, 16],
            256,
            256,
            0.07,
        )
        assert not m.nce_includes_all_negatives_from_minibatch
        assert (m.optim.lr, m.optim.beta1, m.optim.beta2, cfg.trainer.batch_size, cfg.trainer.lr_policy) == (2e-4, 0.5, 0.999, 1, "linear")
        assert (cfg.data.load_size, cfg.data.crop_size, cfg.data.flip) == (286, 256, True)
    for cfg in (cut, preset):
        assert (cfg.model.lambda_NCE, cfg.model.nce_idt, cfg.model.flip_equivariance) == (1.0, True, False)
        assert (cfg.trainer.n_epochs, cfg.trainer.n_epochs_decay) == (200, 200)
    assert (fast.model.lambda_NCE, fast.model.nce_idt, fast.model.flip_equivariance) == (10.0, False, True)
    assert (fast.trainer.n_epochs, fast.trainer.n_epochs_decay) == (150, 50)
    assert preset.data.name == "horse2zebra"


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["model.nce_layers=[0,4,13]"], r"model.nce_layers=\[0, 4, 13\].* 0 to 12 "),
        (["model.nce_layers=[8,4]"], "increasing"),
        (["model.generator.arch=unet_128"], "model.generator.arch=unet_128 has no layer sequence"),
        (["model.nce_T=0"], "model.nce_T"),
        (["data.output_nc=1"], "model.nce_idt=true.*set model.nce_idt=false"),
    ],
)
def test_settings_patch_nce_cannot_use_are_named(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        tiny_cut(*overrides)


# --- training: one process and two, interrupted and resumed ------------------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> SimpleNamespace:
    """trainA / trainB: 8 images each, B colour-inverted and drawn apart; testA: 3 images, testB: 5; and
    3 test pairs (A | 255 - A) for the paired metrics."""
    root = tmp_path_factory.mktemp("cut")
    write_folder(root / "trainA", 8, SIZE, seed=0, prefix="x")
    write_folder(root / "trainB", 8, SIZE, seed=1, prefix="y", invert=True)
    return SimpleNamespace(
        root=root,
        testA=write_folder(root / "testA", 3, SIZE, seed=2, prefix="a"),
        testB=write_folder(root / "testB", 5, SIZE, seed=3, prefix="b", invert=True),
        pairs=write_pairs(root / "pairs", "test", 3, SIZE, seed=4),
    )


def run_overrides(folders, *more: str) -> List[str]:
    return [*TINY_CUT, f"data.root={folders.root}", "trainer.batch_size=2", "logger=none", *more]


@pytest.fixture(scope="module")
def run(folders, tmp_path_factory) -> Path:
    """Four steps of tiny CUT with a moving average of G, bf16 autocast and channels_last."""
    run_dir = tmp_path_factory.mktemp("run") / "run"
    train(run_dir, run_overrides(folders, "trainer.max_steps=4", "model.ema.decay=0.5", "device.amp=bf16", "device.channels_last=true"))
    return run_dir


@pytest.mark.parametrize("variant", ["cut", "fastcut"])
def test_resume_is_exact_with_the_head_its_optimiser_state_and_the_patches_drawn(folders, tmp_path, variant):
    # Exact, not within a tolerance: both runs compute on one machine and one numeric path (same kernels, same
    # threads, same order of sums), so any difference is state the resume lost, whatever the CPU kind.
    extra = ["experiment=fastcut"] if variant == "fastcut" else []
    straight = train(tmp_path / "straight", run_overrides(folders, *extra, "trainer.max_steps=6"))
    train(tmp_path / "stopped", run_overrides(folders, *extra, "trainer.max_steps=3"))
    resumed = train(tmp_path / "stopped", run_overrides(folders, *extra, "trainer.max_steps=6", f"resume={tmp_path / 'stopped'}"))
    assert straight.step == resumed.step == 6
    for name, net in straight.model.networks.items():
        helpers.assert_same_tensors(net.state_dict(), resumed.model.networks[name].state_dict())
    for name, opt in straight.optimizers.items():
        helpers.assert_same_tensors(opt.state_dict()["state"], resumed.optimizers[name].state_dict()["state"])
    saved = helpers.load_ckpt(tmp_path / "stopped" / "checkpoints" / "latest.pt")
    assert set(saved["networks"]) == {"D", "F", "G"} and "mlp_0.0.weight" in saved["networks"]["F"]


def _two_process_worker(rank: int, port: int, cfg, run_dir: Path, results) -> None:
    """Rank ``rank`` of two: build the run of ``cfg``, keep its head, train, and give rank 0 every process's
    head (as built, and as trained) and generator."""
    os.environ.update(LOOPBACK)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        trainer = Trainer(cfg, run_dir)
        trainer.build()
        built = torch.cat([p.detach().flatten() for p in trainer.model.netF.parameters()])
        trainer.fit()  # builds again from the same seed, then each process draws its own patches and flips
        trained = [torch.cat([p.detach().flatten() for p in trainer.model.networks[n].parameters()]) for n in ("F", "G")]
        gathered = []
        for tensor in (built, *trained):
            both = [torch.empty_like(tensor) for _ in range(2)]
            dist.all_gather(both, tensor)
            gathered.append(both)
        if rank == 0:
            results["same"] = [bool(torch.equal(a, b)) for a, b in gathered]
            results["moved"] = not torch.equal(gathered[0][0], gathered[1][0])
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_two_processes_hold_the_same_head_from_the_start_and_after_training(folders, tmp_path):
    results = mp.Manager().dict()
    cfg = helpers.train_config(*CPU, *run_overrides(folders, "trainer.max_steps=2"))
    mp.start_processes(_two_process_worker, args=(_free_port(), cfg, tmp_path / "run", results), nprocs=2, start_method="spawn")
    # as built, F after two steps, G after two steps: the same on both processes; and F did train
    assert results["same"] == [True, True, True] and results["moved"]


# --- translate-test, export -----------------------------------------------------------------------------


def test_translate_test_translates_the_input_side_with_G(run, folders, tmp_path):
    out = translate_test(run, tmp_path / "test", "weights=raw")
    assert_test_outputs(out, {stem: ("real_A", "fake_B") for stem in folders.testA})
    model = load_run_model(run)
    for stem, image in folders.testA.items():
        with torch.no_grad():
            expected = as_png_levels(model.netG(as_input(image)))
        assert png_error(out / "images" / f"{stem}_fake_B.png", expected) <= 1
    assert read_metrics(out) == {}  # no ground truth, and no Inception weights here for FID


def test_translate_test_on_pairs_scores_against_the_ground_truth(run, folders, tmp_path):
    out = translate_test(run, tmp_path / "test", "data=aligned", f"data.root={folders.root / 'pairs'}", f"data.crop_size={SIZE}")
    assert_test_outputs(out, {stem: ("real_A", "fake_B", "real_B") for stem in folders.pairs})
    metrics = read_metrics(out)
    assert {k: v["num_images"] for k, v in metrics.items()} == {"L1": 3, "PSNR": 3, "SSIM": 3}


def test_the_generator_exports_and_computes_what_the_eager_one_does(run, tmp_path):
    export_main([f"run={run}", "format=torchscript", f"output={tmp_path / 'G.pt'}"])
    x = torch.rand(2, 3, 2 * SIZE, 3 * SIZE) * 2 - 1  # another size than the trained one
    with torch.no_grad():
        expected = trained_model(Checkpoint.read(run), Weights.ema).netG(x)  # what export takes by default
    torch.testing.assert_close(torch.jit.load(str(tmp_path / "G.pt"))(x), expected)
