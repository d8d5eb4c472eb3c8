"""What ``translate-demo`` serves: a local page where you drop an image and get its translation at its own size.

    translate-demo run=<run | checkpoint | bundle | reference file | pretrained name> [host=127.0.0.1] [port=7860]

:class:`DemoPage` holds the generators (a :class:`translate.inference.translator.Translator` per direction)
and does the page's work in plain functions: :meth:`DemoPage.translate` (an image file -> the translated PNG,
tiles for large images), :meth:`DemoPage.sample` (the cGAN: classes -> a grid) and :func:`about` (the run's name, model, step
and test metrics). :func:`layout` puts them on a Gradio page; only it and
:func:`serve` import Gradio (the ``demo`` extra).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torchvision

from translate.config import DemoConfig
from translate.errors import ConfigError, TranslateError
from translate.inference.bundle import metrics_table, run_metrics, run_name
from translate.inference.images import as_channels, read_picture, write_picture
from translate.inference.translator import Translator, find_source, load
from translate.models import MODELS, model_class
from translate.models.checkpoint import Checkpoint

#: The most samples a class the cGAN tab draws at once.
MAX_SAMPLES = 16


@dataclass(frozen=True)
class About:
    """What the page says about its generator: where it came from and how well it did."""

    name: str
    source: str
    model: str
    step: Optional[int]
    epoch: Optional[int]
    metrics: Optional[Dict[str, Any]]
    #: The generators' names in the model, first AtoB (G, G_A), then BtoA (G_B).
    generators: Tuple[str, ...]


def about(source: str) -> About:
    """:class:`About` of ``source`` (what :func:`translate.load` takes): a bundle's settings, a run's checkpoint
    and its ``test_<checkpoint>/metrics.json``, or a reference generator file (name and file only)."""
    found = find_source(source)
    if not found.is_run:
        return About(found.path.parent.name or str(source), str(found.path), "reference generator", None, None, None, ("G",))
    settings = found.raw.get("bundle")
    if settings is not None:
        metrics, name = settings.get("test_metrics"), settings.get("name") or found.path.stem
    else:
        run_dir = found.path.parent.parent
        metrics, name = run_metrics(run_dir, found.path.stem), run_name(found.raw["model"], found.raw["config"], run_dir)
    ckpt = Checkpoint.from_state(found.raw, found.path)
    generators = tuple(getattr(model_class(ckpt.model), "generators", ())) if ckpt.model in MODELS else ()
    return About(str(name), str(found.path), ckpt.model, ckpt.step, ckpt.epoch, metrics if isinstance(metrics, dict) else None, generators)


def about_markdown(info: About) -> str:
    """The panel beside the images: name, model, step, epoch, where from, test metrics."""
    lines = [f"### {info.name}", "", f"- **model** {info.model}"]
    if info.step is not None:
        lines.append(f"- **step** {info.step:,} (epoch {info.epoch})")
    lines += [f"- **from** `{info.source}`", "", "**test metrics**", ""]
    if info.metrics:
        lines += metrics_table(info.metrics)
    else:
        lines.append("none yet (`translate-test run=<run>` writes them)")
    return "\n".join(lines)


def _failed(err: Exception) -> str:
    return f"**Could not translate:** {err}"


class DemoPage:
    """The generators of ``cfg.run`` and the page's work, without a browser. Results are written under
    ``workdir`` (a new temporary folder when None)."""

    def __init__(self, cfg: DemoConfig, workdir: Optional[Path] = None) -> None:
        self.cfg = cfg
        self.info = about(str(cfg.run))
        directions = ("AtoB", "BtoA")[: max(1, len(self.info.generators))]
        #: A Translator per direction the model has (CycleGAN: AtoB and BtoA; the others: AtoB).
        self.translators: Dict[str, Translator] = {
            d: load(str(cfg.run), cfg.weights, d, cfg.device.accelerator, batch_size=cfg.batch_size) for d in directions
        }
        self.conditional = self.translators["AtoB"].conditional
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="translate-demo-"))

    @property
    def directions(self) -> List[str]:
        return list(self.translators)

    @property
    def num_classes(self) -> int:
        return int(getattr(self.translators["AtoB"].net, "num_classes", 0))

    def _new_folder(self) -> Path:
        """A folder of its own for each request: two visitors never overwrite each other's files."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.workdir))

    def translate(self, path: Optional[str], direction: str = "AtoB") -> Tuple[Optional[str], Optional[str], str]:
        """``(the input as read, as an 8-bit PNG; its translation, a PNG at the input's own size and depth; a
        status line)`` for the image file at ``path``. A file that is no image gives ``(None, None, message)``."""
        if not path:
            return None, None, "Drop an image (or click to pick one) first."
        name = Path(path).name
        try:
            if direction not in self.translators:
                raise ConfigError(f"direction {direction}: this {self.info.model} translates {' and '.join(self.translators)} only")
            g = self.translators[direction]
            if g.conditional:
                raise ConfigError("this cGAN draws digits from class labels; use the sample tab")
            picture = read_picture(path)
            pixels = g.translate_to_pixels(as_channels(picture.pixels, g.in_channels), picture.max_value, self.cfg.tile, self.cfg.overlap)
        except TranslateError as err:
            return None, None, _failed(TranslateError(str(err).replace(str(path), name)))
        folder = self._new_folder()
        shown = picture.pixels if picture.max_value == 255 else (picture.pixels.astype(np.uint32) * 255 + 32767) // 65535
        original = folder / f"{Path(name).stem}.png"
        write_picture(original, shown.astype(np.uint8))
        out = folder / f"{Path(name).stem}_{direction}.png"
        write_picture(out, pixels, like=picture)
        h, w = pixels.shape[:2]
        tiles = g.plan(h, w, self.cfg.tile, self.cfg.overlap).count
        how = f" in {tiles} tiles" if tiles > 1 else ""
        return str(original), str(out), f"{name}: {w} x {h} px, {8 if pixels.dtype == np.uint8 else 16}-bit, {direction}{how}."

    def sample(self, classes: Sequence[Any], n: float = 8, seed: Optional[float] = 0) -> Tuple[Optional[str], str]:
        """The cGAN's ``n`` samples of each class in ``classes`` (a row per class) as a PNG grid, and a status line."""
        g = self.translators["AtoB"]
        try:
            if not g.conditional:
                raise ConfigError("this generator translates images; use the translate tab")
            labels = sorted({int(c) for c in classes})
            if not labels:
                raise ConfigError("choose at least one class")
            count = int(n)
            if not 1 <= count <= MAX_SAMPLES:
                raise ConfigError(f"samples per class: {count}; choose 1..{MAX_SAMPLES}")
            digits = g.sample(labels, count, None if seed is None else int(seed))
        except (TranslateError, ValueError) as err:
            return None, _failed(err)
        out = self._new_folder() / f"samples_{'-'.join(map(str, labels))}_seed{seed}.png"
        torchvision.utils.save_image(digits, out, nrow=count, normalize=True, value_range=(-1, 1))
        return str(
            out
        ), f"{count} samples of class{'es' if len(labels) > 1 else ''} {', '.join(map(str, labels))}, a row each (seed {seed})."


def layout(page: DemoPage) -> Any:
    """The Gradio page (a ``gr.Blocks``) of ``page``: inputs on the left, results and the run beside them."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry from a local tool
    import gradio as gr

    with gr.Blocks(title=f"translate: {page.info.name}", analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
        gr.Markdown(f"## translate-demo: {page.info.name}")
        with gr.Row():
            with gr.Column(scale=2):
                if page.conditional:
                    classes = gr.CheckboxGroup(
                        [str(c) for c in range(page.num_classes)], value=[str(c) for c in range(page.num_classes)], label="classes"
                    )
                    count = gr.Slider(1, MAX_SAMPLES, value=8, step=1, label="samples per class")
                    seed = gr.Number(0, precision=0, label="seed (the same seed draws the same digits)")
                    button = gr.Button("Sample", variant="primary")
                    grid = gr.Image(label="samples", type="filepath", format="png", interactive=False)
                    status = gr.Markdown(elem_id="status")
                    button.click(page.sample, [classes, count, seed], [grid, status])
                else:
                    upload = gr.File(label="an image: drop it here or click to pick one", file_types=["image"], type="filepath")
                    direction = gr.Radio(page.directions, value="AtoB", label="direction", visible=len(page.directions) > 1)
                    with gr.Row():
                        original = gr.Image(label="your image", type="filepath", format="png", interactive=False)
                        result = gr.Image(
                            label="translated (its own size)", type="filepath", format="png", interactive=False, elem_id="result"
                        )
                    download = gr.File(label="download the translation (PNG)", interactive=False, elem_id="download")
                    status = gr.Markdown(elem_id="status")

                    def run(path: Optional[str], chosen: str) -> Tuple[Optional[str], Optional[str], Optional[str], str]:
                        shown, out, line = page.translate(path, chosen)
                        return shown, out, out, line

                    for event in (upload.upload, direction.change):
                        event(run, [upload, direction], [original, result, download, status])
            with gr.Column(scale=1):
                gr.Markdown(about_markdown(page.info), elem_id="about")
    return blocks


def serve(cfg: DemoConfig, block: bool = True) -> Any:
    """Build the page of ``cfg`` and serve it on ``cfg.host``:``cfg.port``, saying where; returns the running
    ``gr.Blocks`` (``block=False``: at once, the server running in a thread; close it with ``.close()``)."""
    page = DemoPage(cfg)
    atexit.register(shutil.rmtree, page.workdir, ignore_errors=True)  # Gradio keeps its own copies, for an hour
    blocks = layout(page)
    # Gradio checks its own server with httpx, whose every request would be logged at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        blocks.launch(server_name=cfg.host, server_port=cfg.port, share=False, inbrowser=False, prevent_thread_lock=True, quiet=True)
    except OSError as err:
        # Gradio's message advises its environment variables; ours names the key.
        reason = str(err).split(". ")[0]
        raise ConfigError(
            f"port={cfg.port}: {reason} on {cfg.host}; choose another port=, or port=null for the first free one from 7860"
        ) from None
    print(f"translate-demo: {page.info.name} ({page.info.model}) on {blocks.local_url} (Ctrl-C stops it)", flush=True)
    if block:
        blocks.block_thread()
    return blocks
