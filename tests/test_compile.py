"""device.compile=true: the engine compiles every network with torch.compile (inductor, a C++ compiler on
the CPU) and trains through the compiled code, keeping the state_dict keys of the plain networks."""

from __future__ import annotations

import shutil

import pytest
import torch

from helpers import TINY, load_ckpt, train

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="torch.compile on the CPU needs a C compiler"
)


def test_compiled_networks_train_and_save_plain_weights(tmp_path, monkeypatch):
    # A private inductor cache: entries another run left in /tmp must not decide whether this one passes.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    trainer = train(tmp_path / "run", *TINY, "device.compile=true", "logger=none", "trainer.max_steps=2")
    for net in trainer.model.networks.values():
        # nn.Module.compile wraps the forward in place: the module is the same, its calls go through dynamo.
        assert net._compiled_call_impl is not None
    state = load_ckpt(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert state["step"] == 2
    keys = set(state["networks"]["G"])
    assert keys and not any("_orig_mod" in k for k in keys)
    assert all(torch.isfinite(t).all() for t in state["networks"]["G"].values() if t.is_floating_point())
