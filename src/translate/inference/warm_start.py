"""``translate-train init_from=...``: a new run whose networks start from trained weights (fine-tuning).

``init_from`` is what :func:`translate.inference.translator.find_source` takes: a run directory or one of its
checkpoints (every network of the same model is loaded, the generators' raw weights), a reference-format
generator file, a folder holding ``latest_net_G.pth`` or a published generator's name (the run's first
generator: G, or CycleGAN's G_A), or a folder of the reference's files named after this run's networks
(``latest_net_G_A.pth``, ``latest_net_D_B.pth``, ...: each one found).
Networks the source lacks start fresh, as do the optimisers, the schedule and the step count. A network that
does not fit raises CheckpointError naming the settings that differ between the source run's saved config
and this run's (``model.discriminator.ndf: 16 in the source, 64 here``); a reference-format file has no config,
so the message names both architectures as read from its tensors.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch
import torch.nn as nn

from translate.errors import CheckpointError
from translate.files import read_weights
from translate.hub.reference import infer_layout, reference_state_dict
from translate.inference.translator import find_source
from translate.models.base import GANModel
from translate.models.checkpoint import Checkpoint

log = logging.getLogger(__name__)

StateDict = Dict[str, torch.Tensor]

#: Top-level model keys that size a network: the cGAN's noise and classes, CUT's projection head, the
#: classifier's widths. The rest (loss weights, pools, patches) shape no tensor.
SIZING_KEYS = ("z_dim", "num_classes", "nce_layers", "netF_nc", "channels")
#: Keys of a network's section that only set its first weights, which init_from replaces.
INIT_KEYS = ("init_type", "init_gain")


def _sizing_settings(model_cfg: Any, info: Mapping[str, Any]) -> Dict[str, Any]:
    """The settings that size the networks of a model with config ``model_cfg`` (its typed ``model`` section)
    and data ``info`` (DataInfo's fields), by their full key."""
    found = {f"data.{key}": info.get(key) for key in ("input_nc", "output_nc")}
    found.update({f"model.{key}": getattr(model_cfg, key) for key in SIZING_KEYS if hasattr(model_cfg, key)})
    for section in ("generator", "discriminator"):
        net = getattr(model_cfg, section, None)
        if net is not None:
            found.update({f"model.{section}.{f.name}": getattr(net, f.name) for f in fields(net) if f.name not in INIT_KEYS})
    return found


def _text(value: Any) -> str:
    """A setting as it is written on the command line."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def differing_settings(source: Checkpoint, model: GANModel, where: Path) -> List[str]:
    """``key: <source's> in the source, <this run's> here`` for each setting that sizes a network and differs
    between ``source`` (a run's checkpoint of the same model) and ``model``; empty when none does or when the
    source's saved config no longer reads."""
    try:
        theirs = _sizing_settings(source.model_config(where), source.info)
    except CheckpointError:
        return []
    ours = _sizing_settings(model.cfg, asdict(model.info))
    return [
        f"{key}: {_text(theirs.get(key))} in the source, {_text(value)} here" for key, value in ours.items() if theirs.get(key) != value
    ]


def _describe(net: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> str:
    """A generator's architecture in words, from its keys; for other networks, their first weight's shape."""
    try:
        return infer_layout(dict(state), path).describe()
    except CheckpointError:
        first = next((k for k, v in state.items() if v.dim() == 4), None)
        return f"{first} of shape {list(state[first].shape)}" if first else f"{len(state)} tensors"


def _load(name: str, net: nn.Module, state: StateDict, path: Path, differences: Optional[List[str]]) -> None:
    """Load ``state`` into ``net``; when it does not fit, one line naming ``differences`` (the settings that
    differ, see :func:`differing_settings`) or, without them, both architectures as their tensors show."""
    try:
        net.load_state_dict(state)
    except RuntimeError:
        if differences:
            raise CheckpointError(
                f"init_from={path}: its {name} does not fit this run's: {'; '.join(differences)}; "
                "give the run the source's settings, or another init_from"
            ) from None
        raise CheckpointError(
            f"init_from={path}: its {name} is {_describe(net, state, path)}, this run's {name} is "
            f"{_describe(net, net.state_dict(), path)}; give the run the same model.generator / model.discriminator settings "
            "and data channels, or another init_from"
        ) from None


def _reference_folder(folder: Path, names: List[str]) -> Dict[str, StateDict]:
    """The reference's files in ``folder`` (``latest_net_<name>.pth``) by network name."""
    found = {}
    for name in names:
        path = folder / f"latest_net_{name}.pth"
        if path.is_file():
            found[name] = reference_state_dict(read_weights(path), path)
    return found


def init_networks(model: GANModel, source: str) -> Dict[str, str]:
    """Load ``source``'s weights into ``model``'s networks (see the module docstring); returns, per network,
    where its weights came from ("fresh" for those started anew), and logs it."""
    names = list(model.networks)
    folder = Path(source).expanduser()
    states = _reference_folder(folder, names) if folder.is_dir() else {}
    where = folder
    differences: Optional[List[str]] = None
    if not states:
        try:
            found = find_source(source)
        except CheckpointError as err:
            raise CheckpointError(f"init_from={err}") from None
        where = found.path
        if found.is_run:
            ckpt = Checkpoint.from_state(found.raw, found.path)
            if ckpt.model != model.cfg.name:
                raise CheckpointError(
                    f"init_from={found.path} holds a {ckpt.model} run; this run is model={model.cfg.name}: "
                    f"fine-tune it as model={ckpt.model}, or give a {model.cfg.name} run"
                )
            states = {name: ckpt.networks[name] for name in names if name in ckpt.networks}
            differences = differing_settings(ckpt, model, found.path)
        else:
            first = model.generators[0] if model.generators else names[0]
            states = {first: reference_state_dict(found.raw, found.path)}
    origin = {}
    for name, net in model.networks.items():
        if name in states:
            _load(name, net, states[name], where, differences)
            origin[name] = str(where)
        else:
            origin[name] = "fresh"
    loaded = [n for n, o in origin.items() if o != "fresh"]
    fresh = [n for n, o in origin.items() if o == "fresh"]
    log.info(
        "init_from=%s: %s start from its weights%s; the optimisers, the learning-rate schedule and the step count start afresh",
        where,
        ", ".join(loaded),
        f", {', '.join(fresh)} fresh (the source has none)" if fresh else "",
    )
    return origin
