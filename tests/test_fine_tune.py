"""``translate-train init_from=...``: a new run whose networks start from a run's, a checkpoint's or a published
generator's weights, with fresh optimisers and schedule; one line naming both sides when they do not fit."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from _models_helpers import TINY_CYCLEGAN, TINY_PIX2PIX, train, train_config, write_folder, write_pairs
from helpers import assert_same_tensors
from translate.errors import CheckpointError
from translate.models.checkpoint import Checkpoint
from translate.networks.generators import ResnetGenerator
from translate.networks.init import init_weights
from translate.training.engine import Trainer


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    write_folder(root / "trainA", 2, 16, seed=0, prefix="a")
    write_folder(root / "trainB", 2, 16, seed=1, prefix="b", invert=True)
    return root


@pytest.fixture(scope="module")
def source_run(folders, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("source") / "run"
    train(run, [*TINY_CYCLEGAN, f"data.root={folders}", "logger=none", "trainer.max_steps=3"])
    return run


def built(run_dir: Path, *overrides: str) -> Trainer:
    trainer = Trainer(train_config(overrides), run_dir)
    trainer.build()
    return trainer


def test_a_run_starts_from_every_network_of_the_source_with_fresh_optimisers(source_run, folders, tmp_path, caplog):
    source = Checkpoint.read(source_run)
    with caplog.at_level(logging.INFO, logger="translate"):
        trainer = built(
            tmp_path / "tuned", *TINY_CYCLEGAN, f"data.root={folders}", "logger=none", "trainer.max_steps=1", f"init_from={source_run}"
        )
    assert_same_tensors({n: net.state_dict() for n, net in trainer.run.model.networks.items()}, source.networks)
    assert all(not opt.state for opt in trainer.run.optimizers.values())
    assert "D_A, D_B, G_A, G_B start from its weights" in caplog.text and "start afresh" in caplog.text
    # The first step updates the loaded weights (not fresh ones), and the run counts from step 0.
    trainer.fit()
    tuned = Checkpoint.read(tmp_path / "tuned")
    assert tuned.step == 1
    moved = tuned.networks["G_A"]["model.1.weight"] - source.networks["G_A"]["model.1.weight"]
    assert 0 < moved.abs().max() < 0.05


def test_a_published_generator_fine_tunes_on_a_folder_pair(folders, tmp_path, caplog):
    """A horse2zebra-style file (one reference-format ResNet generator, with the stale InstanceNorm buffers
    old files carry) becomes G_A; G_B and the discriminators start fresh, and training runs."""
    torch.manual_seed(3)
    net = init_weights(ResnetGenerator(3, 3, ngf=4, norm="instance", n_blocks=1))
    state = dict(net.state_dict())
    state["model.2.running_mean"] = torch.zeros(4)
    (tmp_path / "horse2zebra").mkdir()
    torch.save(state, tmp_path / "horse2zebra" / "latest_net_G.pth")
    overrides = [*TINY_CYCLEGAN, f"data.root={folders}", "logger=none", f"init_from={tmp_path / 'horse2zebra'}"]
    with caplog.at_level(logging.INFO, logger="translate"):
        trainer = built(tmp_path / "tuned", *overrides, "trainer.max_steps=2")
    assert_same_tensors(trainer.run.model.netG_A.state_dict(), net.state_dict())
    assert "G_A start from its weights, D_A, D_B, G_B fresh" in caplog.text
    trainer.fit()
    assert Checkpoint.read(tmp_path / "tuned").step == 2


def test_the_published_name_is_looked_up_in_the_data_cache(folders, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSLATE_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(CheckpointError, match="^init_from=horse2zebra: .* translate-data download-model horse2zebra$"):
        built(tmp_path / "tuned", *TINY_CYCLEGAN, f"data.root={folders}", "logger=none", "init_from=horse2zebra")


def test_a_run_that_does_not_fit_names_the_settings_that_differ(source_run, folders, tmp_path):
    wider = ["model.generator.ngf=8", "model.discriminator.ndf=8", "model.generator.init_gain=0.05", "model.lambda_A=5"]
    with pytest.raises(CheckpointError) as caught:
        built(tmp_path / "wider", *TINY_CYCLEGAN, f"data.root={folders}", "logger=none", *wider, f"init_from={source_run}")
    # The sizing settings only: the first weights' gain and the loss weight change no tensor of a network.
    assert str(caught.value) == (
        f"init_from={source_run / 'checkpoints' / 'latest.pt'}: its D_A does not fit this run's: "
        "model.generator.ngf: 4 in the source, 8 here; model.discriminator.ndf: 4 in the source, 8 here; "
        "give the run the source's settings, or another init_from"
    )
    write_pairs(tmp_path / "pairs", "train", 2, 32, seed=0)
    with pytest.raises(CheckpointError, match="holds a cyclegan run; this run is model=pix2pix"):
        built(tmp_path / "other", *TINY_PIX2PIX, f"data.root={tmp_path / 'pairs'}", "logger=none", f"init_from={source_run}")


def test_a_reference_file_that_does_not_fit_names_both_architectures(folders, tmp_path):
    """A reference-format file keeps no config: its architecture is read from its tensors."""
    (tmp_path / "published").mkdir()
    torch.save(ResnetGenerator(3, 3, ngf=8, n_blocks=1).state_dict(), tmp_path / "published" / "latest_net_G.pth")
    with pytest.raises(CheckpointError) as caught:
        built(tmp_path / "tuned", *TINY_CYCLEGAN, f"data.root={folders}", "logger=none", f"init_from={tmp_path / 'published'}")
    message = str(caught.value)
    assert "its G_A is resnet with n_blocks=1, ngf=8" in message and "this run's G_A is resnet with n_blocks=1, ngf=4" in message
    assert "\n" not in message


def test_resuming_a_fine_tuned_run_does_not_load_the_source_again(source_run, folders, tmp_path):
    overrides = [*TINY_CYCLEGAN, f"data.root={folders}", "logger=none", "trainer.max_steps=1", f"init_from={source_run}"]
    train(tmp_path / "tuned", overrides)
    # The source is gone: a resume that loaded it again would stop here.
    trainer = built(tmp_path / "tuned", *overrides[:-1], "init_from=/nowhere", f"resume={tmp_path / 'tuned'}")
    assert trainer.run.model is not None
