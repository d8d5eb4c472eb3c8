"""What ``translate-export`` does: write a trained generator as a file that runs without ``translate`` installed.

    translate-export run=<run dir> format=torchscript|onnx [checkpoint=<file>] [network=G|G_A|G_B]
                     [output=<file>] [size=<side>] [bake=true]

``checkpoint=`` may also be a reference generator file (``latest_net_G.pth``, ...). The generator is
exported in eval mode (dropout off, batch norm on its running statistics), traced on a
``[1, C, size, size]`` input, and accepts any batch size and any image side the network takes
(multiples of 4 for a ResNet, of ``2 ** num_downs`` for a U-Net; the exported file does not check).

- ``torchscript``: ``torch.jit.load(path)(x)`` with x ``[N, C, H, W]`` in [-1, 1]; needs only PyTorch.
- ``onnx``: input ``input`` ``[N, C, H, W]``, output ``output``; needs the ``onnx`` package to write
  (``pip install "translate[export]"``), any ONNX runtime to run.

With ``bake=true`` the run's preprocessing is part of the file (:class:`translate.inference.baked.BakedGenerator`):
input ``image`` ``[H, W, C]`` uint8 of any size, output ``[H, W, C_out]`` uint8, the pixels that
``translate.load(run)(image)`` gives; default output ``<network>_<checkpoint stem>_uint8.<format>``.

The cGAN's generator takes ``z`` ``[N, z_dim]`` and ``labels`` ``[N]`` (int64) instead. The default output is
``<run>/export/<network>_<checkpoint stem>.torchscript.pt`` (or ``.onnx``); for a reference file,
``<its folder>/export/<its stem>.torchscript.pt``.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn

from translate.config import ExportConfig, ExportFormat, Weights
from translate.errors import ConfigError, ExportError
from translate.files import atomic_write
from translate.inference.baked import BakedGenerator
from translate.inference.translator import find_generator
from translate.networks.generators import ConditionalGenerator, generator_input_multiple

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
SUFFIXES = {ExportFormat.torchscript: ".torchscript.pt", ExportFormat.onnx: ".onnx"}
ONNX_OPSET = 17
DEFAULT_SIZE = 256


def load_generator(
    path: PathLike, network: Optional[str] = None, weights: Weights = Weights.ema
) -> Tuple[nn.Module, str, Path, Optional[int]]:
    """The generator to export from ``path`` (what :func:`translate.load` takes: a run directory, one of its
    checkpoints, a reference generator file or a pretrained name), in eval mode on the CPU.

    Returns ``(generator, name for output files, folder for default outputs, image side it was trained
    at or None)``. ``network`` picks a generator of a run (default: its first, G or G_A); ``weights``: ema
    (the run's moving average of its generators when it kept one) or raw.
    """
    source, found = find_generator(path, weights, network=network)
    if found.name is None:
        return found.net.eval(), source.path.stem, source.path.parent / "export", None
    return found.net.eval(), f"{found.name}_{source.path.stem}", source.path.parent.parent / "export", found.image_size


def example_inputs(net: nn.Module, size: int) -> Tuple[Tuple[torch.Tensor, ...], List[str], Dict[str, Dict[int, str]]]:
    """``(example inputs, input names, dynamic axes)`` for tracing ``net``; images are ``[1, C, size, size]``."""
    if isinstance(net, ConditionalGenerator):
        z = torch.randn(1, net.z_dim)
        labels = torch.zeros(1, dtype=torch.long)
        return (z, labels), ["z", "labels"], {"z": {0: "batch"}, "labels": {0: "batch"}, "output": {0: "batch"}}
    multiple = generator_input_multiple(net)
    if size <= 0 or size % multiple:
        raise ConfigError(
            f"size={size} does not fit this generator: image sides must be multiples of {multiple}, "
            f"e.g. {multiple * max(1, size // multiple)}"
        )
    channels = next(m for m in net.modules() if isinstance(m, nn.Conv2d)).in_channels
    image_axes = {0: "batch", 2: "height", 3: "width"}
    return (torch.randn(1, channels, size, size),), ["input"], {"input": image_axes, "output": image_axes}


def baked(net: nn.Module, example: torch.Tensor) -> Tuple[nn.Module, Tuple[torch.Tensor, ...], List[str], Dict[str, Dict[int, str]]]:
    """``net`` with its preprocessing baked in, and its example input (an 8-bit ``[size, size, C]`` image),
    input names and dynamic axes."""
    if isinstance(net, ConditionalGenerator):
        raise ConfigError("bake=true: the cGAN's generator takes noise and labels, not images; export it without bake")
    image = torch.randint(
        0, 256, (example.shape[2], example.shape[3], example.shape[1]), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    axes = {0: "height", 1: "width"}
    return BakedGenerator(net).eval(), (image,), ["image"], {"image": axes, "output": axes}


def write_torchscript(net: nn.Module, example: Tuple[torch.Tensor, ...], output: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        # The only Python control flow in the generators is their input-size check, meant to stay out of the graph.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(net, example)
    atomic_write(output, lambda tmp: torch.jit.save(traced, tmp))


def write_onnx(net: nn.Module, example: Tuple[torch.Tensor, ...], names: List[str], axes: Dict[str, Dict[int, str]], output: Path) -> None:
    def write(tmp: str) -> None:
        # The TorchScript-based exporter: one self-contained file, dynamic batch and image sides, and
        # no dependency beyond onnx (the dynamo exporter needs onnxscript and pins U-Net sides).
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # Its deprecation notice is about the choice made above, not something a user can act on.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            # Two notices that do not change the exported file's outputs (test_export compares them with the
            # eager generator's): InstanceNorm without running statistics normalises with each input's own
            # statistics in eval mode too, which is what "train=True" exports; and the reflection padding's
            # reversed slices are computed at run time instead of folded into constants.
            warnings.filterwarnings("ignore", message=".*operator 'instance_norm' is set to train=True")
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1 can be constant folded")
            torch.onnx.export(
                net,
                example,
                tmp,
                input_names=names,
                output_names=["output"],
                dynamic_axes=axes,
                opset_version=ONNX_OPSET,
                dynamo=False,
            )

    atomic_write(output, write)


def export_generator(cfg: ExportConfig) -> Path:
    """Export the generator of ``cfg.run`` / ``cfg.checkpoint`` (a run directory, a checkpoint or a reference
    file) as ``cfg.format`` to ``cfg.output``, atomically; returns the path written.

    ``cfg.size``: the side of the example image it is traced on (default: the run's crop size, else 256);
    ``cfg.weights``: ema (the run's moving average of its generators, when it kept one) or raw.
    """
    if cfg.format == ExportFormat.onnx and importlib.util.find_spec("onnx") is None:
        raise ExportError('format=onnx needs the onnx package: pip install "translate[export]"')
    net, name, folder, trained_size = load_generator(cfg.checkpoint or cfg.run or "", cfg.network, cfg.weights)
    example, names, axes = example_inputs(net, cfg.size if cfg.size is not None else trained_size or DEFAULT_SIZE)
    if cfg.bake:
        net, example, names, axes = baked(net, example[0])
        name += "_uint8"
    path = Path(cfg.output) if cfg.output else folder / f"{name}{SUFFIXES[cfg.format]}"
    if cfg.format == ExportFormat.torchscript:
        write_torchscript(net, example, path)
    else:
        write_onnx(net, example, names, axes, path)
    return path
