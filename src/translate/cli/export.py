"""``translate-export``: compose its config with Hydra (``conf/export.yaml``) and export a generator
(see :mod:`translate.cli.exporting`)."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import List, Optional

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from translate.cli.app import config_dir, fail
from translate.cli.overrides import check_overrides
from translate.errors import ConfigError, TranslateError


@dataclass
class ExportConfig:
    run: Optional[str] = None
    checkpoint: Optional[str] = None
    format: Optional[str] = None
    network: Optional[str] = None
    output: Optional[str] = None
    size: Optional[int] = None
    weights: str = "ema"


def _typed(cfg: DictConfig) -> DictConfig:
    try:
        typed = OmegaConf.merge(OmegaConf.structured(ExportConfig), cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{err.full_key}={err.value!r}: {str(err.msg).splitlines()[0]}") from None
    if typed.format is None:
        raise ConfigError("format: say format=torchscript or format=onnx")
    if not typed.run and not typed.checkpoint:
        raise ConfigError("run: say what to export, e.g. run=outputs/pix2pix/facades/<timestamp> or checkpoint=<file>")
    return typed


def _export_task(cfg: DictConfig) -> None:
    # Imported here so that --help, --cfg and Hydra's own errors answer without loading torch.
    from translate.cli.exporting import export_generator

    try:
        typed = _typed(cfg)
        with warnings.catch_warnings():
            # torch.jit and the TorchScript-based ONNX exporter announce their deprecation on every use.
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            out = export_generator(typed.checkpoint or typed.run, typed.format, typed.network, typed.output, typed.size, typed.weights)
    except TranslateError as err:
        fail("translate-export", err)
    print(f"translate-export: wrote {out}")


_export_main = hydra.main(config_path=config_dir(), config_name="export", version_base="1.3")(_export_task)


def main(argv: Optional[List[str]] = None) -> None:
    """``translate-export key=value ...``; ``argv`` replaces the command line's arguments (for callers in Python)."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    try:
        check_overrides("export", sys.argv[1:])
    except TranslateError as err:
        fail("translate-export", err)
    _export_main()
