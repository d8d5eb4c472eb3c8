"""``translate-test``: load a trained run and translate a test split (or sample digits, for the cGAN).

``checkpoint=`` may also name a generator file of the reference implementation (``latest_net_G.pth``,
``latest_net_G_A.pth``, ...): that one generator is applied one way to ``data`` (required then), its
inputs shown as real_A and its outputs as fake_B whatever the file's name, into
``<file's folder>/test_<file stem>/`` by default; see :mod:`translate.hub.reference`.

Outputs under ``output_dir`` (default ``<run>/test_<checkpoint name>/``), written into a hidden folder beside it
and renamed to it when complete; an earlier test there is first renamed to ``<output_dir>.<its time>/`` (see
:func:`translate.evaluation.report.output_folder`):
- image models: ``images/<stem>_<visual>.png``, ``index.html`` (each input's visuals side by side),
  ``metrics.json`` (mean of each per-image metric, with the number of images it used; FID/KID of each
  fake_X against the real_X images when torch-fidelity and its Inception weights are there, see
  :mod:`translate.evaluation.fid`);
- the cGAN: ``grid.png`` (row = class, fixed noise), ``samples/<class>/<k>.png`` and ``metrics.json``
  (the scores of :mod:`translate.evaluation.digits`);
- an MNIST classifier run: ``metrics.json`` (its accuracy on the split).

Every ``metrics.json`` entry is ``{"mean": value, "num_images": n, ...}``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Tuple

import torch

from translate.config import EvalMode, TestConfig, Weights
from translate.data.configs import DataConfig, ImageDataConfig, evaluation_data
from translate.devices import resolve_device
from translate.errors import CheckpointError, ConfigError
from translate.evaluation.protocols import protocol_for
from translate.evaluation.report import output_folder
from translate.files import read_weights, resolve_checkpoint
from translate.hub.reference import generator_from_weights
from translate.models.base import DataInfo, GANModel
from translate.models.checkpoint import Checkpoint, is_checkpoint, trained_model
from translate.models.generator_only import GeneratorOnly
from translate.settings.validate import check_model_data, typed_data, typed_model
from translate.training.trackers import report_test

log = logging.getLogger(__name__)


def load_trained(cfg: TestConfig) -> Tuple[GANModel, DataConfig, Path, Path]:
    """The model of ``cfg.run`` / ``cfg.checkpoint`` with its weights, the data to test it on (the run's, or
    ``data=`` given now, preprocessed for evaluation), the checkpoint path, and the output directory."""
    ckpt_path = resolve_checkpoint(cfg.checkpoint or cfg.run or "")
    raw = read_weights(ckpt_path)
    if not is_checkpoint(raw):
        return load_generator_file(cfg, raw, ckpt_path)
    ckpt = Checkpoint.from_state(raw, ckpt_path)
    if cfg.model is not None:
        log.warning(
            "model=%s is ignored: %s is a translate checkpoint, whose saved config decides the model", cfg.model.get("name"), ckpt_path
        )
    model_cfg = ckpt.model_config(ckpt_path)
    if cfg.data is not None:
        data = typed_data(cfg.data)
    else:
        try:
            data = typed_data(ckpt.config["data"])
        except ConfigError as err:
            raise CheckpointError(f"{ckpt_path}: its saved data config does not fit this translate ({err}); give data= now") from None
    check_model_data(model_cfg, data, testing=True)
    model = trained_model(ckpt, cfg.weights, ckpt_path)
    if cfg.weights == Weights.ema and ckpt.ema:
        log.info("%s: the generators' moving average (model.ema.decay=%s); weights=raw for the raw ones", ckpt_path, model_cfg.ema.decay)
    run_dir = Path(cfg.run) if cfg.run else ckpt_path.parent.parent
    out = Path(cfg.output_dir) if cfg.output_dir else run_dir / f"test_{ckpt_path.stem}"
    return model, evaluation_data(data), ckpt_path, out


def load_generator_file(cfg: TestConfig, weights: Any, ckpt_path: Path) -> Tuple[GANModel, DataConfig, Path, Path]:
    """``load_trained`` for a reference-format generator file (``weights``, read from ``ckpt_path``): that
    generator, wrapped to translate ``cfg.data`` one way. ``model=`` is optional and supplies only what the
    file's keys cannot imply; with none, pix2pix's options (CycleGAN's for unaligned data)."""
    if cfg.data is None:
        raise ConfigError(
            f"data: {ckpt_path} holds one generator and no data; add data=single data.root=<folder of images> "
            "(or data=aligned data.root=<pairs> to get metrics)"
        )
    data = typed_data(cfg.data)
    if not isinstance(data, ImageDataConfig):
        raise ConfigError(f"data={data.name}: {ckpt_path} is an image-to-image generator; give it images (data=single data.root=<folder>)")
    model_cfg = typed_model(cfg.model if cfg.model is not None else {"name": "cyclegan" if data.kind == "unaligned" else "pix2pix"})
    generator = getattr(model_cfg, "generator", None)
    netG, gen_cfg, layout = generator_from_weights(weights, ckpt_path, generator, data.input_nc, data.output_nc, warn=cfg.model is not None)
    data = evaluation_data(replace(data, input_nc=layout.input_nc, output_nc=layout.output_nc))
    model = GeneratorOnly(netG, gen_cfg, DataInfo(layout.input_nc, layout.output_nc))
    out = Path(cfg.output_dir) if cfg.output_dir else ckpt_path.parent / f"test_{ckpt_path.stem}"
    return model, data, ckpt_path, out


def run_test(cfg: TestConfig) -> Path:
    """Test what ``cfg`` names and write the outputs its model's evaluation protocol defines; return where."""
    model, data, ckpt_path, out = load_trained(cfg)
    device = resolve_device(cfg.device.accelerator)
    model.to(device)
    paper = cfg.eval_mode == EvalMode.paper
    model.train(paper)
    if paper and cfg.batch_size != 1:
        # The reference tests one image at a time: in training mode batch norm normalises with the batch's
        # statistics, so a bigger batch would make each output depend on the images beside it.
        log.info("eval_mode=paper: one image at a time (batch_size=1), as the reference tests")
        cfg = replace(cfg, batch_size=1)
    torch.manual_seed(cfg.seed)
    with output_folder(out) as folder, torch.no_grad():
        log.info("testing %s (%s) into %s", ckpt_path, getattr(model.cfg, "name", "generator"), out)
        protocol_for(model).test(model, data, cfg, folder, device)
    # The run's trackers get the metrics too, as test_<checkpoint>[_<data>][_<split>]/<metric> (docs/tracking.md).
    tag = "_".join(["test", ckpt_path.stem, *([data.name] if cfg.data is not None else []), *([cfg.split] if cfg.split != "test" else [])])
    report_test(ckpt_path.parent.parent, tag, out / "metrics.json")
    return out
