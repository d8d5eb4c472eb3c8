"""Peak memory of training each model at its paper settings: whether a machine suffices.

For each model it runs ``translate-train`` itself, in a process of its own, for ``--steps`` steps (on
synthetic images of the papers' sizes; the cGAN on the MNIST subset shipped in the package, or the real
MNIST with ``--mnist-root``), with the defaults a user gets (the data-loader workers, the TensorBoard logger,
the checkpoint at the end), and reports:

- the peak resident memory of the training process (its VmHWM, which it writes as it exits);
- the peak of all its processes together (the training process and its data-loader workers): the sum of
  their resident memory, sampled every 0.2 s, counts the pages a forked worker shares with the training
  process in both, so it is an upper bound; on Linux, the sum of their proportional set sizes (PSS: a page
  shared by n processes counts 1/n in each), sampled every second, is what they hold together.

The papers' settings: the cGAN at 32 px, batch 64; pix2pix at 256 px (images loaded at 286 and cropped),
batch 1; CycleGAN and CUT at 256 px (loaded at 286, cropped), batch 1. Writes ``memory.json`` and ``memory.md``
to ``--out``:

    python scripts/bench_memory.py                                   # the four models on the CPU, 5 steps each
    python scripts/bench_memory.py --models cyclegan --steps 60      # past the image pools' filling (50 images each)
    python scripts/bench_memory.py --mnist-root /data device.amp=bf16   # the real MNIST; any translate-train overrides
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench_data import make_images
from benchmark import GB, MemoryWatch

#: translate-train overrides of each model's paper setting, beyond its data.
PAPER = {
    "cgan": ["model=cgan", "trainer.batch_size=64"],
    "pix2pix": ["model=pix2pix", "trainer.batch_size=1", "data.load_size=286", "data.crop_size=256"],
    "cyclegan": ["model=cyclegan", "trainer.batch_size=1", "data.load_size=286", "data.crop_size=256"],
    "cut": ["model=cut", "trainer.batch_size=1", "data.load_size=286", "data.crop_size=256"],
}
DESCRIBED = {
    "cgan": "cGAN, 32 px, batch 64",
    "pix2pix": "pix2pix, 256 px, batch 1",
    "cyclegan": "CycleGAN, 256 px, batch 1",
    "cut": "CUT, 256 px, batch 1",
}


def data_overrides(model: str, tmp: Path, mnist_root: Optional[str]) -> List[str]:
    if model == "cgan":
        return ["data=mnist", f"data.root={mnist_root}", "data.download=false"] if mnist_root else ["data=mnist_subset"]
    # The papers' images: facades pairs of 256 x 256 (side by side in one file), horse2zebra 256 x 256.
    return make_images(tmp / model, model, 256, 16)


#: The first argument of this script's own runs of translate-train (see ``train_and_report``).
TRAIN = "--train-and-report"


def peak_rss_bytes() -> int:
    """This process's peak resident memory. Linux: VmHWM, counted afresh from exec; getrusage's ru_maxrss
    also holds the peak of the process that started this one, which Linux carries over exec (under pytest,
    a gigabyte). Elsewhere ru_maxrss: bytes on macOS, KiB on the other Unixes."""
    status = Path("/proc/self/status")
    if status.exists():
        return next(int(line.split()[1]) * 1024 for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def train_and_report(out: str, overrides: List[str]) -> None:
    """translate-train in this very process; as it exits, its peak resident memory goes to the file ``out``."""
    atexit.register(lambda: Path(out).write_text(str(peak_rss_bytes())))
    sys.argv = ["translate-train", *overrides]
    from translate.cli.train import main  # after the hook: nothing of translate's is loaded before training

    main()


def measure(model: str, steps: int, tmp: Path, mnist_root: Optional[str], extra: List[str]) -> Dict[str, Any]:
    overrides = [
        *PAPER[model],
        *data_overrides(model, tmp, mnist_root),
        f"trainer.max_steps={steps}",
        f"paths.output_dir={tmp}/out",
        *extra,
    ]
    print(f"== translate-train {' '.join(overrides)}", flush=True)
    peak_file = tmp / f"{model}.peak"
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), TRAIN, str(peak_file), *overrides])
    watch = MemoryWatch(root=process.pid, pss_interval=1.0)
    process.wait()
    watch.stop()
    if process.returncode != 0:
        raise SystemExit(f"translate-train exited with {process.returncode}: {' '.join(overrides)}")
    return {
        "model": model,
        "setting": DESCRIBED[model] + (" (real MNIST)" if model == "cgan" and mnist_root else ""),
        "overrides": overrides,
        "steps": steps,
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_training_process_gb": round(int(peak_file.read_text()) / GB, 2),
        "peak_rss_sum_all_processes_gb": round(watch.peak / GB, 2),
        "peak_pss_sum_all_processes_gb": None if watch.pss_peak is None else round(watch.pss_peak / GB, 2),
    }


def markdown(report: Dict[str, Any]) -> str:
    lines = [
        f"Machine: {report['machine']}; {report['date']}; command: `{report['command']}`",
        "",
        "| model, paper setting | steps | peak RSS, training process (GB) | peak, all its processes: RSS sum (GB) | PSS sum (GB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in report["models"]:
        pss = "-" if r["peak_pss_sum_all_processes_gb"] is None else f"{r['peak_pss_sum_all_processes_gb']:.2f}"
        lines.append(
            f"| {r['setting']} | {r['steps']} | {r['peak_rss_training_process_gb']:.2f} | {r['peak_rss_sum_all_processes_gb']:.2f} | {pss} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="more translate-train overrides for every model (default: device=cpu)")
    parser.add_argument("--models", default="cgan,pix2pix,cyclegan,cut", help="comma-separated: cgan, pix2pix, cyclegan, cut")
    parser.add_argument("--steps", type=int, default=5, help="training steps per model (the peak is reached in the first)")
    parser.add_argument("--mnist-root", default=None, help="train the cGAN on the real MNIST under this folder (torchvision layout)")
    parser.add_argument("--out", default="benchmark", help="folder for memory.json and memory.md")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = set(models) - set(PAPER)
    if unknown:
        parser.error(f"unknown models: {', '.join(sorted(unknown))}; choose from {', '.join(PAPER)}")
    extra = args.overrides if any(o.startswith("device=") for o in args.overrides) else ["device=cpu", *args.overrides]
    memory_gb = None
    if Path("/proc/meminfo").exists():
        total = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        memory_gb = round(int(total.split()[1]) * 1024 / GB, 1)
    report: Dict[str, Any] = {
        "command": " ".join(["python scripts/bench_memory.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {memory_gb} GB of memory",
        "date": datetime.date.today().isoformat(),
        "models": [],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            report["models"].append(measure(model, args.steps, Path(tmp), args.mnist_root, extra))
            (out / "memory.json").write_text(json.dumps(report, indent=2))
            (out / "memory.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {out / 'memory.json'} and {out / 'memory.md'}")


if __name__ == "__main__":
    if sys.argv[1:2] == [TRAIN]:
        train_and_report(sys.argv[2], sys.argv[3:])
    else:
        main()
