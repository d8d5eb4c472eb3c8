"""``translate-test``: load a trained run and translate a test split (or sample digits, for the cGAN).

``checkpoint=`` may also name a generator file of the reference implementation (``latest_net_G.pth``,
``latest_net_G_A.pth``, ...): that one generator is applied one way to ``data`` (required then), its
inputs shown as real_A and its outputs as fake_B whatever the file's name, into
``<file's folder>/test_<file stem>/`` by default; see :mod:`translate.hub.reference`.

Outputs under ``output_dir`` (default ``<run>/test_<checkpoint name>/``):
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
from pathlib import Path
from typing import Any, Dict

import torch
from omegaconf import DictConfig, OmegaConf

from translate.cli.validate import validate
from translate.errors import CheckpointError, ConfigError
from translate.evaluation.protocols import evaluation_data, protocol_for
from translate.files import is_translate_checkpoint, read_weights, resolve_checkpoint
from translate.hub.reference import generator_from_weights
from translate.models.base import DataInfo, GANModel, build_model
from translate.models.generator_only import GeneratorOnly
from translate.networks.discriminators import DISCRIMINATOR_ARCHS
from translate.networks.generators import GENERATOR_ARCHS
from translate.training.devices import resolve_device
from translate.training.ema import averaged_weights

log = logging.getLogger(__name__)


def load_trained(cfg: DictConfig) -> tuple[GANModel, Any, Path, Path]:
    """The model of ``cfg.run`` / ``cfg.checkpoint`` with its weights; the run's config with the test's
    device and (if given) data; the checkpoint path; the output directory."""
    if not cfg.run and not cfg.checkpoint:
        raise ConfigError("run: say which run to test, e.g. translate-test run=outputs/cgan/mnist/<timestamp>")
    ckpt_path = resolve_checkpoint(cfg.checkpoint or cfg.run)
    state = read_weights(ckpt_path)
    if not is_translate_checkpoint(state):
        return load_generator_file(cfg, state, ckpt_path)
    if cfg.get("model") is not None:
        log.warning(
            "model=%s is ignored: %s is a translate checkpoint, whose saved config decides the model", cfg.model.get("name"), ckpt_path
        )
    run_cfg = OmegaConf.create(state["config"])
    run_cfg.device = cfg.device
    if cfg.get("data") is not None:
        run_cfg.data = cfg.data
    run_cfg.data = evaluation_data(run_cfg.data)
    run_cfg.resume = None
    model, typed = build_trained(state, ckpt_path, run_cfg, str(cfg.weights))
    run_dir = Path(cfg.run) if cfg.run else ckpt_path.parent.parent
    out = Path(cfg.output_dir) if cfg.output_dir else run_dir / f"test_{ckpt_path.stem}"
    return model, typed, ckpt_path, out


def _upgrade_depths(run_cfg: DictConfig, version: int) -> None:
    """Checkpoints of format 1 saved every depth key, a preset's too (the schema's default, which the preset
    overrode then); a depth that is set now wins over the preset, so such a saved depth is dropped."""
    if version >= 2:
        return
    for section, archs in (("generator", GENERATOR_ARCHS), ("discriminator", DISCRIMINATOR_ARCHS)):
        net = run_cfg.model.get(section)
        if net is None or net.get("arch") not in archs:
            continue
        family, key, _ = archs[net.arch]
        if net.arch != family and key in net:
            net[key] = None


def build_trained(state: Dict[str, Any], ckpt_path: Path, run_cfg: DictConfig, weights: str = "ema") -> tuple[GANModel, Any]:
    """The model of one of our checkpoints (``state``, read from ``ckpt_path``) with its weights, built
    from ``run_cfg`` (the config saved with it, as the caller adjusted it); and ``run_cfg`` validated.
    ``weights``: ``ema`` takes the generators' moving average where the run kept one, ``raw`` never does."""
    if weights not in ("ema", "raw"):
        raise ConfigError(f"weights={weights!r} is not known; use ema (the generators' average, when the run kept one) or raw")
    _upgrade_depths(run_cfg, state.get("version", 1))
    typed = validate(run_cfg, testing=True)
    model = build_model(typed.model, state["info"])
    chosen = dict(state["networks"])
    if weights == "ema" and state.get("ema"):
        chosen.update(averaged_weights(state["ema"]))
        log.info("%s: the generators' moving average (model.ema.decay=%s); weights=raw for the raw ones", ckpt_path, typed.model.ema.decay)
    for name, net in model.networks.items():
        try:
            net.load_state_dict(chosen[name])
        except (KeyError, RuntimeError) as err:
            raise CheckpointError(
                f"{ckpt_path}: network {name} does not fit the config saved with it: {str(err).splitlines()[0][:200]}"
            ) from None
    return model, typed


def load_generator_file(cfg: DictConfig, weights: Any, ckpt_path: Path) -> tuple[GANModel, Any, Path, Path]:
    """``load_trained`` for a reference-format generator file (``weights``, read from ``ckpt_path``):
    that generator, wrapped to translate ``cfg.data`` one way. ``model=`` is optional and supplies only
    what the file's keys cannot imply; with none, pix2pix's options (CycleGAN's for unaligned data)."""
    if cfg.get("data") is None:
        raise ConfigError(
            f"data: {ckpt_path} holds one generator and no data; add data=single data.root=<folder of images> "
            "(or data=aligned data.root=<pairs> to get metrics)"
        )
    model_cfg = cfg.model if cfg.get("model") is not None else {"name": "cyclegan" if cfg.data.get("kind") == "unaligned" else "pix2pix"}
    typed = validate(
        OmegaConf.create({"model": model_cfg, "data": cfg.data, "device": cfg.device, "paths": cfg.paths, "seed": cfg.seed}),
        testing=True,
    )
    netG, typed.model.generator, layout = generator_from_weights(
        weights, ckpt_path, typed.model.generator, typed.data.input_nc, typed.data.output_nc, warn=cfg.get("model") is not None
    )
    typed.data.input_nc, typed.data.output_nc = layout.input_nc, layout.output_nc
    typed.data = evaluation_data(typed.data)
    model = GeneratorOnly(netG, typed.model.generator, DataInfo(layout.input_nc, layout.output_nc))
    out = Path(cfg.output_dir) if cfg.output_dir else ckpt_path.parent / f"test_{ckpt_path.stem}"
    return model, typed, ckpt_path, out


def run_test(cfg: DictConfig) -> Path:
    """Test what ``cfg`` names and write the outputs its model's evaluation protocol defines; return where."""
    model, typed, ckpt_path, out = load_trained(cfg)
    device = resolve_device(cfg.device.accelerator)
    model.to(device)
    if cfg.eval_mode not in ("eval", "paper"):
        raise ConfigError(
            f"eval_mode={cfg.eval_mode!r} is not known; use eval (model.eval()) or paper (dropout and batch statistics on, as in the pix2pix paper)"
        )
    model.train(cfg.eval_mode == "paper")
    if cfg.eval_mode == "paper" and cfg.batch_size != 1:
        # The reference tests one image at a time: in training mode batch norm normalises with the batch's
        # statistics, so a bigger batch would make each output depend on the images beside it.
        log.info("eval_mode=paper: one image at a time (batch_size=1), as the reference tests")
        cfg.batch_size = 1
    torch.manual_seed(cfg.seed)
    log.info("testing %s (%s) into %s", ckpt_path, typed.model.name, out)
    with torch.no_grad():
        protocol_for(model).test(model, typed.data, cfg, out, device)
    return out
