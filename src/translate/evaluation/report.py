"""What ``translate-test`` writes: images, the HTML page that shows them, metrics.json and sample grids."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch.utils.data import Dataset

from translate.evaluation.fid import DistributionMetrics
from translate.evaluation.loop import PerImageMetrics, evaluate
from translate.files import atomic_write
from translate.visuals import rows_to_grid, save_png, to_unit

log = logging.getLogger(__name__)


def write_metrics(out: Path, metrics: Dict[str, Dict[str, Any]]) -> None:
    """metrics.json (``{name: {"mean": value, "num_images": n, ...}}``), and each value in the log."""
    atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2) + "\n"))
    for key, value in metrics.items():
        log.info("%s = %.4f (%d images)", key, value["mean"], value["num_images"])


def write_samples(model: Any, out: Path, n_per_class: int, device: torch.device) -> None:
    """grid.png (row = class, the model's fixed noise) and samples/<class>/<k>.png, n_per_class each."""
    save_png(rows_to_grid(model.visuals(None)), out / "grid.png")
    classes = model.cfg.num_classes
    for c in range(classes):
        z = torch.randn(n_per_class, model.cfg.z_dim, device=device)
        images = to_unit(model.generate(z, torch.full((n_per_class,), c, dtype=torch.long, device=device)))
        for k, image in enumerate(images):
            save_png(image, out / "samples" / str(c) / f"{k}.png")


def write_translations(
    model: Any,
    metrics_of: PerImageMetrics,
    datasets: List[Dataset],
    out: Path,
    cfg: Any,
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

    metrics = evaluate(model, metrics_of, datasets, cfg.batch_size, device, cfg.num_test, write_batch)
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
        "<tr><td>"
        + html.escape(stem)
        + "</td>"
        + "".join(f'<td><img src="{html.escape(files[n])}" width="256"></td>' if n in files else "<td></td>" for n in names)
        + "</tr>"
        for stem, files in rows
    )
    page = f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>translate-test</title></head><body>\n<table>\n<tr><th>input</th>{head}</tr>\n{body}\n</table>\n</body></html>\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(page))
