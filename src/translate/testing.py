"""``translate-test``: load a trained run and translate a test split (or sample digits, for the cGAN).

``checkpoint=`` may also name a generator file of the reference implementation (``latest_net_G.pth``,
``latest_net_G_A.pth``, ...): that one generator is applied one way to ``data`` (required then), its
inputs shown as real_A and its outputs as fake_B whatever the file's name, into
``<file's folder>/test_<file stem>/`` by default; see :mod:`translate.pretrained`.

Outputs under ``output_dir`` (default ``<run>/test_<checkpoint name>/``):
- image models: ``images/<stem>_<visual>.png``, ``index.html`` (each input's visuals side by side),
  ``metrics.json`` (mean of each per-image metric, with the number of images it used; FID/KID of each
  fake_X against the real_X images when torch-fidelity and its Inception weights are there, see
  :mod:`translate.fid`);
- the cGAN: ``grid.png`` (row = class, fixed noise), ``samples/<class>/<k>.png`` and ``metrics.json``
  (the scores of :mod:`translate.cgan_metrics`);
- an MNIST classifier run: ``metrics.json`` (its accuracy on the split).

Every ``metrics.json`` entry is ``{"mean": value, "num_images": n, ...}``.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from translate.cgan_metrics import classifier_test_metrics, generator_test_metrics
from translate.checkpoint import CheckpointError, atomic_write, is_translate_checkpoint, read_weights, resolve_checkpoint
from translate.config import ConfigError, validate
from translate.devices import resolve_device
from translate.evaluation import evaluate
from translate.fid import DistributionMetrics, distribution_metrics
from translate.models import build_model
from translate.models.base import DataInfo, GANModel
from translate.pretrained import GeneratorOnly, generator_from_weights
from translate.visuals import rows_to_grid, save_png, to_unit

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
        log.warning("model=%s is ignored: %s is a translate checkpoint, whose saved config decides the model", cfg.model.get("name"), ckpt_path)
    run_cfg = OmegaConf.create(state["config"])
    run_cfg.device = cfg.device
    if cfg.get("data") is not None:
        run_cfg.data = cfg.data
    if "crop_size" in run_cfg.data:
        # As the reference tests: resize to the crop size, so the whole image is translated.
        run_cfg.data.load_size = run_cfg.data.crop_size
    run_cfg.resume = None
    model, typed = build_trained(state, ckpt_path, run_cfg)
    run_dir = Path(cfg.run) if cfg.run else ckpt_path.parent.parent
    out = Path(cfg.output_dir) if cfg.output_dir else run_dir / f"test_{ckpt_path.stem}"
    return model, typed, ckpt_path, out


def build_trained(state: Dict[str, Any], ckpt_path: Path, run_cfg: DictConfig) -> tuple[GANModel, Any]:
    """The model of one of our checkpoints (``state``, read from ``ckpt_path``) with its weights, built
    from ``run_cfg`` (the config saved with it, as the caller adjusted it); and ``run_cfg`` validated."""
    typed = validate(run_cfg, testing=True)
    model = build_model(typed.model, state["info"])
    for name, net in model.networks.items():
        try:
            net.load_state_dict(state["networks"][name])
        except (KeyError, RuntimeError) as err:
            raise CheckpointError(f"{ckpt_path}: network {name} does not fit the config saved with it: {str(err).splitlines()[0][:200]}") from None
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
    if "crop_size" in typed.data:
        # As for our checkpoints: the whole image, resized, is translated.
        typed.data.load_size = typed.data.crop_size
    model = GeneratorOnly(netG, typed.model.generator, DataInfo(layout.input_nc, layout.output_nc))
    out = Path(cfg.output_dir) if cfg.output_dir else ckpt_path.parent / f"test_{ckpt_path.stem}"
    return model, typed, ckpt_path, out


def run_test(cfg: DictConfig) -> Path:
    model, typed, ckpt_path, out = load_trained(cfg)
    device = resolve_device(cfg.device.accelerator)
    model.to(device)
    if cfg.eval_mode not in ("eval", "paper"):
        raise ConfigError(f"eval_mode={cfg.eval_mode!r} is not known; use eval (model.eval()) or paper (dropout and batch statistics on, as in the pix2pix paper)")
    model.train(cfg.eval_mode == "paper")
    torch.manual_seed(cfg.seed)
    # Before any work: with metrics.fid=true, missing weights stop here rather than after the translations.
    distributions = distribution_metrics(cfg.metrics, device) if model.task == "translate" else None
    log.info("testing %s (%s) into %s", ckpt_path, typed.model.name, out)
    with torch.no_grad():
        if model.task == "generate":
            metrics = generator_test_metrics(model, typed.data, cfg.split, cfg.metrics, int(cfg.seed), device)
            write_samples(model, out, int(cfg.n_per_class), device)
            write_metrics(out, metrics)
        elif model.task == "classify":
            write_metrics(out, classifier_test_metrics(model, typed.data, cfg.split, cfg.num_test, device))
        else:
            write_translations(model, model.test_datasets(typed.data, cfg.split), out, cfg, device, distributions)
    return out


def write_metrics(out: Path, metrics: Dict[str, Dict[str, Any]]) -> None:
    """metrics.json (``{name: {"mean": value, "num_images": n, ...}}``), and each value in the log."""
    atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2) + "\n"))
    for key, value in metrics.items():
        log.info("%s = %.4f (%d images)", key, value["mean"], value["num_images"])


def write_samples(model: GANModel, out: Path, n_per_class: int, device: torch.device) -> None:
    """grid.png (row = class, the model's fixed noise) and samples/<class>/<k>.png, n_per_class each."""
    save_png(rows_to_grid(model.visuals(None)), out / "grid.png")
    classes = model.cfg.num_classes
    for c in range(classes):
        z = torch.randn(n_per_class, model.cfg.z_dim, device=device)
        images = to_unit(model.generate(z, torch.full((n_per_class,), c, dtype=torch.long, device=device)))
        for k, image in enumerate(images):
            save_png(image, out / "samples" / str(c) / f"{k}.png")


def write_translations(
    model: GANModel,
    datasets: List[Dataset],
    out: Path,
    cfg: DictConfig,
    device: torch.device,
    distributions: Optional[DistributionMetrics] = None,
) -> None:
    """Translate every input of ``datasets`` (``num_test`` caps each) in batches; write the images,
    index.html and metrics.json (with FID/KID when ``distributions`` is given)."""
    rows: List[tuple[str, Dict[str, str]]] = []
    used: set[str] = set()

    def write_batch(batch: Dict[str, Any], visuals: Dict[str, torch.Tensor]) -> None:
        for i, path in enumerate(batch.get("A_path") or batch["B_path"]):
            stem = _unique_stem(Path(path).stem, visuals, used)
            files = {name: f"images/{stem}_{name}.png" for name in visuals}
            for name, images in visuals.items():
                save_png(to_unit(images[i]), out / files[name])
            rows.append((stem, files))
        if distributions is not None:
            distributions.update(visuals)

    metrics = evaluate(model, datasets, cfg.batch_size, device, cfg.num_test, write_batch)
    if distributions is not None:
        metrics.update(distributions.compute())
    write_index(out / "index.html", rows)
    write_metrics(out, metrics)


def _unique_stem(stem: str, visuals: Dict[str, torch.Tensor], used: set[str]) -> str:
    """Recursive folders may hold the same file name twice; keep every output file."""
    candidate, k = stem, 1
    while any(f"{candidate}_{name}" in used for name in visuals):
        k += 1
        candidate = f"{stem}_{k}"
    used.update(f"{candidate}_{name}" for name in visuals)
    return candidate


def write_index(path: Path, rows: List[tuple[str, Dict[str, str]]]) -> None:
    names: List[str] = []
    for _, files in rows:
        names += [n for n in files if n not in names]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "\n".join(
        "<tr><td>" + html.escape(stem) + "</td>"
        + "".join(f'<td><img src="{html.escape(files[n])}" width="256"></td>' if n in files else "<td></td>" for n in names)
        + "</tr>"
        for stem, files in rows
    )
    page = f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>translate-test</title></head><body>\n<table>\n<tr><th>input</th>{head}</tr>\n{body}\n</table>\n</body></html>\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(page))
