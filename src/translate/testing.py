"""``translate-test``: load a trained run and translate a test split (or sample digits, for the cGAN).

Outputs under ``output_dir`` (default ``<run>/test_<checkpoint name>/``):
- image models: ``images/<stem>_<visual>.png``, ``index.html`` (each input's visuals side by side),
  ``metrics.json`` (mean of each per-image metric, with the number of images it used);
- the cGAN: ``grid.png`` (row = class, fixed noise) and ``samples/<class>/<k>.png``.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any, Dict, List

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from translate.checkpoint import CheckpointError, atomic_write, load_checkpoint, resolve_checkpoint
from translate.config import ConfigError, validate
from translate.engine import move_to, resolve_device
from translate.models import build_model
from translate.models.base import GANModel
from translate.visuals import rows_to_grid, save_png, to_unit

log = logging.getLogger(__name__)


def load_trained(cfg: DictConfig) -> tuple[GANModel, Any, Path, Path]:
    """The model of ``cfg.run`` / ``cfg.checkpoint`` with its weights; the run's config with the test's
    device and (if given) data; the checkpoint path; the output directory."""
    if not cfg.run and not cfg.checkpoint:
        raise ConfigError("run: say which run to test, e.g. translate-test run=outputs/cgan/mnist/<timestamp>")
    ckpt_path = resolve_checkpoint(cfg.checkpoint or cfg.run)
    state = load_checkpoint(ckpt_path)
    run_cfg = OmegaConf.create(state["config"])
    run_cfg.device = cfg.device
    if cfg.get("data") is not None:
        run_cfg.data = cfg.data
    if "crop_size" in run_cfg.data:
        # As the reference tests: resize to the crop size, so the whole image is translated.
        run_cfg.data.load_size = run_cfg.data.crop_size
    run_cfg.resume = None
    typed = validate(run_cfg)
    model = build_model(typed.model, state["info"])
    for name, net in model.networks.items():
        try:
            net.load_state_dict(state["networks"][name])
        except (KeyError, RuntimeError) as err:
            raise CheckpointError(f"{ckpt_path}: network {name} does not fit the config saved with it: {str(err).splitlines()[0][:200]}") from None
    run_dir = Path(cfg.run) if cfg.run else ckpt_path.parent.parent
    out = Path(cfg.output_dir) if cfg.output_dir else run_dir / f"test_{ckpt_path.stem}"
    return model, typed, ckpt_path, out


def run_test(cfg: DictConfig) -> Path:
    model, typed, ckpt_path, out = load_trained(cfg)
    device = resolve_device(cfg.device.accelerator)
    model.to(device)
    if cfg.eval_mode not in ("eval", "paper"):
        raise ConfigError(f"eval_mode={cfg.eval_mode!r} is not known; use eval (model.eval()) or paper (dropout and batch statistics on, as in the pix2pix paper)")
    model.train(cfg.eval_mode == "paper")
    torch.manual_seed(cfg.seed)
    log.info("testing %s (%s) into %s", ckpt_path, typed.model.name, out)
    with torch.no_grad():
        if model.task == "generate":
            write_samples(model, out, int(cfg.n_per_class), device)
        else:
            write_translations(model, model.test_datasets(typed.data, cfg.split), out, cfg, device)
    return out


def write_samples(model: GANModel, out: Path, n_per_class: int, device: torch.device) -> None:
    """grid.png (row = class, the model's fixed noise) and samples/<class>/<k>.png, n_per_class each."""
    save_png(rows_to_grid(model.visuals(None)), out / "grid.png")
    classes = model.cfg.num_classes
    for c in range(classes):
        z = torch.randn(n_per_class, model.cfg.z_dim, device=device)
        images = to_unit(model.generate(z, torch.full((n_per_class,), c, dtype=torch.long, device=device)))
        for k, image in enumerate(images):
            save_png(image, out / "samples" / str(c) / f"{k}.png")


def write_translations(model: GANModel, datasets: List[Dataset], out: Path, cfg: DictConfig, device: torch.device) -> None:
    """Translate every input of ``datasets`` (``num_test`` caps the total) in batches; write the images,
    index.html and metrics.json."""
    rows: List[tuple[str, Dict[str, str]]] = []
    sums: Dict[str, float] = {}
    counts: Dict[str, int] = {}
    remaining = cfg.num_test
    for dataset in datasets:
        used_stems: set[str] = set()
        n = len(dataset) if remaining is None else min(len(dataset), remaining)
        loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=range(n))
        for batch in tqdm(loader, desc="test", leave=False):
            paths = batch.get("A_path") or batch.get("B_path")
            visuals = model.translate(move_to(batch, device, False))
            for key, values in model.test_metrics(visuals).items():
                finite = values.float()
                sums[key] = sums.get(key, 0.0) + float(finite.sum())
                counts[key] = counts.get(key, 0) + finite.numel()
            for i, path in enumerate(paths):
                stem = _unique_stem(Path(path).stem, used_stems)
                files = {}
                for name, images in visuals.items():
                    files[name] = f"images/{stem}_{name}.png"
                    save_png(to_unit(images[i]), out / files[name])
                rows.append((stem, files))
        if remaining is not None:
            remaining -= n
    metrics = {key: {"mean": sums[key] / counts[key], "num_images": counts[key]} for key in sums}
    write_index(out / "index.html", rows)
    atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2) + "\n"))
    for key, value in metrics.items():
        log.info("%s = %.4f (%d images)", key, value["mean"], value["num_images"])


def _unique_stem(stem: str, used: set[str]) -> str:
    """Recursive folders may hold the same file name twice; keep every output."""
    candidate, k = stem, 1
    while candidate in used:
        k += 1
        candidate = f"{stem}_{k}"
    used.add(candidate)
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
