"""Loading generators saved by the reference implementation (``latest_net_G.pth``, ``latest_net_G_A.pth``, ...).

Such a file is a plain state_dict of one generator. Its keys say which architecture it holds, so the
options that shape the network are read from them rather than trusted to the config:

- ResNet or U-Net: ``model.1.weight`` (a 7x7 conv) or ``model.model.0.weight``;
- depth: the number of ``model.<i>.conv_block`` residual blocks, or the nesting depth of ``.model.``;
- norm: ``batch`` when norm layers carry weights, ``instance`` when the convolutions carry biases and
  the norm layers nothing, ``none`` otherwise;
- ResNet dropout and zero padding: where the second convolution of a residual block sits;
- ngf and channels: the first and the last convolution's shapes.

Where the config disagrees, the file wins and the difference is logged. What the keys cannot tell comes
from the config: reflect vs replicate padding, and the U-Net's dropout (no weights; it only matters
with ``eval_mode=paper``). Every file is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn

from translate.config import Norm
from translate.errors import CheckpointError
from translate.files import read_weights
from translate.models.checkpoint import is_checkpoint
from translate.networks.configs import GENERATOR_ARCHS, GeneratorConfig, resolve_preset
from translate.networks.generators import build_generator

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
StateDict = Dict[str, torch.Tensor]

_STALE_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
_UNET_ROOT = "model.model."
_RESNET_FIRST = "model.1.weight"
# Residual blocks start after pad, conv, norm, ReLU and two (conv, norm, ReLU) downsamplings.
_RESNET_FIRST_BLOCK = 10
_SECTION = "model.generator"


def reference_state_dict(obj: Any, path: PathLike) -> StateDict:
    """The generator state_dict in ``obj``, cleaned: a ``module.`` prefix (nn.DataParallel) stripped and
    the stale running-stat buffers of InstanceNorm layers dropped. Those layers have no weight, so a
    running statistic without a ``weight`` beside it belongs to one; old reference files carry them."""
    if is_checkpoint(obj):
        raise CheckpointError(f"{path} is a translate checkpoint, not a reference generator file; pass it as checkpoint= or run=")
    if not isinstance(obj, Mapping) or not obj:
        what = "an empty mapping" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
        raise CheckpointError(f"{path} holds {what}, not a generator state_dict (a mapping of names to tensors)")
    bad = next((k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise CheckpointError(f"{path} is not a generator state_dict: the value of {bad!r} is a {type(obj[bad]).__name__}, not a tensor")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    stale = [k for k in state if k.rsplit(".", 1)[-1] in _STALE_BUFFERS and f"{k.rsplit('.', 1)[0]}.weight" not in state]
    for key in stale:
        del state[key]
    if stale:
        log.info("%s: dropped %d stale InstanceNorm buffers (e.g. %s)", path, len(stale), stale[0])
    return state


def _preset(family: str, depth: int) -> Optional[str]:
    return next((name for name, (fam, _, own) in GENERATOR_ARCHS.items() if fam == family != name and own == depth), None)


def _arch_text(family: str, depth: int) -> str:
    """``resnet_9blocks``, or ``resnet with n_blocks=2`` where no preset has that depth."""
    key = next(k for fam, k, _ in GENERATOR_ARCHS.values() if fam == family)
    return _preset(family, depth) or f"{family} with {key}={depth}"


@dataclass(frozen=True)
class GeneratorLayout:
    """What a reference generator's keys imply. ``dropout`` and ``zero_padding`` are None where the
    keys cannot tell (the U-Net's dropout has no weights; a ResNet without blocks has neither)."""

    family: str
    depth: int
    ngf: int
    norm: str
    input_nc: int
    output_nc: int
    dropout: Optional[bool] = None
    zero_padding: Optional[bool] = None

    @property
    def arch(self) -> str:
        """The preset name for this family and depth (e.g. ``resnet_9blocks``), else the family name."""
        return _preset(self.family, self.depth) or self.family

    def describe(self) -> str:
        arch = _arch_text(self.family, self.depth)
        return f"{arch}, ngf={self.ngf}, norm={self.norm}, {self.input_nc}->{self.output_nc} channels"


def _norm(state: StateDict, norm_prefix: str, conv_prefix: str) -> str:
    if f"{norm_prefix}.weight" in state:
        return "batch"
    return "instance" if f"{conv_prefix}.bias" in state else "none"


def _resnet_layout(state: StateDict, path: PathLike) -> GeneratorLayout:
    first = state[_RESNET_FIRST]
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    last = max(int(m.group(1)) for k in state if (m := re.fullmatch(r"model\.(\d+)\.weight", k)))
    dropout = zero_padding = None
    if blocks:
        prefix = f"model.{blocks[0]}.conv_block."
        convs = sorted(int(k[len(prefix) :].split(".")[0]) for k, v in state.items() if k.startswith(prefix) and v.dim() == 4)
        # pad, conv, norm, ReLU, [Dropout], pad, conv, norm; with zero padding the pads are absent
        if len(convs) != 2 or convs[0] not in (0, 1):
            raise CheckpointError(
                f"{path}: {prefix[:-1]} has convolutions at {convs}; a reference residual block has two, the first at 0 or 1"
            )
        zero_padding = convs[0] == 0
        plain = convs[0] + (3 if zero_padding else 4)
        if convs[1] not in (plain, plain + 1):
            raise CheckpointError(
                f"{path}: {prefix[:-1]} has its second convolution at {convs[1]}; expected {plain} "
                f"({_SECTION}.dropout=false) or {plain + 1} (dropout=true)"
            )
        dropout = convs[1] == plain + 1
    return GeneratorLayout(
        family="resnet",
        depth=len(blocks),
        ngf=first.shape[0],
        norm=_norm(state, "model.2", "model.1"),
        input_nc=first.shape[1],
        output_nc=state[f"model.{last}.weight"].shape[0],
        dropout=dropout,
        zero_padding=zero_padding,
    )


def _unet_layout(state: StateDict, path: PathLike) -> GeneratorLayout:
    # The outermost block holds its submodule at index 1, every other block at index 3.
    prefixes = [_UNET_ROOT]
    child = _UNET_ROOT + "1.model."
    while any(k.startswith(child) for k in state):
        prefixes.append(child)
        child += "3.model."
    if len(prefixes) < 5:
        raise CheckpointError(f"{path} holds a U-Net with {len(prefixes)} levels; translate's U-Net needs {_SECTION}.num_downs >= 5")
    down, up = state.get(_UNET_ROOT + "0.weight"), state.get(_UNET_ROOT + "3.weight")
    if down is None or up is None:
        raise CheckpointError(f"{path} lacks {_UNET_ROOT}0.weight or {_UNET_ROOT}3.weight, the outer convolutions of a reference U-Net")
    return GeneratorLayout(
        family="unet",
        depth=len(prefixes),
        ngf=down.shape[0],
        # The first inner block: 1 conv, 2 norm.
        norm=_norm(state, prefixes[1] + "2", prefixes[1] + "1"),
        input_nc=down.shape[1],
        output_nc=up.shape[1],
    )


def infer_layout(state: StateDict, path: PathLike) -> GeneratorLayout:
    """Read the architecture from a cleaned reference state_dict (see the module docstring)."""
    first = state.get(_RESNET_FIRST)
    if first is not None and first.dim() == 4 and tuple(first.shape[2:]) == (7, 7):
        return _resnet_layout(state, path)
    if any(k.startswith(_UNET_ROOT) for k in state):
        return _unet_layout(state, path)
    keys = ", ".join(list(state)[:3])
    if "model.0.weight" in state or "net.0.weight" in state:
        raise CheckpointError(
            f"{path} looks like a discriminator ({keys}, ...); pass a generator file such as latest_net_G.pth or latest_net_G_A.pth"
        )
    raise CheckpointError(
        f"{path} is not a reference ResNet or U-Net generator: "
        f"expected keys like {_RESNET_FIRST} or {_UNET_ROOT}0.weight, found {keys}, ..."
    )


def _configured(cfg: GeneratorConfig) -> Dict[str, Any]:
    """What ``cfg`` says about the keys a file can imply, for the log of disagreements."""
    said: Dict[str, Any] = {"ngf": cfg.ngf, "norm": str(cfg.norm), "dropout": cfg.dropout, "arch": cfg.arch}
    if cfg.arch in GENERATOR_ARCHS:
        said["arch"] = _arch_text(*resolve_preset("model.generator", GENERATOR_ARCHS, cfg))
    return said


def _yaml(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def apply_layout(layout: GeneratorLayout, cfg: Optional[GeneratorConfig] = None, path: PathLike = "", warn: bool = True) -> GeneratorConfig:
    """A copy of the generator config ``cfg`` (defaults when None) with every key the file implies set from
    ``layout``; with ``warn``, each disagreement with ``cfg`` is logged."""
    base = GeneratorConfig() if cfg is None else cfg
    out = replace(base, arch=layout.arch, ngf=layout.ngf, norm=Norm(layout.norm))
    out = replace(out, n_blocks=layout.depth) if layout.family == "resnet" else replace(out, num_downs=layout.depth)
    if layout.dropout is not None:
        out = replace(out, dropout=layout.dropout)
    if layout.zero_padding is not None and layout.zero_padding != (out.padding_type == "zero"):
        out = replace(out, padding_type="zero" if layout.zero_padding else "reflect")
    if cfg is not None and warn:
        said = _configured(cfg)
        implied = {"arch": _arch_text(layout.family, layout.depth), "ngf": layout.ngf, "norm": layout.norm, "dropout": layout.dropout}
        implied["padding_type"] = str(out.padding_type)
        said["padding_type"] = str(cfg.padding_type)
        for key, value in implied.items():
            if value is not None and said[key] != value:
                log.warning(
                    "%s implies %s.%s=%s (the config says %s); using the file's",
                    path,
                    _SECTION,
                    key,
                    _yaml(value),
                    _yaml(said[key]),
                )
    return out


def _check_fit(net: nn.Module, state: StateDict, path: PathLike, layout: GeneratorLayout) -> None:
    """One line naming what does not fit, instead of load_state_dict's page of keys."""
    expected = net.state_dict()
    # BatchNorm fills in a missing counter itself (files from before PyTorch 0.4 lack it).
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    clash = next((k for k in expected if k in state and expected[k].shape != state[k].shape), None)
    problems: List[str] = []
    if missing:
        problems.append(f"missing {', '.join(missing[:3])}" + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""))
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:3])}" + (f" (+{len(unexpected) - 3} more)" if len(unexpected) > 3 else ""))
    if clash is not None:
        problems.append(f"{clash} is {list(state[clash].shape)} in the file but {list(expected[clash].shape)} in the network")
    if problems:
        raise CheckpointError(f"{path} does not fit the generator its keys imply ({layout.describe()}): {'; '.join(problems)}")


def generator_from_weights(
    obj: Any,
    path: PathLike,
    cfg: Optional[GeneratorConfig] = None,
    input_nc: Optional[int] = None,
    output_nc: Optional[int] = None,
    warn: bool = True,
) -> Tuple[nn.Module, GeneratorConfig, GeneratorLayout]:
    """Build the generator a reference state_dict ``obj`` (read from ``path``) implies and load it.

    ``cfg`` supplies what the keys cannot tell; ``input_nc``/``output_nc`` are what the caller expected.
    The file wins; with ``warn``, each difference from what the caller said is logged (pass False when
    ``cfg`` holds defaults the user never chose). Returns ``(generator, the generator config used,
    layout)``; the generator is on the CPU, in training mode like any freshly built module.
    """
    state = reference_state_dict(obj, path)
    layout = infer_layout(state, path)
    for name, expected, actual in (("input_nc", input_nc, layout.input_nc), ("output_nc", output_nc, layout.output_nc)):
        if warn and expected is not None and expected != actual:
            log.warning("%s has %d %s channels (the config says %d); using the file's", path, actual, name, expected)
    gen_cfg = apply_layout(layout, cfg, path, warn)
    net = build_generator(gen_cfg, layout.input_nc, layout.output_nc)
    _check_fit(net, state, path, layout)
    net.load_state_dict(state, strict=True)
    log.info("%s: %s", path, layout.describe())
    return net, gen_cfg, layout


def load_reference_generator(
    path: PathLike, cfg: Optional[GeneratorConfig] = None, input_nc: Optional[int] = None, output_nc: Optional[int] = None
) -> nn.Module:
    """The generator in a reference-format file (``latest_net_G.pth`` and the like), loaded safely.

    Args:
        path: the ``.pth`` file.
        cfg: a GeneratorConfig for what the keys cannot imply (None: the schema's defaults).
        input_nc, output_nc: the channels the caller expects; the file's win, a difference is logged.

    Shapes of the returned module: ``[N, input_nc, H, W] -> [N, output_nc, H, W]`` (the file's channels).
    Raises CheckpointError (one line, naming the file) for anything that is not such a generator.
    """
    return generator_from_weights(read_weights(path), path, cfg, input_nc, output_nc)[0]
