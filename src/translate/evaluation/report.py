"""What ``translate-test`` writes: images, the HTML page that shows them, metrics.json and sample grids, and
the output folder they go to (:func:`output_folder`: complete or not at all, an earlier test kept)."""

from __future__ import annotations

import contextlib
import html
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import torch

from translate.config import TestConfig
from translate.data.base import SplitDataset
from translate.errors import ConfigError
from translate.evaluation.fid import DistributionMetrics
from translate.evaluation.loop import PerImageMetrics, evaluate, num_inputs
from translate.files import atomic_write, folders_removed_on_failure, resolve_checkpoint
from translate.visuals import rows_to_grid, save_png, to_unit

log = logging.getLogger(__name__)

#: Every name translate-test writes into its output folder, whatever the model: a folder that holds nothing
#: else (hidden files aside) is an earlier test's, which a new test may move aside.
OUTPUTS = frozenset({"images", "samples", "index.html", "metrics.json", "grid.png"})


def _check_output_dir(out: Path) -> None:
    """Stop, before any work, when ``out`` cannot take a test's outputs: it is a file, or a folder that
    holds files translate-test did not write (a test never mixes its outputs with anything else)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is a file; pass output_dir=<a folder> (it is made when missing)")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUTS and not p.name.startswith("."))
        if foreign:
            listed = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise ConfigError(
                f"output folder {out} holds {listed}, which translate-test did not write; "
                "pass output_dir=<a new or empty folder> (an earlier test's own folder is moved aside, never written into)"
            )


@contextlib.contextmanager
def output_folder(out: Path) -> Iterator[Path]:
    """A hidden folder beside ``out`` to write a test's outputs into, renamed to ``out`` once they are all
    there: a test that fails or is interrupted leaves ``out`` as it was and nothing else. An earlier test
    in ``out`` is renamed to ``<out>.<time of that test>`` first, and the log says so: a test never
    replaces or mixes with another's results."""
    _check_output_dir(out)
    with folders_removed_on_failure(out.parent):
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            raise ConfigError(
                f"cannot make the output folder {out} ({where}{err.strerror or err}); pass output_dir=<a folder you can write>"
            ) from None
        try:
            os.chmod(staging, 0o755)  # mkdtemp makes it owner-only; outputs are shared like any other folder
            yield staging
            if out.is_dir() and any(out.iterdir()):
                aside = _aside(out)
                os.rename(out, aside)
                log.info("kept the earlier test's results of %s as %s", out, aside)
            elif out.is_dir():
                out.rmdir()
            os.rename(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _aside(out: Path) -> Path:
    """A free name for the earlier test in ``out``: ``<out>.<YYYY-MM-DD_HH-MM-SS>``, the time of its
    newest file (as a run directory is named)."""
    newest = max(path.stat().st_mtime for path in (out, *out.iterdir()))
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(newest))
    candidate, k = out.with_name(f"{out.name}.{stamp}"), 1
    while candidate.exists():
        k += 1
        candidate = out.with_name(f"{out.name}.{stamp}_{k}")
    return candidate


def write_metrics(out: Path, metrics: Dict[str, Dict[str, Any]]) -> None:
    """metrics.json (``{name: {"mean": value, "num_images": n, ...}}``), and each value in the log."""
    atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2) + "\n"))
    for key, value in metrics.items():
        log.info("%s = %.4f (%d images)", key, value["mean"], value["num_images"])


def write_samples(model: Any, out: Path, n_per_class: int, device: torch.device) -> None:
    """grid.png (row = class, the model's fixed noise) and samples/<class>/<k>.png, n_per_class each."""
    log.info("writing grid.png and %s samples of each class...", f"{n_per_class:,}")
    save_png(rows_to_grid(model.visuals(None)), out / "grid.png")
    classes = model.cfg.num_classes
    for c in range(classes):
        z = torch.randn(n_per_class, model.cfg.z_dim, device=device)
        images = to_unit(model.generate(z, torch.full((n_per_class,), c, dtype=torch.long, device=device)))
        for k, image in enumerate(images):
            save_png(image, out / "samples" / str(c) / f"{k}.png")


@dataclass
class Row:
    """One input of the results page: its name, its images (visual -> file under the page's folder, with
    ``(width, height)``) and its per-image metric values."""

    stem: str
    files: Dict[str, str]
    size: tuple[int, int]
    scores: Dict[str, float] = field(default_factory=dict)


def write_translations(
    model: Any,
    metrics_of: PerImageMetrics,
    datasets: List[SplitDataset],
    out: Path,
    cfg: TestConfig,
    device: torch.device,
    distributions: Optional[DistributionMetrics] = None,
) -> None:
    """Translate every input of ``datasets`` (``num_test`` caps each) in batches; write the images,
    index.html and metrics.json (with FID/KID when ``distributions`` is given)."""
    rows: List[Row] = []
    used: set[str] = set()

    def write_batch(batch: Dict[str, Any], visuals: Dict[str, torch.Tensor], scores: Dict[str, torch.Tensor]) -> None:
        for i, path in enumerate(batch.get("A_path") or batch["B_path"]):
            stem = _unique_stem(Path(path).stem, visuals, used)
            files = {name: f"images/{stem}_{name}.png" for name in visuals}
            for name, images in visuals.items():
                save_png(to_unit(images[i]), out / files[name])
            height, width = next(iter(visuals.values())).shape[-2:]
            rows.append(Row(stem, files, (int(width), int(height)), {key: float(values[i]) for key, values in scores.items()}))
        if distributions is not None:
            distributions.update(visuals)

    log.info(
        "translating %s inputs of the %s split%s...",
        f"{num_inputs(datasets, cfg.num_test):,}",
        cfg.split,
        "" if distributions is None else ", each fake through Inception for FID/KID/IS",
    )
    metrics = evaluate(model, metrics_of, datasets, cfg.batch_size, device, cfg.num_test, write_batch, cfg.progress_bar)
    if distributions is not None:
        log.info("FID/KID/IS: the Inception features of the %s real images, then the scores...", f"{distributions.num_real:,}")
        metrics.update(distributions.compute(cfg.progress_bar))
    checkpoint = resolve_checkpoint(cfg.checkpoint or cfg.run or "")
    write_index(out / "index.html", rows, metrics, run=str(cfg.run or checkpoint.parent), checkpoint=str(checkpoint))
    write_metrics(out, metrics)


def _unique_stem(stem: str, visuals: Dict[str, torch.Tensor], used: set[str]) -> str:
    """Recursive folders may hold the same file name twice; keep every output file."""
    candidate, k = stem, 1
    while any(f"{candidate}_{name}" in used for name in visuals):
        k += 1
        candidate = f"{stem}_{k}"
    used.update(f"{candidate}_{name}" for name in visuals)
    return candidate


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _direction(names: List[str]) -> str:
    """``A → B`` for the visuals real_A, fake_B, ... of one direction."""
    source = next((n.partition("_")[2] for n in names if n.startswith("real_")), "?")
    target = next((n.partition("_")[2] for n in names if n.startswith("fake_")), "?")
    return f"{source} → {target}"


#: The page fits a 1280 px window: the tables take the page's width and the images shrink to their column.
_STYLE = """
body { font-family: sans-serif; margin: 16px; max-width: 1248px; }
table { border-collapse: collapse; margin-bottom: 24px; }
th, td { border: 1px solid #ccc; padding: 4px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
table.images { width: 100%; table-layout: fixed; }
table.images img { display: block; width: 100%; max-width: 256px; height: auto; }
code { overflow-wrap: anywhere; }
"""


def write_index(path: Path, rows: List[Row], metrics: Dict[str, Dict[str, Any]], run: str, checkpoint: str) -> None:
    """index.html: the run, the checkpoint and the mean of each metric on top, then one table per
    direction (CycleGAN's A → B and B → A inputs have different visuals) with each input's per-image
    metrics beside its images. Images load lazily, so a test set of thousands of images opens at once."""
    tables: Dict[tuple[str, ...], List[Row]] = {}
    for row in rows:
        tables.setdefault(tuple(row.files), []).append(row)
    means = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_number(v['mean'])}</td><td>{v['num_images']}</td></tr>" for k, v in metrics.items()
    )
    parts = [
        f"<h1>translate-test</h1>\n<p>run: <code>{html.escape(run)}</code><br>checkpoint: <code>{html.escape(checkpoint)}</code></p>",
        f'<table class="means">\n<tr><th>metric</th><th>mean</th><th>images</th></tr>{means}\n</table>' if metrics else "",
    ]
    for names, direction_rows in tables.items():
        scores = list(direction_rows[0].scores)
        cols = '<col style="width: 150px">' + '<col style="width: 90px">' * len(scores) + "<col>" * len(names)
        head = "".join(f"<th>{html.escape(n)}</th>" for n in ["input", *scores, *names])
        body = "\n".join(
            f"<tr><td>{html.escape(row.stem)}</td>"
            + "".join(f"<td>{_number(row.scores[k])}</td>" for k in scores)
            + "".join(
                f'<td><img src="{html.escape(row.files[n])}" alt="{html.escape(n)}" width="{row.size[0]}" '
                f'height="{row.size[1]}" loading="lazy"></td>'
                for n in names
            )
            + "</tr>"
            for row in direction_rows
        )
        title = f"{_direction(list(names))} ({len(direction_rows)} images)"
        parts.append(f'<h2>{html.escape(title)}</h2>\n<table class="images"><colgroup>{cols}</colgroup>\n<tr>{head}</tr>\n{body}\n</table>')
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>translate-test: {html.escape(run)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(p for p in parts if p)
        + "\n</body></html>\n"
    )
    atomic_write(path, lambda tmp: Path(tmp).write_text(page))
