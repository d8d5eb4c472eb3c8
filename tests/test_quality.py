"""scripts/quality.py (make quality): its tasks carry the answer they claim, its verdicts follow the seeds,
and a tiny suite goes end to end through translate-train and translate-test."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def quality(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    return importlib.import_module("quality")


def digits(n: int, seed: int = 0) -> torch.Tensor:
    """Random uint8 strokes [n, 1, 32, 32]: bright 2 x 2 squares on black."""
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 32, 32, dtype=torch.uint8)
    for i in range(n):
        for _ in range(6):
            y, x = torch.randint(4, 26, (2,), generator=g).tolist()
            images[i, 0, y : y + 2, x : x + 2] = 255
    return images


def test_a_verdict_needs_every_seed_of_the_recipe_beyond_every_seed_of_the_default(quality):
    assert quality.verdict([0.7, 0.8, 0.9], [0.4, 0.5, 0.6], higher=True) == "better"
    assert quality.verdict([0.7, 0.8, 0.5], [0.4, 0.5, 0.6], higher=True) == "within noise"  # one seed overlaps
    assert quality.verdict([0.7, 0.8, 0.9], [0.4, 0.5, 0.6], higher=False) == "worse"  # e.g. a distance
    assert quality.verdict([1.0, 2.0], [3.0, 4.0], higher=False) == "better"
    assert quality.overall({"a": "better", "b": "within noise"}) == "better"
    assert quality.overall({"a": "better", "b": "worse"}) == "mixed"
    assert quality.overall({"a": "within noise"}) == "within noise"


def test_the_image_tasks_hold_their_known_answers_in_the_layouts_translate_reads(quality, tmp_path):
    train, test = digits(8), digits(6, seed=1)
    quality.build_pix2pix_data(tmp_path / "pairs", train, test[:3])
    pair = quality.read_grey(tmp_path / "pairs" / "test" / "00001.png")
    assert pair.shape == (1, 32, 64)  # A | B side by side, the reference's aligned layout
    assert torch.equal(pair[..., 32:], test[1]) and torch.equal(pair[..., :32], quality.edges(test[1:2])[0])

    quality.build_cyclegan_data(tmp_path / "unpaired", tmp_path / "truth", train, test)
    folders = {f: sorted((tmp_path / "unpaired" / f).glob("*.png")) for f in ("trainA", "trainB", "testA", "testB")}
    assert [len(v) for v in folders.values()] == [4, 4, 3, 3]
    # B is thick digits, never the thickened version of a digit on the A side
    a = torch.stack([quality.read_grey(p) for p in folders["trainA"]])
    b = torch.stack([quality.read_grey(p) for p in folders["trainB"]])
    assert torch.equal(b, quality.thicken(train[4:8])) and not any(torch.equal(x, y) for x in quality.thicken(a) for y in b)
    # the truth of each test A digit is that digit dilated by a 3 x 3 maximum
    truth = quality.read_grey(tmp_path / "truth" / "testA" / "testA_00002.png")
    assert torch.equal(truth, quality.thicken(test[2:3])[0])
    assert (truth.float() >= test[2].float()).all() and truth.sum() > test[2].sum()


def test_a_tiny_suite_trains_tests_scores_and_writes_its_tables(quality, tmp_path, capsys):
    args = ["--out", str(tmp_path), "--tasks", "cyclegan", "--recipes", "resize_conv", "--seeds", "1", "--jobs", "2"]
    report = quality.main([*args, "--steps", "cyclegan=2", "--train-images", "16", "--test-images", "4"])
    assert report["failures"] == []
    recipes = report["tasks"]["cyclegan"]["recipes"]
    assert list(recipes) == ["default", "resize_conv"]
    metrics = recipes["resize_conv"]["metrics"]
    assert {"L1", "PSNR", "SSIM", "fid", "checkerboard"} <= set(metrics)
    assert 0 <= metrics["checkerboard"]["median"] <= 1 and metrics["L1"]["values"][0] > 0
    assert set(recipes["resize_conv"]["verdicts"]) == set(metrics) and recipes["default"]["verdict"] == "reference"
    # each run was what the suite says: its overrides, the recipe's on top of the task's
    run = json.loads((tmp_path / "runs" / "cyclegan" / "resize_conv" / "seed0" / "result.json").read_text())
    assert "model.generator.upsample=resize_conv" in run["overrides"] and "trainer.max_steps=2" in run["overrides"]
    assert json.loads((tmp_path / "quality.json").read_text())["tasks"]["cyclegan"]["steps"] == 2
    table = (tmp_path / "quality.md").read_text()
    assert "| resize_conv |" in table and "checkerboard" in table

    # a second call scores nothing again: every run is cached under its overrides
    capsys.readouterr()
    again = quality.main([*args, "--steps", "cyclegan=2", "--train-images", "16", "--test-images", "4"])
    assert again["tasks"]["cyclegan"]["recipes"]["resize_conv"]["metrics"] == metrics
