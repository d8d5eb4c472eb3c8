"""What ``translate-export`` does: write a trained generator as a file that runs without ``translate`` installed.

    translate-export run=<run dir> format=pt2|onnx|torchscript [checkpoint=<file>] [network=G|G_A|G_B]
                     [output=<file>] [size=<side>] [bake=true]

``checkpoint=`` may also be a reference generator file (``latest_net_G.pth``, ...). The generator is
exported in eval mode (dropout off, batch norm on its running statistics) with ``torch.export`` on a
``[1, C, size, size]`` example (at least twice the generator's multiple), and accepts any batch size and any image side the network takes
(multiples of 4 for a ResNet, of ``2 ** num_downs`` for a U-Net).

- ``pt2``: a ``torch.export`` program, ``torch.export.load(path).module()(x)`` with x ``[N, C, H, W]`` in
  [-1, 1]; needs only PyTorch.
- ``onnx``: the same program through torch's ONNX exporter (``dynamo=True``), input ``input``
  ``[N, C, H, W]``, output ``output``; needs ``onnx`` and ``onnxscript`` to write
  (``pip install "translate[export]"``), any ONNX runtime to run.
- ``torchscript``: legacy (``torch.jit`` is deprecated), ``torch.jit.load(path)(x)``; traced, not exported.

With ``bake=true`` the run's preprocessing is part of the file (:class:`translate.inference.baked.BakedGenerator`):
input ``image`` ``[H, W, C]`` uint8 of any size, output ``[H, W, C_out]`` uint8, the pixels that
``translate.load(run)(image)`` gives; default output ``<network>_<checkpoint stem>_uint8.<suffix>``.

The cGAN's generator takes ``z`` ``[N, z_dim]`` and ``labels`` ``[N]`` (int64) instead. The default output is
``<run>/export/<network>_<checkpoint stem>.pt2`` (``.onnx``, ``.torchscript.pt``); for a reference file,
``<its folder>/export/<its stem>.pt2``.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import warnings
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import torch
import torch.fx.experimental._config as fx_config
import torch.nn as nn
from torch.export import Dim, ExportedProgram

from translate.config import ExportConfig, ExportFormat, Weights
from translate.errors import ConfigError, ExportError
from translate.files import atomic_write
from translate.inference.baked import BakedGenerator
from translate.inference.translator import find_generator
from translate.networks.generators import ConditionalGenerator, generator_input_multiple

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
SUFFIXES = {ExportFormat.pt2: ".pt2", ExportFormat.onnx: ".onnx", ExportFormat.torchscript: ".torchscript.pt"}
# The oldest opset torch's dynamo exporter writes; onnxruntime runs it since 1.14.
ONNX_OPSET = 18
DEFAULT_SIZE = 256


class Signature(NamedTuple):
    """What a generator is exported with: example inputs, their names, their dynamic sizes for
    ``torch.export`` (``dynamic_shapes``) and the names of the free axes of each input and of the output."""

    inputs: Tuple[torch.Tensor, ...]
    names: List[str]
    shapes: Tuple[Dict[int, Any], ...]
    axes: Dict[str, Dict[int, str]]


def load_generator(
    path: PathLike, network: Optional[str] = None, weights: Weights = Weights.ema
) -> Tuple[nn.Module, str, Path, Optional[int]]:
    """The generator to export from ``path`` (what :func:`translate.load` takes: a run directory, one of its
    checkpoints, a reference generator file or a pretrained name), in eval mode on the CPU, without gradients.

    Returns ``(generator, name for output files, folder for default outputs, image side it was trained
    at or None)``. ``network`` picks a generator of a run (default: its first, G or G_A); ``weights``: ema
    (the run's moving average of its generators when it kept one) or raw.
    """
    source, found = find_generator(path, weights, network=network)
    net = found.net.eval().requires_grad_(False)
    if found.name is None:
        return net, source.path.stem, source.path.parent / "export", None
    return net, f"{found.name}_{source.path.stem}", source.path.parent.parent / "export", found.image_size


def example_inputs(net: nn.Module, size: int) -> Signature:
    """How to export ``net``: images ``[1, C, side, side]`` (``size``, at least twice the generator's
    :func:`generator_input_multiple`) whose batch and sides stay free (sides in multiples of it); the cGAN's
    ``z`` and ``labels`` with a free batch."""
    batch = Dim("batch", min=1)
    if isinstance(net, ConditionalGenerator):
        z = torch.randn(1, net.z_dim)
        labels = torch.zeros(1, dtype=torch.long)
        return Signature(
            (z, labels), ["z", "labels"], ({0: batch}, {0: batch}), {"z": {0: "batch"}, "labels": {0: "batch"}, "output": {0: "batch"}}
        )
    multiple = generator_input_multiple(net)
    if size <= 0 or size % multiple:
        raise ConfigError(
            f"size={size} does not fit this generator: image sides must be multiples of {multiple}, "
            f"e.g. {multiple * max(1, size // multiple)}"
        )
    channels = next(m for m in net.modules() if isinstance(m, nn.Conv2d)).in_channels
    sides = {2: multiple * Dim("height_blocks", min=1), 3: multiple * Dim("width_blocks", min=1)}
    image_axes = {0: "batch", 2: "height", 3: "width"}
    # torch.export pins the sides to an example whose innermost map is 1 x 1 (a U-Net at exactly its
    # multiple), so the example is at least twice the multiple; the program still takes the multiple itself.
    side = max(size, 2 * multiple)
    return Signature(
        (torch.randn(1, channels, side, side),), ["input"], ({0: batch, **sides},), {"input": image_axes, "output": image_axes}
    )


def baked(net: nn.Module, signature: Signature) -> Tuple[nn.Module, Signature]:
    """``net`` with its preprocessing baked in, and how to export it: an 8-bit ``[size, size, C]`` image (the
    side of ``signature``'s example) whose sides stay free from the generator's multiple up."""
    if isinstance(net, ConditionalGenerator):
        raise ConfigError("bake=true: the cGAN's generator takes noise and labels, not images; export it without bake")
    example = signature.inputs[0]
    image = torch.randint(
        0, 256, (example.shape[2], example.shape[3], example.shape[1]), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    multiple = generator_input_multiple(net)
    sides = {0: Dim("height", min=multiple), 1: Dim("width", min=multiple)}
    axes = {0: "height", 1: "width"}
    return BakedGenerator(net).eval(), Signature((image,), ["image"], (sides,), {"image": axes, "output": axes})


def exported_program(net: nn.Module, signature: Signature) -> ExportedProgram:
    """``net`` as a ``torch.export`` program with ``signature``'s free sizes."""
    # Size-oblivious reasoning: without it, export assumes every free size it meets is at least 2, and the
    # program refuses a U-Net's input of exactly 2 ** num_downs (its innermost map 1x1: unet_256 on 256 px).
    # Deferred asserts: what sympy cannot prove about the baked padding ((H + (m - H % m) % m) % m == 0) is
    # checked in the graph at run time instead of failing the export.
    # (patch is set on the config module at import, unseen by mypy.)
    with torch.no_grad(), fx_config.patch(backed_size_oblivious=True):  # type: ignore[attr-defined]
        return torch.export.export(net, signature.inputs, dynamic_shapes=signature.shapes, prefer_deferred_runtime_asserts_over_guards=True)


def write_pt2(program: ExportedProgram, output: Path) -> None:
    # Through a buffer: torch.export.save wants a file name ending in .pt2, and atomic_write's is .tmp.
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    atomic_write(output, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))


def write_onnx(program: ExportedProgram, signature: Signature, output: Path) -> None:
    import onnx

    # torch's recommended exporter (dynamo=True) from the same program as pt2: free batch and sides, and the
    # outputs of the legacy TorchScript-based exporter (docs/export.md has the measurements).
    # Its graph optimiser reports each pass at INFO ("Removed 42 unused nodes"), which the CLI's logging shows.
    chatty = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [logger.level for logger in chatty]
    for logger in chatty:
        logger.setLevel(logging.WARNING)
    try:
        onnx_program = torch.onnx.export(
            program,
            signature.inputs,
            input_names=signature.names,
            output_names=["output"],
            opset_version=ONNX_OPSET,
            dynamo=True,
            verbose=False,
        )
    finally:
        for logger, level in zip(chatty, levels):
            logger.setLevel(level)
    assert onnx_program is not None
    model = onnx_program.model_proto
    # The exporter names free axes after its symbols (s40, Min(s40, 4*((s40 + ...)//4))); give them words.
    for value in [*model.graph.input, *model.graph.output]:
        for axis, name in signature.axes.get(value.name, {}).items():
            value.type.tensor_type.shape.dim[axis].dim_param = name
    atomic_write(output, lambda tmp: onnx.save(model, tmp))


def write_torchscript(net: nn.Module, signature: Signature, output: Path) -> None:
    jit = getattr(torch, "jit", None)
    if jit is None or not hasattr(jit, "trace"):
        raise ExportError(f"format=torchscript: torch {torch.__version__} has no torch.jit; use format=pt2 (torch.export)")
    log.warning(
        f"format=torchscript is legacy (torch {torch.__version__} deprecates torch.jit); format=pt2 writes its replacement, a torch.export program"
    )
    with torch.no_grad(), warnings.catch_warnings():
        # The notices the line above replaces: torch.jit.trace, trace_method and save are deprecated.
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        # The only Python control flow in the generators is their input-size check, meant to stay out of the graph.
        warnings.filterwarnings("ignore", category=jit.TracerWarning)
        traced = jit.trace(net, signature.inputs)
        atomic_write(output, lambda tmp: jit.save(traced, tmp))


def export_generator(cfg: ExportConfig) -> Path:
    """Export the generator of ``cfg.run`` / ``cfg.checkpoint`` (a run directory, a checkpoint or a reference
    file) as ``cfg.format`` to ``cfg.output``, atomically; returns the path written.

    ``cfg.size``: the side of the example image it is exported with (default: the run's crop size, else 256);
    ``cfg.weights``: ema (the run's moving average of its generators, when it kept one) or raw.
    """
    if cfg.format == ExportFormat.onnx:
        missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
        if missing:
            raise ExportError(
                f'format=onnx needs the {" and ".join(missing)} package{"s" if len(missing) > 1 else ""}: pip install "translate[export]"'
            )
    net, name, folder, trained_size = load_generator(cfg.checkpoint or cfg.run or "", cfg.network, cfg.weights)
    signature = example_inputs(net, cfg.size if cfg.size is not None else trained_size or DEFAULT_SIZE)
    if cfg.bake:
        net, signature = baked(net, signature)
        name += "_uint8"
    path = Path(cfg.output) if cfg.output else folder / f"{name}{SUFFIXES[cfg.format]}"
    if cfg.format == ExportFormat.torchscript:
        write_torchscript(net, signature, path)
    elif cfg.format == ExportFormat.pt2:
        write_pt2(exported_program(net, signature), path)
    else:
        write_onnx(exported_program(net, signature), signature, path)
    return path
