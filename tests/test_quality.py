"""scripts/quality.py (make quality): its tasks carry the answer they claim, its verdicts follow the seeds,
and a tiny suite (a held-out task among its tasks) goes end to end through translate-train and translate-test."""

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
    quality.build_paired_data(tmp_path / "pairs", train, test[:3], quality.edges, quality.unchanged)
    pair = quality.read_grey(tmp_path / "pairs" / "test" / "00001.png")
    assert pair.shape == (1, 32, 64)  # A | B side by side, the reference's aligned layout
    assert torch.equal(pair[..., 32:], test[1]) and torch.equal(pair[..., :32], quality.edges(test[1:2])[0])

    quality.build_unpaired_data(tmp_path / "unpaired", tmp_path / "truth", train, test, quality.unchanged, quality.thicken)
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


def test_the_held_out_tasks_hold_their_known_answers(quality, tmp_path):
    train, test = digits(8), digits(6, seed=1)
    tasks = quality.make_tasks(tmp_path, None, quality.BUDGET)
    assert [n for n, t in tasks.items() if t.held_out] == ["denoise", "deblur"]
    # each runs the model, networks and budget of the first task of its kind, on its own data
    for held_out, kin in (("denoise", "pix2pix"), ("deblur", "cyclegan")):
        assert [o for o in tasks[held_out].overrides if "data.root" not in o] == [o for o in tasks[kin].overrides if "data.root" not in o]
        assert f"data.root={tmp_path / 'data' / held_out}" in tasks[held_out].overrides

    # denoise: noisy digit | clean digit; the noise is the same on every build, and differs between splits
    quality.build_paired_data(tmp_path / "denoise", train, test[:3], quality.add_noise, quality.unchanged)
    pair = quality.read_grey(tmp_path / "denoise" / "test" / "00001.png")
    assert torch.equal(pair[..., 32:], test[1]) and torch.equal(pair[..., :32], quality.add_noise(test[:3])[1])
    noise = pair[..., :32].float() - test[1].float()
    assert 20 < noise.std() < 64 and torch.equal(quality.add_noise(test), quality.add_noise(test))
    black = (train[:3] == 0) & (test[:3] == 0)  # where both digits are black, only the noise differs
    assert not torch.equal(quality.add_noise(train[:3])[black], quality.add_noise(test[:3])[black])

    # deblur: blurred digits on the A side, other sharp digits on the B side; the answer is the sharp digit
    quality.build_unpaired_data(tmp_path / "deblur", tmp_path / "truth", train, test, quality.blur, quality.unchanged)
    a = quality.read_grey(tmp_path / "deblur" / "testA" / "testA_00002.png")
    truth = quality.read_grey(tmp_path / "truth" / "testA" / "testA_00002.png")
    assert torch.equal(truth, test[2]) and torch.equal(a, quality.blur(test[2:3])[0])
    assert a.max() < truth.max() and (a > 0).sum() > (truth > 0).sum()  # blurred: dimmer peaks, wider strokes


def test_recipes_are_chosen_for_every_task_or_for_one(quality, tmp_path):
    tasks = quality.make_tasks(tmp_path, None, quality.BUDGET)
    both = {n: tasks[n] for n in ("cgan", "deblur")}
    assert quality.choose_recipes(both, "resize_conv,cgan:ema", quick=False) == {
        "cgan": ["default", "ema", "resize_conv"],
        "deblur": ["default", "resize_conv"],
    }
    assert quality.choose_recipes(both, "cgan:projection", quick=False) == {"cgan": ["default", "projection"], "deblur": ["default"]}
    assert quality.choose_recipes(both, None, quick=True) == {"cgan": ["default", "projection"], "deblur": ["default", "resize_conv"]}
    assert quality.choose_recipes(both, None, quick=False)["deblur"] == list(tasks["deblur"].recipes)


def test_a_tiny_suite_trains_tests_scores_and_writes_its_tables(quality, tmp_path, capsys):
    # the held-out CycleGAN task: the unpaired path end to end, and the held-out marks
    args = ["--out", str(tmp_path), "--tasks", "deblur", "--recipes", "resize_conv", "--seeds", "1", "--jobs", "2"]
    tiny = ["--steps", "deblur=2", "--train-images", "16", "--test-images", "4"]
    report = quality.main([*args, *tiny])
    assert report["failures"] == []
    recipes = report["tasks"]["deblur"]["recipes"]
    assert list(recipes) == ["default", "resize_conv"]
    metrics = recipes["resize_conv"]["metrics"]
    assert {"L1", "PSNR", "SSIM", "fid", "checkerboard"} <= set(metrics)
    assert 0 <= metrics["checkerboard"]["median"] <= 1 and metrics["L1"]["values"][0] > 0
    assert set(recipes["resize_conv"]["verdicts"]) == set(metrics) and recipes["default"]["verdict"] == "reference"
    # each run was what the suite says: its overrides, the recipe's on top of the task's
    run = json.loads((tmp_path / "runs" / "deblur" / "resize_conv" / "seed0" / "result.json").read_text())
    assert "model.generator.upsample=resize_conv" in run["overrides"] and "trainer.max_steps=2" in run["overrides"]
    assert "model=cyclegan" in run["overrides"] and f"data.root={tmp_path / 'data' / 'deblur'}" in run["overrides"]
    written = json.loads((tmp_path / "quality.json").read_text())["tasks"]["deblur"]
    assert written["steps"] == 2 and written["held_out"]
    table = (tmp_path / "quality.md").read_text()
    assert "| resize_conv |" in table and "checkerboard" in table and "## deblur (held out): blurred -> sharp digits" in table
    # the verdicts by task, the held-out task marked
    verdicts = table.split("## Verdicts")[1].split("## ")[0]
    assert "| recipe | deblur (held out) |" in verdicts and f"| resize_conv | {recipes['resize_conv']['verdict']} |" in verdicts

    # a second call scores nothing again: every run is cached under its overrides
    capsys.readouterr()
    again = quality.main([*args, *tiny])
    assert again["tasks"]["deblur"]["recipes"]["resize_conv"]["metrics"] == metrics


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tasks", "cyclegan", "--recipes", "pix2pix:ema"], "--recipes: pix2pix is not among --tasks (cyclegan)"),
        (["--tasks", "cyclegan", "--recipes", "projection"], "--recipes: cyclegan has no projection"),
        (["--seeds", "0"], "--seeds 0: give 1 or more"),
    ],
)
def test_a_request_the_suite_cannot_run_is_one_line_that_says_what_would(quality, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit:
        quality.main(["--out", str(tmp_path), *argv])
    assert exit.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
