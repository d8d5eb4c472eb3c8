"""``<run>/curves.png``: a run's loss terms, discriminator outputs and validation metrics against steps,
drawn from its TensorBoard events at the end of training, for a look without starting TensorBoard.

matplotlib is optional (the ``[plots]`` extra); without it the run logs one line and draws nothing.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path
from typing import Dict, List, Tuple

log = logging.getLogger(__name__)

#: Train scalars that describe the optimiser, not the game: TensorBoard still has them.
_LEFT_OUT = ("train/lr/", "train/grad_norm/")
#: One panel for the mean discriminator outputs on real and on generated images.
_D_OUTPUTS = "D(x) and D(G(z))"

Series = Tuple[List[int], List[float]]


def read_scalars(tb_dir: Path) -> Dict[str, Series]:
    """Every scalar tag of the events under ``tb_dir``: ``{tag: (steps, values)}``."""
    # Loading tensorboard's event reader takes a second: only at the end of a run that logged to it.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})  # 0: keep every point
    # Its reader logs each events file it moves on to, at INFO: nothing a user needs at the end of a run.
    reader_log = logging.getLogger("tensorboard")
    level = reader_log.level
    reader_log.setLevel(logging.WARNING)
    try:
        events.Reload()
    finally:
        reader_log.setLevel(level)
    return {tag: ([e.step for e in events.Scalars(tag)], [e.value for e in events.Scalars(tag)]) for tag in events.Tags()["scalars"]}


def panels(scalars: Dict[str, Series]) -> Dict[str, Dict[str, Series]]:
    """The scalars grouped into panels: one per loss group (``loss_G``, ``loss_D``, ...), one for D(x) and
    D(G(z)), one per validation metric (each has its own scale); learning rates and gradient norms left out."""
    grouped: Dict[str, Dict[str, Series]] = {}
    for tag in sorted(scalars):
        if tag.startswith(_LEFT_OUT) or tag.startswith("final/") or tag.startswith("best/"):
            continue
        name = tag.removeprefix("train/")
        if name.startswith(("D_real", "D_fake")):
            panel = _D_OUTPUTS
        elif tag.startswith("val/"):
            panel = tag
        else:
            panel = name.split("/", 1)[0]
        grouped.setdefault(panel, {})[name] = scalars[tag]
    # Losses first, then the discriminator's outputs, then validation: the order a reader checks them in.
    order = {panel: (0 if panel.startswith("loss") else 2 if panel.startswith("val/") else 1) for panel in grouped}
    return dict(sorted(grouped.items(), key=lambda item: order[item[0]]))


def write_curves(tb_dir: Path, out: Path) -> None:
    """Draw the scalars of ``tb_dir`` into ``out`` (a PNG), or log in one line why not."""
    if importlib.util.find_spec("matplotlib") is None:
        log.info('%s skipped: matplotlib is not installed (pip install "translate[plots]")', out.name)
        return
    grouped = panels(read_scalars(tb_dir))
    if not grouped:
        log.info("%s skipped: no scalars were logged (trainer.log_every_n_steps is longer than the run)", out.name)
        return
    # matplotlib is optional (the [plots] extra); Agg draws to a file with no display.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(grouped))
    rows = math.ceil(len(grouped) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.4 * rows), squeeze=False)
    for ax, (title, curves) in zip(axes.flat, grouped.items()):
        for name, (steps, values) in curves.items():
            ax.plot(steps, values, label=name, marker="o" if len(steps) < 20 else None, markersize=3)
        ax.set_title(title if len(curves) > 1 else next(iter(curves)))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(curves) > 1:
            ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(grouped) :]:
        ax.set_visible(False)
    fig.suptitle(str(out.parent))
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    log.info("curves: %s", out)
