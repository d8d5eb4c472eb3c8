"""Do the speed settings train the same thing? The losses of the first steps under each setting, against the
noise between fp32 runs that differ only in their seed.

Trains ``--steps`` steps of one config (translate-train's own step, on the benchmark's synthetic images) in
fp32 NCHW eager from ``--seeds`` seeds, and under each setting from the first seed. For every loss term it
takes the mean over the steps: a setting is "within noise" when its mean lies within 3 standard deviations of
the fp32 seeds' means around their mean (a run's own numbers, not a tolerance chosen beforehand). Writes
``precision.json`` (every step's losses) and ``precision.md`` to ``--out``; ``make bench`` runs it on the GPU.

    python scripts/bench_precision.py model=cyclegan device=cuda             # CycleGAN 256, 200 steps, bf16 (+ compile)
    python scripts/bench_precision.py --size 64 --steps 100 model=cyclegan device=cpu \\
        --settings "device.amp=bf16"                                          # the same question on a CPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import torch

from bench_runners import compose_train
from benchmark import Case, case_overrides
from translate.cli.app import register_schemas
from translate.cli.compose import compose_config
from translate.training.engine import Trainer

FP32 = ["device.amp=off", "device.channels_last=false", "device.compile=false"]


def losses_of_a_run(overrides: List[str], steps: int, run_dir: Path) -> Dict[str, List[float]]:
    """Every step's loss terms (``loss_*``) of a run of ``steps`` steps, in order."""
    trainer = Trainer(compose_train(overrides), run_dir)
    trainer.build()
    trainer.model.train()
    curves: Dict[str, List[float]] = {}
    while trainer.step < steps:
        for batch in trainer.loader:
            for key, value in trainer.train_step(batch).items():
                if key.startswith("loss"):
                    curves.setdefault(key, []).append(float(value))
            if trainer.step >= steps:
                break
    return curves


def compare(fp32: List[Dict[str, List[float]]], runs: Dict[str, Dict[str, List[float]]]) -> List[Dict[str, Any]]:
    """One row per setting and loss term: its mean over the steps against the fp32 seeds' spread."""
    rows = []
    for name, curves in runs.items():
        for term, values in curves.items():
            seed_means = [statistics.fmean(run[term]) for run in fp32]
            centre, spread = statistics.fmean(seed_means), statistics.stdev(seed_means)
            mean = statistics.fmean(values)
            rows.append(
                {
                    "setting": name,
                    "term": term,
                    "mean": round(mean, 4),
                    "fp32_mean": round(centre, 4),
                    "fp32_seed_std": round(spread, 4),
                    "deviation_in_std": round(abs(mean - centre) / spread, 2) if spread > 0 else None,
                    "within_noise": abs(mean - centre) <= 3 * spread,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="translate-train overrides: model=... device=... and any others")
    parser.add_argument("--size", type=int, default=256, help="image size of the synthetic data (the cGAN: 32)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5, help="fp32 runs, each from its own seed (at least 2; 3 gave too rough a spread)")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=None,
        help='each a space-separated set of overrides (default on CUDA: "device.amp=bf16 device.channels_last=true" '
        'and the same with device.compile=true; on a CPU: "device.amp=bf16")',
    )
    parser.add_argument("--out", default="benchmark", help="folder for precision.json and precision.md")
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error(f"--seeds={args.seeds}: the noise between fp32 runs needs at least 2 seeds")
    # The model, device and batch asked for; the data comes later (the benchmark's synthetic images).
    register_schemas()
    probe = compose_config("train", args.overrides)
    model = str(probe.model.name)
    cuda = str(probe.device.accelerator) == "cuda" or (str(probe.device.accelerator) == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    settings = args.settings or (
        ["device.amp=bf16 device.channels_last=true", "device.amp=bf16 device.channels_last=true device.compile=true"]
        if cuda
        else ["device.amp=bf16"]
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = case_overrides(Case("precision", model, args.size, int(probe.trainer.batch_size)), Path(tmp), device.type)
        base = [*base, *args.overrides]
        fp32 = []
        for seed in range(args.seeds):
            fp32.append(losses_of_a_run([*base, *FP32, f"seed={seed}"], args.steps, Path(tmp) / f"fp32-{seed}"))
            print(f"   fp32, seed {seed}: done", flush=True)
        runs = {}
        for i, setting in enumerate(settings):
            runs[setting] = losses_of_a_run([*base, *FP32, *setting.split(), "seed=0"], args.steps, Path(tmp) / f"setting-{i}")
            print(f"   {setting}: done", flush=True)
    rows = compare(fp32, runs)
    report = {
        "command": " ".join(["python scripts/bench_precision.py", *[a if " " not in a else f'"{a}"' for a in sys.argv[1:]]]),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "steps": args.steps,
        "wall_s": round(time.perf_counter() - started, 1),
        "rows": rows,
        "fp32_curves": fp32,
        "setting_curves": runs,
    }
    lines = [
        f"{report['device']}; torch {report['torch']}; {report['date']}; {args.steps} steps; command: `{report['command']}`",
        "",
        f"| setting | loss term | mean over the steps | fp32 mean ({args.seeds} seeds) | fp32 seed std | deviation (std) | within noise |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['setting']} | {row['term']} | {row['mean']:.4g} | {row['fp32_mean']:.4g} | {row['fp32_seed_std']:.2g} | "
            f"{row['deviation_in_std']} | {'yes' if row['within_noise'] else '**no**'} |"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.json").write_text(json.dumps(report, indent=2))
    (out / "precision.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out / 'precision.json'} and {out / 'precision.md'} in {report['wall_s']} s")


if __name__ == "__main__":
    main()
