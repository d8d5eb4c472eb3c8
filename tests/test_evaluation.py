"""Built-in evaluation: the distribution metrics on inputs with known answers, the shipped MNIST classifier,
the scores translate-test writes for each model, FID/KID's missing-weights messages, best.pt and the
HPARAMS table of a run.

torch-fidelity's Inception weights cannot be had offline, so FID/KID runs use a stand-in feature extractor
(pixel means of 4 x 4 blocks) in place of the Inception network; everything else is the real path."""

from __future__ import annotations

import html
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from _models_helpers import TINY_CUT, TINY_CYCLEGAN, TINY_PIX2PIX, train, translate_test, write_image_data
from helpers import TINY, load_ckpt, read_events
from translate.data.configs import MNISTDataConfig
from translate.errors import ConfigError
from translate.evaluation import fid
from translate.evaluation.digits import DigitJudge, Digits, load_classifier, reference_digits, score_digits, train_on_synthetic
from translate.evaluation.image_metrics import feature_frechet_distance, frechet_distance, inception_score, mean_pairwise_distance, to_uint8
from translate.evaluation.report import output_folder
from translate.visuals import save_png, to_unit

HAS_FIDELITY = importlib.util.find_spec("torch_fidelity") is not None
needs_fidelity = pytest.mark.skipif(not HAS_FIDELITY, reason="KID comes from torch-fidelity (the [metrics] extra)")
CPU = torch.device("cpu")
BUNDLED = MNISTDataConfig(name="mnist_subset", bundled=True, download=False)
CLASSES = 10


def block_means(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The stand-in for Inception: uint8 ``[N, 3, H, W]`` -> the mean of each 4 x 4 block, in [0, 1] ``[N, D]``,
    and as class logits, ten times the first three of them (``[N, 3]``)."""
    assert images.dtype == torch.uint8 and images.size(1) == 3
    means = F.avg_pool2d(images.float() / 255, 4).flatten(1)
    return means, 10 * means[:, :3]


# --- Frechet distance: closed forms --------------------------------------------------------------------


def _random_rotation(dim: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


@pytest.mark.parametrize("rotate", [False, True])
def test_frechet_distance_of_gaussians_sharing_axes_is_closed_form(rotate):
    g = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    var1, var2 = torch.rand(6, generator=g, dtype=torch.float64) + 0.1, torch.rand(6, generator=g, dtype=torch.float64) + 0.1
    # Same eigenvectors: the distance is |mu1 - mu2|^2 + sum_i (sqrt(var1_i) - sqrt(var2_i))^2.
    q = _random_rotation(6, 1) if rotate else torch.eye(6, dtype=torch.float64)
    sigma1, sigma2 = q @ torch.diag(var1) @ q.T, q @ torch.diag(var2) @ q.T
    expected = (mu1 - mu2).square().sum() + (var1.sqrt() - var2.sqrt()).square().sum()
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(float(expected), rel=1e-9)
    assert frechet_distance(mu1, sigma1, mu1, sigma1) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("shift, scale", [(0.0, 1.0), (0.5, 1.0), (0.0, 2.0), (1.0, 0.5)])
def test_fid_of_sampled_shifted_and_scaled_gaussians(shift, scale):
    # X ~ N(0, C), Y ~ N(d, s^2 C): FID = |d|^2 + Tr(C) (1 - s)^2.
    dim, n = 4, 40_000
    g = torch.Generator().manual_seed(2)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    cov = a @ a.T / dim + 0.5 * torch.eye(dim, dtype=torch.float64)
    chol = torch.linalg.cholesky(cov)
    d = torch.full((dim,), shift, dtype=torch.float64)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64) @ chol.T
    y = d + scale * torch.randn(n, dim, generator=g, dtype=torch.float64) @ chol.T
    expected = float(d.square().sum() + cov.trace() * (1 - scale) ** 2)
    assert feature_frechet_distance(x, y) == pytest.approx(expected, rel=0.03, abs=0.01)


@pytest.mark.skipif(not HAS_FIDELITY, reason="compares with torch-fidelity")
def test_frechet_distance_agrees_with_torch_fidelity_on_unrelated_covariances():
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    g = torch.Generator().manual_seed(3)
    stats = []
    for _ in range(2):
        a = torch.randn(8, 8, generator=g, dtype=torch.float64)
        stats.append((torch.randn(8, generator=g, dtype=torch.float64), a @ a.T))
    theirs = fid_statistics_to_metric(*({"mu": m.numpy(), "sigma": s.numpy()} for m, s in stats), verbose=False)
    assert frechet_distance(*stats[0], *stats[1]) == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)


def test_frechet_distance_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match=r"means \[D\] and covariances \[D, D\] of one D"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))


# --- quantisation and diversity ------------------------------------------------------------------------


def test_metrics_see_exactly_the_levels_of_the_written_pngs(tmp_path):
    images = torch.linspace(-1.2, 1.2, 3 * 8 * 8).reshape(1, 3, 8, 8)  # beyond [-1, 1] too: clipped alike
    save_png(to_unit(images[0]), tmp_path / "x.png")
    written = torch.from_numpy(np.array(Image.open(tmp_path / "x.png"))).permute(2, 0, 1)
    assert torch.equal(to_uint8(images)[0], written)


def test_mean_pairwise_distance_known_values():
    black, white = torch.zeros(1, 1, 4, 4, dtype=torch.uint8), torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)
    assert mean_pairwise_distance(torch.cat([black, black, black])) == pytest.approx(0.0, abs=1e-6)
    assert mean_pairwise_distance(torch.cat([black, white])) == pytest.approx(1.0)
    assert mean_pairwise_distance(torch.cat([black, white, black])) == pytest.approx(2 / 3)


# --- the shipped classifier and the cGAN's scores ------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> SimpleNamespace:
    """The bundled real digits (32 px), 100 training digits per class, and the shipped judge."""
    train_digits = reference_digits(BUNDLED, "train")
    keep = torch.cat([(train_digits.labels == c).nonzero().flatten()[:100] for c in range(CLASSES)])
    return SimpleNamespace(
        test=reference_digits(BUNDLED, "test"),
        train=Digits(train_digits.images[keep], train_digits.labels[keep], "train digits"),
        judge=DigitJudge(load_classifier(), CPU),
    )


def test_shipped_classifier_reads_the_bundled_real_test_digits(digits):
    shipped = Path(importlib.util.find_spec("translate.assets").origin).parent / "mnist_classifier.pt"
    assert shipped.stat().st_size < 1_500_000
    assert all(isinstance(v, torch.Tensor) for v in torch.load(shipped, weights_only=True).values())
    preds, features, logits = digits.judge(digits.test.images)
    assert float((preds == digits.test.labels).float().mean()) >= 0.98
    assert features.shape == (1000, 128) and logits.shape == (1000, CLASSES)


def test_scores_of_real_collapsed_and_mislabelled_digits(digits):
    real = score_digits(digits.train, digits.test, digits.judge, CLASSES)
    assert real["accuracy"]["mean"] >= 0.98 and real["accuracy"]["num_images"] == 1000
    assert real["accuracy"]["mean"] == pytest.approx(sum(real[f"accuracy_class_{c}"]["mean"] for c in range(CLASSES)) / CLASSES)
    # Real digits against real digits: as diverse as the reference, and close in the classifier's features.
    assert real["diversity"]["mean"] == pytest.approx(real["diversity"]["real"], rel=0.1)
    assert real["fid_mnist_classifier"]["reference"] == "mnist_subset test split"

    first = torch.cat([(digits.train.labels == c).nonzero()[:1].repeat(100, 1) for c in range(CLASSES)]).flatten()
    collapsed = score_digits(Digits(digits.train.images[first], digits.train.labels[first], "x"), digits.test, digits.judge, CLASSES)
    assert collapsed["diversity"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert collapsed["diversity_class_3"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert collapsed["fid_mnist_classifier"]["mean"] > 5 * real["fid_mnist_classifier"]["mean"]
    # Ten classes read confidently and evenly: an Inception Score near 10, and the same as the reference's.
    assert real["is_mnist_classifier"]["mean"] > 8.5 and real["is_mnist_classifier"]["real"] > 8.5
    one_class = Digits(digits.train.images[first[:100]], digits.train.labels[first[:100]], "class 0 only")
    assert score_digits(one_class, digits.test, digits.judge, CLASSES)["is_mnist_classifier"]["mean"] == pytest.approx(1.0, abs=1e-6)

    shifted = Digits(digits.train.images, (digits.train.labels + 1) % CLASSES, "asked for the next class")
    assert score_digits(shifted, digits.test, digits.judge, CLASSES)["accuracy"]["mean"] <= 0.03


def test_tstr_learns_from_real_digits_and_not_from_mislabelled_ones(digits):
    steps = dict(steps=40, device=CPU, batch_size=64)
    good = train_on_synthetic(digits.train, digits.test, **steps)
    labels = digits.train.labels[torch.randperm(1000, generator=torch.Generator().manual_seed(0))]
    bad = train_on_synthetic(Digits(digits.train.images, labels, "shuffled labels"), digits.test, **steps)
    assert good >= 0.75 and bad <= 0.3, (good, bad)


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory) -> Path:
    """A tiny cGAN: 2 epochs of 2 steps, validated on 20 generated digits every epoch, best.pt by
    val/fid_mnist_classifier, everything in TensorBoard."""
    run_dir = tmp_path_factory.mktemp("cgan")
    train(
        run_dir,
        [
            *TINY,
            "data.max_dataset_size=8",
            "trainer.batch_size=4",
            "trainer.max_steps=null",
            "trainer.n_epochs=1",
            "trainer.n_epochs_decay=1",
            "trainer.val_every_n_epochs=1",
            "trainer.val_max_images=20",
            "trainer.best_metric=val/fid_mnist_classifier",
        ],
    )
    return run_dir


def test_cgan_translate_test_writes_its_scores(cgan_run, tmp_path):
    out = translate_test(cgan_run, tmp_path / "test", "metrics.cgan_per_class=6", "metrics.tstr_steps=2", "n_per_class=1")
    metrics = json.loads((out / "metrics.json").read_text())
    per_class = {f"{name}_class_{c}" for name in ("accuracy", "diversity") for c in range(CLASSES)}
    assert set(metrics) == {"accuracy", "fid_mnist_classifier", "is_mnist_classifier", "diversity", "tstr_accuracy", *per_class}
    assert {m["num_images"] for k, m in metrics.items() if "_class_" not in k} == {60}
    assert {metrics[k]["num_images"] for k in per_class} == {6}
    for name in ("fid_mnist_classifier", "tstr_accuracy"):
        assert metrics[name]["reference"] == "mnist_subset test split" and metrics[name]["num_real_images"] == 1000
    # Beside the score, the judge's accuracy on the reference digits (here 16 px ones, read at 32 px).
    reference = reference_digits(replace(BUNDLED, image_size=16), "test")
    preds = DigitJudge(load_classifier(), CPU)(reference.images)[0]
    assert metrics["accuracy"]["real"] == pytest.approx(float((preds == reference.labels).float().mean()))
    # 6 digits of each class: the overall accuracy is the mean of the classes'
    assert metrics["accuracy"]["mean"] == pytest.approx(sum(metrics[f"accuracy_class_{c}"]["mean"] for c in range(CLASSES)) / CLASSES)
    assert metrics["fid_mnist_classifier"]["mean"] > 0.0
    assert (out / "grid.png").is_file() and (out / "samples" / "9" / "0.png").is_file()


def phase_lines(caplog) -> list[str]:
    """What translate-test logged, in order."""
    return [r.getMessage() for r in caplog.records if r.name.startswith("translate")]


def assert_in_order(lines: list[str], *starts: str) -> None:
    """Each of ``starts`` begins one of ``lines``, in this order."""
    found = [next((i for i, line in enumerate(lines) if line.startswith(start)), None) for start in starts]
    assert None not in found and found == sorted(found), (starts, lines)


@pytest.mark.parametrize("bars", [True, False])
def test_cgan_test_says_each_phase_as_it_starts(cgan_run, tmp_path, caplog, capsys, bars):
    # On a CPU the cGAN's scores take minutes: each phase is logged as it begins, TSTR has a bar.
    caplog.set_level(logging.INFO, logger="translate")
    overrides = ("metrics.cgan_per_class=6", "metrics.tstr_steps=3", "n_per_class=1", f"progress_bar={bars}")
    translate_test(cgan_run, tmp_path / "test", *overrides)
    assert_in_order(
        phase_lines(caplog),
        "testing ",
        "generating 60 digits (6 of each class)...",
        "scoring them and the 1,000 real digits of the mnist_subset test split with the MNIST classifier",
        "TSTR: training a classifier on the generated digits for 3 steps",
        "writing grid.png and 1 samples of each class...",
        "accuracy = ",
    )
    assert bool(re.search(r"TSTR: +\d+%.*\| \d+/3 ", capsys.readouterr().err)) == bars


def test_best_checkpoint_follows_the_configured_metric(cgan_run):
    events = read_events(cgan_run / "tb")
    fids = events.Scalars("val/fid_mnist_classifier")
    assert [e.step for e in fids] == [2, 4]
    for tag in ("val/accuracy", "val/diversity"):
        assert len(events.Scalars(tag)) == 2
    best = min(fids, key=lambda e: e.value)
    state = load_ckpt(cgan_run / "checkpoints" / "best.pt")
    assert state["step"] == best.step
    assert state["best"]["metric"] == "val/fid_mnist_classifier"
    assert state["best"]["value"] == pytest.approx(best.value, rel=1e-5)
    assert load_ckpt(cgan_run / "checkpoints" / "latest.pt")["best"] == state["best"]


def test_hparams_table_holds_the_config_and_the_final_metrics(cgan_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = read_events(cgan_run / "tb")
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model.optim.lr"].number_value == pytest.approx(2e-4)
    assert start.hparams["model.generator.ngf"].number_value == 8
    assert start.hparams["trainer.best_metric"].string_value == "val/fid_mnist_classifier"
    assert start.hparams["data.name"].string_value == "mnist_subset"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {
        "final/val/accuracy",
        "final/val/fid_mnist_classifier",
        "best/val/fid_mnist_classifier",
        "final/train/loss_G/gan",
    } <= metric_tags
    last_fid = events.Scalars("val/fid_mnist_classifier")[-1].value
    assert events.Scalars("final/val/fid_mnist_classifier")[-1].value == pytest.approx(last_fid)


def test_unknown_best_metric_stops_before_training_with_the_metrics_there_are(tmp_path):
    with pytest.raises(ConfigError, match=r"best_metric=val/PSNR is not a validation metric of model=cgan; it has val/accuracy, "):
        train(tmp_path, [*TINY, "logger=none", "trainer.best_metric=val/PSNR"])
    assert not (tmp_path / "checkpoints").exists()


# --- the MNIST classifier as a model of the engine ------------------------------------------------------


def test_classifier_trains_in_the_engine_and_tests_its_accuracy(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, ["model=classifier", "data=mnist_subset", "debug=smoke", "logger=tensorboard"])
    assert {"train/loss_C/ce", "train/accuracy"} <= set(read_events(run_dir / "tb").Tags()["scalars"])
    metrics = json.loads((translate_test(run_dir, tmp_path / "test", "num_test=200") / "metrics.json").read_text())
    assert set(metrics) == {"accuracy", *(f"accuracy_class_{c}" for c in range(CLASSES))}
    assert metrics["accuracy"]["num_images"] == 200
    # A run directory can stand in for the shipped judge.
    judge = load_classifier(str(run_dir))
    assert [w.shape[0] for n, w in judge.state_dict().items() if n.startswith("body.") and w.dim() == 4] == [32, 64, 128, 128]


# --- FID / KID -----------------------------------------------------------------------------------------


def _levels(u: torch.Tensor) -> torch.Tensor:
    """uint8 levels -> the [-1, 1] image that to_uint8 maps back to exactly those levels."""
    return u.float() / 127.5 - 1.0


@needs_fidelity
def test_fid_pairs_each_fake_with_the_real_images_of_its_domain():
    # Fakes k levels brighter than the reals: block-mean features shift by k / 255, covariances stay, so
    # FID = D (k / 255)^2.
    g = torch.Generator().manual_seed(0)
    real = [torch.randint(20, 200, (4, 3, 16, 16), generator=g) for _ in range(4)]
    metrics = fid.DistributionMetrics(block_means, kid_subset_size=1000)
    for a, b in zip(real[:2], real[2:]):
        metrics.update({"real_A": _levels(a), "fake_B": _levels(b + 10), "rec_A": _levels(a)})  # a CycleGAN testA batch
    for a, b in zip(real[:2], real[2:]):
        metrics.update({"real_B": _levels(b), "fake_A": _levels(a), "rec_B": _levels(b)})  # a testB batch
    out = metrics.compute()
    assert set(out) == {"FID_A", "KID_A", "IS_A", "FID_B", "KID_B", "IS_B"}
    dim = 3 * 4 * 4
    assert out["FID_B"]["mean"] == pytest.approx(dim * (10 / 255) ** 2, rel=1e-6)
    assert out["FID_A"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert out["KID_B"]["mean"] > 0.0 and out["KID_B"]["mean"] > out["KID_A"]["mean"]  # 8 images: KID is noisy
    assert out["FID_B"]["num_images"] == out["FID_B"]["num_real_images"] == 8 and out["KID_B"]["subset_size"] == 8


def test_inception_score_is_one_for_indistinct_images_and_k_for_k_even_confident_classes():
    assert inception_score(torch.zeros(40, 5), splits=4)[0] == pytest.approx(1.0)
    confident = 50 * torch.eye(5).repeat(8, 1)  # 8 images of each of 5 classes, read with certainty
    assert inception_score(confident, splits=1)[0] == pytest.approx(5.0, rel=1e-6)
    half = torch.tensor([[3.0, 0.0]] * 6 + [[0.0, 3.0]] * 2)  # KL to the marginal, by hand for p = softmax
    p = torch.softmax(half.double(), dim=1)
    expected = torch.exp((p * (p.log() - p.mean(0).log())).sum(1).mean())
    assert inception_score(half, splits=1)[0] == pytest.approx(float(expected), rel=1e-9)


@needs_fidelity
def test_inception_score_agrees_with_torch_fidelity():
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, isc_features_to_metric

    logits = torch.randn(64, 7, generator=torch.Generator().manual_seed(0)) * 3
    ours, _ = inception_score(logits, splits=1)
    assert ours == pytest.approx(isc_features_to_metric(logits, splits=1, shuffle=False)[KEY_METRIC_ISC_MEAN], rel=1e-9)


@needs_fidelity
def test_inputs_without_a_fake_counterpart_get_no_fid():
    # pix2pix: real_A is the input; only fake_B has real images of its domain to be compared with.
    images = _levels(torch.randint(0, 256, (3, 3, 8, 8), generator=torch.Generator().manual_seed(0)))
    metrics = fid.DistributionMetrics(block_means)
    metrics.update({"real_A": images, "fake_B": images, "real_B": images.flip(0)})
    out = metrics.compute()
    assert set(out) == {"FID_B", "KID_B", "IS_B"}
    assert out["FID_B"]["mean"] == pytest.approx(0.0, abs=1e-6)  # the same images, in another order


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory) -> SimpleNamespace:
    """One-step pix2pix (6 test pairs), CycleGAN and CUT (4 testA and 5 testB images) runs."""
    root = tmp_path_factory.mktemp("images")
    write_image_data(root, "train", 2, 2, 2)
    write_image_data(root, "test", 6, 4, 5)
    common = ["logger=none", "trainer.max_steps=1"]
    train(root / "pix2pix", [*TINY_PIX2PIX, f"data.root={root / 'pairs'}", *common])
    train(root / "cyclegan", [*TINY_CYCLEGAN, f"data.root={root / 'folders'}", *common])
    train(root / "cut", [*TINY_CUT, f"data.root={root / 'folders'}", *common])
    return SimpleNamespace(pix2pix=root / "pix2pix", cyclegan=root / "cyclegan", cut=root / "cut")


@needs_fidelity
@pytest.mark.parametrize(
    "model, expected",
    [
        ("pix2pix", {"L1": 6, "PSNR": 6, "SSIM": 6, "FID_B": 6, "KID_B": 6, "IS_B": 6}),
        ("cyclegan", {"cycle_L1_A": 4, "cycle_L1_B": 5, "FID_A": 5, "KID_A": 5, "IS_A": 5, "FID_B": 4, "KID_B": 4, "IS_B": 4}),
        # one way on unpaired data: testA's 4 translations against testB's 5 real images
        ("cut", {"FID_B": 4, "KID_B": 4, "IS_B": 4}),
    ],
)
def test_translate_test_adds_fid_and_kid_when_the_weights_are_there(image_runs, model, expected, monkeypatch, tmp_path):
    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"stand-in")
    monkeypatch.setattr(fid, "inception_extractor", lambda path, device: block_means if path == weights else None)
    out = translate_test(getattr(image_runs, model), tmp_path / "test", f"metrics.inception_weights={weights}")
    metrics = json.loads((out / "metrics.json").read_text())
    assert {name: m["num_images"] for name, m in metrics.items()} == expected
    assert all(math.isfinite(m["mean"]) and m["mean"] >= 0 for k, m in metrics.items() if k.startswith("FID"))
    if model == "cut":
        assert metrics["FID_B"]["num_real_images"] == 5


@needs_fidelity
@pytest.mark.parametrize("model, reals", [("pix2pix", 6), ("cut", 5)])
def test_image_test_says_each_phase_as_it_starts(image_runs, model, reals, monkeypatch, tmp_path, caplog, capsys):
    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"stand-in")
    monkeypatch.setattr(fid, "inception_extractor", lambda path, device: block_means)
    caplog.set_level(logging.INFO, logger="translate")
    translate_test(getattr(image_runs, model), tmp_path / "test", f"metrics.inception_weights={weights}")
    # CUT's fakes are compared with testB, read first; pix2pix's with the real_B of each pair
    target = [f"reading the {reals} real target images FID/KID compare with..."] if model == "cut" else []
    assert_in_order(
        phase_lines(caplog),
        "testing ",
        f"FID/KID/IS: loading the Inception network ({weights})...",
        *target,
        f"translating {6 if model == 'pix2pix' else 4} inputs of the test split, each fake through Inception for FID/KID/IS...",
        f"FID/KID/IS: the Inception features of the {reals} real images, then the scores...",
        "FID_B = ",
    )
    bars = capsys.readouterr().err
    assert re.search(r"translate: +\d+%", bars) and re.search(rf"Inception: +\d+%.*\| \d+/{reals} ", bars), bars


def test_testing_again_moves_the_earlier_results_aside_with_their_images(image_runs, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="translate")
    out = tmp_path / "mine"
    translate_test(image_runs.pix2pix, out, "num_test=2")
    earlier = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    translate_test(image_runs.pix2pix, out)
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("mine.")]
    assert {p.relative_to(aside): p.read_bytes() for p in aside.rglob("*") if p.is_file()} == earlier
    assert json.loads((out / "metrics.json").read_text())["L1"]["num_images"] == 6 and len(list((out / "images").iterdir())) == 18
    assert f"kept the earlier test's results of {out} as {aside}" in phase_lines(caplog)


def _write_test(folder: Path, text: str) -> None:
    (folder / "images").mkdir()
    (folder / "images" / "a_fake_B.png").write_text(text)
    (folder / "metrics.json").write_text(text)


def test_output_folder_keeps_every_earlier_test_and_a_failed_one_changes_nothing(tmp_path):
    out = tmp_path / "test_latest"
    same_second = 1_800_000_000
    for k in range(3):
        with output_folder(out) as folder:
            assert folder.parent == tmp_path and folder != out
            assert k == 0 or (out / "metrics.json").read_text() == str(k - 1)  # until the new one is complete
            _write_test(folder, str(k))
        for path in (out, out / "images", out / "metrics.json"):
            os.utime(path, (same_second, same_second))
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(same_second))
    kept = {"test_latest": "2", f"test_latest.{stamp}": "0", f"test_latest.{stamp}_2": "1"}
    assert {p.name: (p / "metrics.json").read_text() for p in tmp_path.iterdir()} == kept
    assert all((tmp_path / name / "images" / "a_fake_B.png").read_text() == text for name, text in kept.items())

    with pytest.raises(KeyboardInterrupt), output_folder(out) as folder:
        _write_test(folder, "interrupted")
        raise KeyboardInterrupt
    assert {p.name: (p / "metrics.json").read_text() for p in tmp_path.iterdir()} == kept  # and no partial folder


def test_output_folder_refuses_a_folder_of_other_files_or_a_file(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    (mine / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match=rf"^output folder {mine} holds notes.txt, which translate-test did not write; pass output_dir="):
        with output_folder(mine):
            pytest.fail("refused before any work")
    with pytest.raises(ConfigError, match=rf"^output folder {mine / 'notes.txt'} is a file; pass output_dir=<a folder>"):
        with output_folder(mine / "notes.txt"):
            pytest.fail("refused before any work")
    with pytest.raises(ConfigError, match=rf"^cannot make the output folder {mine / 'notes.txt' / 'x'} \({mine / 'notes.txt'}: "):
        with output_folder(mine / "notes.txt" / "x"):
            pytest.fail("refused before any work")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["metrics.json", "mine", "notes.txt"]


def test_missing_weights_leave_fid_out_and_say_which_file_goes_where(image_runs, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = translate_test(image_runs.cyclegan, tmp_path / "test")
    assert set(json.loads((out / "metrics.json").read_text())) == {"cycle_L1_A", "cycle_L1_B"}
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    shown = f"~/{cache.relative_to(Path.home())}" if cache.is_relative_to(Path.home()) else str(cache)
    needles = [fid.INCEPTION_FILE, shown, "metrics.inception_weights"] if HAS_FIDELITY else ['pip install "translate[metrics]"']
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "FID" in r.getMessage()]
    # One short line: what is missing, where it goes, how to turn FID off (the README has the download).
    assert len(warnings) == 1, warnings
    assert len(warnings[0]) - len(shown) < 180 and "\n" not in warnings[0], warnings[0]
    for needle in [*needles, "metrics.fid=false"]:
        assert needle in warnings[0], (needle, warnings)


def test_without_torch_fidelity_the_message_names_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch_fidelity" else real_find_spec(name, *a))
    problem = fid.find_inception(None).problem
    assert 'pip install "translate[metrics]"' in problem and "torch-fidelity" in problem


@pytest.mark.parametrize("asked", ["metrics.fid=true", "metrics.inception_weights=missing.pth"])
def test_fid_asked_for_without_weights_stops_before_testing(image_runs, monkeypatch, tmp_path, asked):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "test"
    with pytest.raises(ConfigError) as err:
        translate_test(image_runs.pix2pix, out, asked)
    if not HAS_FIDELITY:
        needles = ['pip install "translate[metrics]"']
    elif asked == "metrics.fid=true":
        needles = [fid.INCEPTION_URL, str(tmp_path / "torch" / "hub" / "checkpoints")]
    else:
        needles = ["metrics.inception_weights=missing.pth: no such file", fid.INCEPTION_URL]
    for needle in [*needles, "metrics.fid=false"]:
        assert needle in str(err.value), str(err.value)
    assert not out.exists()


@needs_fidelity
@pytest.mark.parametrize(
    "model, data, expected",
    [
        ("pix2pix", "pairs", {"val/L1": 3, "val/PSNR": 3, "val/SSIM": 3, "val/FID_B": 3, "val/KID_B": 3, "val/IS_B": 3}),
        (
            "cyclegan",
            "folders",
            {
                "val/cycle_L1_A": 3,
                "val/cycle_L1_B": 3,
                "val/FID_A": 3,
                "val/KID_A": 3,
                "val/IS_A": 3,
                "val/FID_B": 3,
                "val/KID_B": 3,
                "val/IS_B": 3,
            },
        ),
        ("cut", "folders", {"val/FID_B": 3, "val/KID_B": 3, "val/IS_B": 3}),
    ],
)
def test_validation_adds_fid_and_kid_and_keeps_the_best_by_them(model, data, expected, monkeypatch, tmp_path):
    write_image_data(tmp_path, "train", 2, 2, 2)
    write_image_data(tmp_path, "val", 5, 4, 5)
    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"stand-in")
    monkeypatch.setattr(fid, "inception_extractor", lambda path, device: block_means if path == weights else None)
    run_dir = tmp_path / "run"
    overrides = {"pix2pix": TINY_PIX2PIX, "cyclegan": TINY_CYCLEGAN, "cut": TINY_CUT}[model]
    trainer = train(
        run_dir,
        [
            *overrides,
            f"data.root={tmp_path / data}",
            "logger=tensorboard",
            "trainer.n_epochs=2",
            "trainer.n_epochs_decay=0",
            "trainer.val_every_n_epochs=1",
            "trainer.val_max_images=3",
            "metrics.fid=true",
            f"metrics.inception_weights={weights}",
            "trainer.best_metric=val/FID_B",
        ],
    )
    events = read_events(run_dir / "tb")
    assert {tag: len(events.Scalars(tag)) for tag in expected} == {tag: 2 for tag in expected}  # one per epoch
    # val_max_images caps each direction (5 val pairs; 4 valA and 5 valB images), not their sum.
    assert {tag: n for tag, n in expected.items()} == {f"val/{k}": v["num_images"] for k, v in trainer.validate().items()}
    best = min(events.Scalars("val/FID_B"), key=lambda e: e.value)
    assert load_ckpt(run_dir / "checkpoints" / "best.pt")["best"]["value"] == pytest.approx(best.value, rel=1e-5)


@pytest.mark.parametrize("asked", [["metrics.fid=true"], ["metrics.fid=auto", "metrics.inception_weights=missing.pth"]])
def test_validation_fid_without_weights_stops_before_training(asked, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    write_image_data(tmp_path, "train", 2, 2, 2)
    write_image_data(tmp_path, "val", 2, 2, 2)
    with pytest.raises(ConfigError, match="metrics.fid=false"):
        train(tmp_path / "run", [*TINY_PIX2PIX, f"data.root={tmp_path / 'pairs'}", "logger=none", *asked])
    assert not (tmp_path / "run" / "checkpoints" / "latest.pt").exists()


def test_inception_fid_is_refused_for_the_cgan(tmp_path):
    with pytest.raises(ConfigError, match="metrics.fid=true.*fid_mnist_classifier"):
        train(tmp_path / "run", [*TINY, "metrics.fid=true"])


# --- the results page ----------------------------------------------------------------------------------


def page_tables(page: str) -> dict[str, list[dict[str, str]]]:
    """The image tables of index.html: ``{heading: [{column: cell}]}``, a cell's image given by its src."""
    tables = {}
    for heading, table in re.findall(r"<h2>([^<]*)</h2>\s*<table class=\"images\">(.*?)</table>", page, re.S):
        rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
        columns = re.findall(r"<th>([^<]*)</th>", rows[0])
        cells = [[m[0] or m[1] for m in re.findall(r"<td>(?:<img src=\"([^\"]*)\"[^>]*>|([^<]*))</td>", row)] for row in rows[1:]]
        tables[heading] = [dict(zip(columns, row)) for row in cells]
    return tables


def test_results_page_has_a_table_per_direction_with_the_run_and_every_metric(image_runs, tmp_path):
    out = translate_test(image_runs.cyclegan, tmp_path / "test")
    page = (out / "index.html").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert str(image_runs.cyclegan) in page and str(image_runs.cyclegan / "checkpoints" / "latest.pt") in page
    # means on top, as metrics.json has them
    for name, value in metrics.items():
        assert re.search(rf"<tr><td>{name}</td><td>{value['mean']:.4g}</td><td>{value['num_images']}</td></tr>", page), name
    tables = page_tables(page)
    # A → B and B → A each in a table of their own columns, not one 7-column table
    assert list(tables) == ["A → B (4 images)", "B → A (5 images)"]
    assert list(tables["A → B (4 images)"][0]) == ["input", "cycle_L1_A", "real_A", "fake_B", "rec_A"]
    assert list(tables["B → A (5 images)"][0]) == ["input", "cycle_L1_B", "real_B", "fake_A", "rec_B"]
    # per-image values beside each row; their mean is the mean of metrics.json
    for (title, rows), side in zip(tables.items(), "AB"):
        values = [float(row[f"cycle_L1_{side}"]) for row in rows]
        assert np.mean(values) == pytest.approx(metrics[f"cycle_L1_{side}"]["mean"], rel=1e-3), title
        assert all((out / row[f"real_{side}"]).is_file() for row in rows)
    # thousands of images stay usable: the browser loads each image when it scrolls near
    assert page.count("<img ") == page.count('loading="lazy"') == 3 * 9


BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)

#: Appended to a copy of the page: once the page has loaded, writes what the test asserts into the DOM.
PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const images = [...document.images];
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    width: document.documentElement.clientWidth,
    scroll_width: document.documentElement.scrollWidth,
    images: images.length,
    not_loaded: images.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.getAttribute("src")),
  });
  document.body.appendChild(probe);
}, 1000));
</script>"""


def render(page: Path, tmp_path: Path, width: int = 1280) -> dict:
    """What ``PROBE`` reports for ``page`` in headless Chromium in a window ``width`` px wide (tall enough
    for every image of a small page to be in view, so lazy images load)."""
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    command += [f"--window-size={width},8000", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(BROWSER is None, reason="no headless browser installed (apt-get install chromium)")
def test_results_page_fits_a_1280_pixel_window_and_every_image_loads(image_runs, tmp_path):
    out = translate_test(image_runs.cyclegan, tmp_path / "test")
    seen = render(out / "index.html", tmp_path)
    assert seen["width"] == 1280 or seen["width"] > 1200, seen  # the window, less any scroll bar
    assert seen["scroll_width"] <= seen["width"], f"the page scrolls sideways at 1280 px: {seen}"
    assert seen["images"] == 27 and not seen["not_loaded"], seen
