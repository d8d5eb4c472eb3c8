"""``translate-bundle``: a run's generators as a folder or zip of safetensors, JSON settings and a model card,
which ``translate.load``, ``translate-apply`` and ``init_from`` take like the run itself; a bundle that was
damaged or edited stops with one line, and reading one never runs code from it.

One tiny CycleGAN run (two steps, a moving average, translate-test's metrics) and one tiny cGAN run are made here.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import translate
from _models_helpers import TINY_CYCLEGAN, train, train_config, translate_test, write_folder
from helpers import assert_same_tensors
from translate.cli.apply import main as apply_main
from translate.cli.bundle import main as bundle_main
from translate.errors import CheckpointError, ConfigError
from translate.inference.bundle import SETTINGS, read_bundle, write_bundle
from translate.models.checkpoint import Checkpoint
from translate.training.engine import Trainer


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cyclegan")
    for split, n in (("train", 2), ("test", 2)):
        write_folder(root / "data" / f"{split}A", n, 16, seed=len(split), prefix="a")
        write_folder(root / "data" / f"{split}B", n, 16, seed=len(split) + 1, prefix="b")
    overrides = [*TINY_CYCLEGAN, f"data.root={root / 'data'}", "logger=none", "trainer.max_steps=2", "model.ema.decay=0.5"]
    train(root / "run", overrides)
    translate_test(root / "run", root / "run" / "test_latest", "metrics.fid=false")
    return root / "run"


@pytest.fixture(scope="module")
def bundle(cyclegan_run, tmp_path_factory) -> Path:
    return write_bundle(cyclegan_run, tmp_path_factory.mktemp("bundles") / "horses")


def photo(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (30, 45, 3), dtype=np.uint8)


def one_line(err: pytest.ExceptionInfo, *needles: str) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in: {text}"
    return text


# ----------------------------------------------------------------------------------------------- writing


def test_a_bundle_holds_the_weights_the_settings_and_a_card(cyclegan_run, bundle):
    assert sorted(os.listdir(bundle)) == sorted(["G_A.safetensors", "G_B.safetensors", "README.md", SETTINGS, "samples.png"])
    settings = json.loads((bundle / SETTINGS).read_text())
    ckpt = Checkpoint.read(cyclegan_run)
    assert settings["format"] == "translate-bundle" and settings["translate_version"] == translate.__version__
    assert (settings["model"], settings["step"], settings["epoch"], settings["image_size"]) == ("cyclegan", ckpt.step, ckpt.epoch, 16)
    assert settings["network"] == ckpt.config["model"] and settings["weights"] == "ema"
    assert {n: (g["direction"], g["in_channels"], g["out_channels"], g["multiple"]) for n, g in settings["generators"].items()} == {
        "G_A": ("AtoB", 3, 3, 4),
        "G_B": ("BtoA", 3, 3, 4),
    }
    assert settings["generators"]["G_A"]["tiles"]["tile"] == 512 and settings["normalisation"]["range"] == [-1, 1]
    # Nothing of the machine it was made on: the data's folder stays out.
    assert str(cyclegan_run.parent) not in (bundle / SETTINGS).read_text()
    metrics = json.loads((cyclegan_run / "test_latest" / "metrics.json").read_text())
    assert settings["test_metrics"] == metrics
    card = (bundle / "README.md").read_text()
    key, entry = next(iter(metrics.items()))
    assert f"| {key} | {entry['mean']:.4g} | {entry['num_images']} |" in card
    assert "translate.load(" in card and "translate-apply run=" in card and "![samples](samples.png)" in card
    assert f"{ckpt.step} steps" in card and "resnet, ngf 4" in card
    assert (bundle / "samples.png").read_bytes() == (cyclegan_run / "samples" / "final.png").read_bytes()


def test_an_existing_output_is_never_replaced(cyclegan_run, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(SystemExit):
        bundle_main([f"run={cyclegan_run}", f"output={out}"])
    assert capsys.readouterr().err.strip() == (
        f"translate-bundle: error: output={out} exists; choose another output= (a folder, or a file ending in .zip) or move it away"
    )
    assert os.listdir(out) == ["mine.txt"]


def test_a_reference_generator_file_is_not_bundled(tmp_path):
    path = tmp_path / "latest_net_G.pth"
    torch.save({"model.1.weight": torch.zeros(4, 3, 7, 7)}, path)
    with pytest.raises(CheckpointError) as err:
        write_bundle(path)
    one_line(err, str(path), "not a translate checkpoint")


# ----------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_a_bundle_translates_as_its_run_does_from_a_folder_and_a_zip(cyclegan_run, bundle, tmp_path, direction):
    zipped = write_bundle(cyclegan_run, tmp_path / "horses.zip")
    expected = translate.load(cyclegan_run, direction=direction, device="cpu")(photo())
    assert np.array_equal(translate.load(bundle, direction=direction, device="cpu")(photo()), expected)
    assert np.array_equal(translate.load(zipped, direction=direction, device="cpu")(photo()), expected)
    # A zip of the bundle's folder (as `zip -r` makes it) reads too.
    folder_zip = tmp_path / "folder.zip"
    with zipfile.ZipFile(folder_zip, "w") as archive:
        for file in bundle.iterdir():
            archive.write(file, f"horses/{file.name}")
    assert np.array_equal(translate.load(folder_zip, direction=direction, device="cpu")(photo()), expected)


def test_the_weights_bundled_are_the_ones_asked_for(cyclegan_run, bundle, tmp_path):
    raw = write_bundle(cyclegan_run, tmp_path / "raw", weights="raw")
    assert json.loads((raw / SETTINGS).read_text())["weights"] == "raw"
    expected = translate.load(cyclegan_run, weights="raw", device="cpu")(photo())
    assert np.array_equal(translate.load(raw, weights="raw", device="cpu")(photo()), expected)
    assert not np.array_equal(translate.load(bundle, device="cpu")(photo()), expected)  # the moving average differs
    with pytest.raises(ConfigError) as err:
        translate.load(bundle, weights="raw")
    one_line(err, "weights=raw", "moving average only")


def test_translate_apply_takes_a_bundle(cyclegan_run, bundle, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(photo()).save(folder / "a.png")
    apply_main([f"run={bundle}", f"input={folder}", f"output={tmp_path / 'out'}", "direction=BtoA", "device=cpu", "progress_bar=false"])
    expected = translate.load(cyclegan_run, direction="BtoA", device="cpu")(photo())
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), expected)


def test_init_from_a_bundle_starts_the_generators_from_it_and_the_discriminators_fresh(cyclegan_run, bundle, tmp_path, caplog):
    overrides = [*TINY_CYCLEGAN, f"data.root={cyclegan_run.parent / 'data'}", "logger=none", "trainer.max_steps=1"]
    fresh = Trainer(train_config(overrides), tmp_path / "fresh")
    fresh.build()
    with caplog.at_level(logging.INFO, logger="translate"):
        tuned = Trainer(train_config([*overrides, f"init_from={bundle}"]), tmp_path / "tuned")
        tuned.build()
    assert "G_A, G_B start from its weights, D_A, D_B fresh (the source has none)" in caplog.text
    networks = tuned.run.model.networks
    averaged = Checkpoint.read(cyclegan_run).weights()
    assert_same_tensors({n: networks[n].state_dict() for n in ("G_A", "G_B")}, {n: averaged[n] for n in ("G_A", "G_B")})
    # The discriminators are those a run without init_from builds (same seed), not the bundled run's.
    assert_same_tensors(networks["D_A"].state_dict(), fresh.run.model.networks["D_A"].state_dict())


def test_a_cgan_bundle_draws_the_runs_digits(cgan_run, tmp_path):
    out = write_bundle(cgan_run, tmp_path / "digits.zip")
    expected = translate.load(cgan_run, device="cpu").sample([1, 7], n=2, seed=3)
    assert torch.equal(translate.load(out, device="cpu").sample([1, 7], n=2, seed=3), expected)
    card = zipfile.ZipFile(out).read("README.md").decode()
    assert "G (from labels)" in card and "g.sample(" in card


# ------------------------------------------------------------------------------------ damaged or edited


class _Plant:
    """A pickle that, if unpickled, writes a file: the proof that loading ran code from the bundle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def _edit_settings(folder: Path, change) -> None:
    settings = json.loads((folder / SETTINGS).read_text())
    change(settings)
    (folder / SETTINGS).write_text(json.dumps(settings))


def _truncate(folder: Path) -> None:
    data = (folder / "G_A.safetensors").read_bytes()
    (folder / "G_A.safetensors").write_bytes(data[: len(data) // 2])


def _pickle(folder: Path) -> None:
    with open(folder / "G_B.safetensors", "wb") as f:
        pickle.dump({"model.1.weight": _Plant(folder.parent / "marker")}, f)


def _torch_file(folder: Path) -> None:
    torch.save({"model.1.weight": torch.zeros(4, 3, 7, 7)}, folder / "G_A.safetensors")


TAMPERED = {
    "truncated weights": (_truncate, ["G_A.safetensors", "not a readable safetensors file"]),
    "a pickle renamed": (_pickle, ["G_B.safetensors", "not a readable safetensors file"]),
    "a torch file renamed": (_torch_file, ["G_A.safetensors", "not a readable safetensors file"]),
    "a missing file": (lambda f: (f / "G_B.safetensors").unlink(), ["lacks G_B.safetensors"]),
    "settings not JSON": (lambda f: (f / SETTINGS).write_text("{'model': cyclegan"), [SETTINGS, "not valid JSON"]),
    "wider network": (lambda f: _edit_settings(f, lambda s: s["network"]["generator"].update(ngf=8)), ["G_A.safetensors does not fit"]),
    "unknown arch": (lambda f: _edit_settings(f, lambda s: s["network"]["generator"].update(arch="transformer")), ["cannot build", "arch"]),
    "a network that cannot be": (lambda f: _edit_settings(f, lambda s: s["network"]["generator"].update(ngf=-4)), ["cannot build"]),
    "unknown model": (lambda f: _edit_settings(f, lambda s: s.update(model="diffusion")), ["'diffusion' model"]),
    "a name leaving the folder": (
        lambda f: _edit_settings(f, lambda s: s["generators"].update({"../G_A": s["generators"].pop("G_A")})),
        ["'../G_A'"],
    ),
    "a generator dropped": (lambda f: _edit_settings(f, lambda s: s["generators"].pop("G_B")), ["holds G_A", "G_A, G_B"]),
    "a wrong channel count": (lambda f: _edit_settings(f, lambda s: s["info"].update(input_nc="three")), ['"info"', "input_nc"]),
    "a step that is text": (lambda f: _edit_settings(f, lambda s: s.update(step="many")), ['"step"']),
    "a newer format": (lambda f: _edit_settings(f, lambda s: s.update(version=99)), ["bundle version 99", "upgrade translate"]),
    "not a bundle": (lambda f: _edit_settings(f, lambda s: s.update(format="something-else")), ["not a translate bundle"]),
}


@pytest.mark.parametrize("damage", list(TAMPERED))
def test_a_damaged_or_edited_bundle_stops_with_one_line_and_runs_no_code(bundle, tmp_path, capsys, damage):
    folder = tmp_path / "bundle"
    shutil.copytree(bundle, folder)
    tamper, needles = TAMPERED[damage]
    tamper(folder)
    with pytest.raises(CheckpointError) as err:
        translate.load(folder, device="cpu")
    one_line(err, *needles)
    # Each entry point prints it as its one line.
    with pytest.raises(SystemExit):
        apply_main([f"run={folder}", f"input={tmp_path}", f"output={tmp_path / 'out'}", "device=cpu"])
    assert capsys.readouterr().err.strip() == f"translate-apply: error: {err.value}"
    assert not (tmp_path / "marker").exists()


def test_a_zip_that_is_no_bundle_stops_with_one_line(tmp_path):
    empty = tmp_path / "photos.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("a.txt", "hello")
    with pytest.raises(CheckpointError) as err:
        read_bundle(empty)
    one_line(err, str(empty), f"no {SETTINGS}")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not really")
    with pytest.raises(CheckpointError) as err:
        translate.load(broken)
    one_line(err, str(broken), "not a readable zip")
