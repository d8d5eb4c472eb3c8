"""The checkpoint format, owned here: :class:`Checkpoint` is what the training engine writes and what every
reader gets back (resume, translate-test, translate-export, the digit judge, the Python API), with every
migration of older files applied in :meth:`Checkpoint.read`; :func:`trained_model` builds the model a
checkpoint holds, with its weights.

A checkpoint file holds only tensors, numbers, strings and plain containers, so it loads with
``torch.load(weights_only=True)``: opening one never executes code from the file.

Format history (``version``):
- 1: every depth key saved, a preset's too (``arch=unet_128`` beside the schema's ``num_downs: 8``).
- 2: depth keys are null unless set, and a set one wins over the arch preset. Reading a version-1 file drops
  the saved depth of a preset, so the network is the one the preset built then.
- Files without ``samples_in_epoch`` (written before the position in an epoch was kept in samples) have it
  computed from their ``batch_in_epoch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import torch

from translate.config import Weights, to_typed
from translate.errors import CheckpointError, ConfigError
from translate.files import atomic_write, read_weights, resolve_checkpoint
from translate.models import MODELS
from translate.models.base import GANModel, build_model
from translate.models.configs import ModelConfig
from translate.networks.discriminators import DISCRIMINATOR_ARCHS
from translate.networks.generators import GENERATOR_ARCHS

FORMAT = "translate-checkpoint"
VERSION = 2

StateDict = Dict[str, torch.Tensor]


@dataclass
class Checkpoint:
    """A run's state at one step: its config, its networks, and everything that exact resume needs."""

    #: ``model.name``.
    model: str
    #: The run's whole config (translate.settings.schema.TrainConfig) as plain containers.
    config: Dict[str, Any]
    #: What the model was sized for (translate.models.base.DataInfo's fields).
    info: Dict[str, Any]
    #: Every network's state_dict, by name (G, D, G_A, ...).
    networks: Dict[str, StateDict]
    #: ``model.ema``: each averaged generator's AveragedModel state (``module.<key>`` weights, ``n_averaged``).
    ema: Optional[Dict[str, Dict[str, Any]]] = None
    optimizers: Dict[str, Any] = field(default_factory=dict)
    schedulers: Dict[str, Any] = field(default_factory=dict)
    scaler: Dict[str, Any] = field(default_factory=dict)
    #: The model's own training state (CycleGAN's image pools).
    extra: Dict[str, Any] = field(default_factory=dict)
    step: int = 0
    #: Epochs completed.
    epoch: int = 0
    #: Images of the current epoch trained on, over all processes.
    samples_in_epoch: int = 0
    skipped_nonfinite: int = 0
    world_size: int = 1
    #: ``{"metric", "value", "step", "epoch"}`` of trainer.best_metric's best validation so far.
    best: Optional[Dict[str, Any]] = None
    #: The random state of rank 0, and of every process (``rng_ranks``) when several trained.
    rng: Dict[str, Any] = field(default_factory=dict)
    rng_ranks: Optional[List[Dict[str, Any]]] = None

    def write(self, path: Union[str, Path]) -> None:
        """Save to ``path`` atomically: a crash at any moment leaves the old file or the new one."""
        # Not dataclasses.asdict: it would deep-copy every tensor.
        state = {"format": FORMAT, "version": VERSION, **{f.name: getattr(self, f.name) for f in fields(self)}}
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    @classmethod
    def read(cls, path: Union[str, Path]) -> "Checkpoint":
        """The checkpoint at ``path`` (a file, or a run directory meaning its ``checkpoints/latest.pt``), read
        on the CPU without executing code, every migration applied. A file that is not one of translate's
        (a reference generator file, a foreign pickle) raises CheckpointError naming it."""
        path = resolve_checkpoint(path)
        raw = read_weights(path)
        if not is_checkpoint(raw):
            raise CheckpointError(
                f"{path} is not a translate checkpoint (a reference-format generator file belongs in checkpoint=... of translate-test)"
            )
        return cls.from_state(raw, path)

    @classmethod
    def from_state(cls, raw: Mapping[str, Any], path: Union[str, Path]) -> "Checkpoint":
        """The checkpoint of ``raw`` (a translate checkpoint as :func:`translate.files.read_weights` read it
        from ``path``), migrated to the current version."""
        version = int(raw.get("version", 1))
        if version > VERSION:
            raise CheckpointError(
                f"{path} is of checkpoint format {version}, newer than this translate reads ({VERSION}); upgrade translate"
            )
        state = {key: value for key, value in raw.items() if key not in ("format", "version", "batch_in_epoch")}
        if version < 2:
            state["config"] = _drop_preset_depths(state["config"])
        if "samples_in_epoch" not in raw:
            state["samples_in_epoch"] = raw.get("batch_in_epoch", 0) * raw["config"]["trainer"]["batch_size"] * raw.get("world_size", 1)
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in state.items() if key in known})

    def model_config(self, where: Union[str, Path] = "") -> ModelConfig:
        """The run's ``model`` section, typed by its schema."""
        if self.model not in MODELS:
            raise CheckpointError(f"{where or 'the checkpoint'} holds a {self.model!r} model, which this translate does not know")
        try:
            return to_typed(MODELS[self.model].schema, self.config["model"], "model")
        except ConfigError as err:
            raise CheckpointError(f"{where or 'the checkpoint'}: its saved config does not fit this translate: {err}") from None

    def weights(self, which: Weights = Weights.ema) -> Dict[str, StateDict]:
        """Every network's weights, the generators' moving average in place of their raw weights when
        ``which`` is ema and the run kept one."""
        chosen = dict(self.networks)
        if Weights(which) == Weights.ema and self.ema:
            chosen.update(averaged_weights(self.ema))
        return chosen


def is_checkpoint(obj: Any) -> bool:
    """Whether ``obj`` (what :func:`translate.files.read_weights` returned) is one of translate's checkpoints."""
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


def averaged_weights(ema_state: Mapping[str, Mapping[str, torch.Tensor]]) -> Dict[str, StateDict]:
    """The averaged weights of a checkpoint's ``ema`` entry by network, with the networks' own keys."""
    return {
        name: {key[len("module.") :]: value for key, value in state.items() if key.startswith("module.")}
        for name, state in ema_state.items()
    }


def _drop_preset_depths(config: Dict[str, Any]) -> Dict[str, Any]:
    """Version 1 saved every depth key, a preset's too (the schema's default, which the preset overrode
    then); a depth set now wins over the preset, so such a saved depth is dropped."""
    model = dict(config.get("model", {}))
    for section, archs in (("generator", GENERATOR_ARCHS), ("discriminator", DISCRIMINATOR_ARCHS)):
        net = model.get(section)
        if not isinstance(net, Mapping) or net.get("arch") not in archs:
            continue
        family, key, _ = archs[net["arch"]]
        if net["arch"] != family and key in net:
            model[section] = {**net, key: None}
    return {**config, "model": model}


def trained_model(ckpt: Checkpoint, weights: Weights = Weights.ema, where: Union[str, Path] = "") -> GANModel:
    """The model ``ckpt`` holds, built from its saved config, with its weights (``weights``: the generators'
    moving average where the run kept one, or raw), on the CPU in eval mode."""
    model = build_model(ckpt.model_config(where), ckpt.info)
    chosen = ckpt.weights(weights)
    for name, net in model.networks.items():
        try:
            net.load_state_dict(chosen[name])
        except (KeyError, RuntimeError) as err:
            raise CheckpointError(
                f"{where or 'checkpoint'}: network {name} does not fit the config saved with it: {str(err).splitlines()[0][:200]}"
            ) from None
    return model.eval()
