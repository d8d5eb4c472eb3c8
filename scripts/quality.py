"""The quality suite: what each "better images" recipe buys, measured against the papers' defaults.

Small tasks with a known answer, built from MNIST (the bundled subset by default, the real MNIST with
``--mnist-root``), each written as the folders ``data=aligned`` / ``data=unaligned`` read. The first three
are the tasks the recipes were first measured on:

- ``cgan``: class-conditional digits, 32 px. Judged by the shipped MNIST classifier: ``accuracy`` (the share
  of digits it reads as the class asked for) and ``fid`` (``fid_mnist_classifier``, the Frechet distance in
  its feature space), both from translate-test's metrics.json.
- ``pix2pix``: edges -> digit, 32 px grey pairs (A = the Sobel magnitude of a digit, B = the digit), trained
  on pairs from the training split, tested on unseen pairs from the test split: ``L1``, ``PSNR``, ``SSIM``
  to the true digit (translate-test's), and ``fid`` / ``kid`` of the outputs against the true digits in the
  classifier's feature space.
- ``cyclegan``: thin -> thick digits without pairs (A = digits, B = other digits dilated by a 3 x 3 max
  filter; the true answer for a test digit a is dilate(a)): ``L1``, ``PSNR``, ``SSIM`` of G_A's output to
  that answer and ``fid`` / ``kid`` against real thick digits, computed here from translate-test's images.

Two more are held out, marked so in the tables: a recipe chosen on the first three is recommended only
where it holds on these too. Same networks, budgets and metrics as the task of the same model:

- ``denoise`` (pix2pix): noisy -> clean digit (A = the digit plus Gaussian noise of standard deviation 64
  of 255, B = the digit).
- ``deblur`` (CycleGAN): blurred -> sharp digits without pairs (A = digits blurred by a Gaussian of 1.5 px,
  B = other, sharp digits; the answer for a test A image is its sharp digit).

Every task also reports ``checkerboard``: the share of the outputs' spectral power at period 2 (see
``translate.evaluation.image_metrics.checkerboard_energy``); the real images of the task are listed beside
it (``checkerboard_real``).

Each recipe is trained for the same number of steps with the same seeds as the task's ``default`` (the
papers' settings, at the task's small size), by ``translate-train`` with overrides, and scored by
``translate-test``; the runs go ``--jobs`` at a time, one CPU thread each. Per recipe and metric: the median
and the range over seeds, and a verdict against ``default``: ``better`` / ``worse`` when every seed of the
recipe beats / trails every seed of the default (for n seeds each the chance of that under no difference
is 1 / C(2n, n), one-sided: 1/20 for 3 seeds, 1/252 for 5), else ``within noise``. A recipe's overall
verdict is ``better`` when it is better on at least one metric and worse on none (``worse`` the reverse,
``mixed`` both). Writes ``quality.json`` and ``quality.md`` (with a table of the verdicts by task) to
``--out``; a run already scored there with the same overrides is reused, so an interrupted suite continues
where it stopped and a larger ``--seeds`` adds only the new seeds.

    python scripts/quality.py                       # every task and recipe, 3 seeds: about 90 CPU-minutes
    python scripts/quality.py --quick               # 2 recipes a task, 2 seeds: about 22 CPU-minutes
    python scripts/quality.py --tasks denoise,deblur --recipes resize_conv,denoise:ema --seeds 5   # the held-out runs of docs/results.md
    python scripts/quality.py --mnist-root path/holding/MNIST   # the real MNIST (torchvision layout)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from translate.evaluation.digits import DigitJudge, load_classifier
from translate.evaluation.image_metrics import checkerboard_energy, feature_frechet_distance, l1, psnr, ssim

BIN = Path(sys.executable).parent
SIZE = 32
Metrics = Dict[str, float]

#: Every run: the CPU, no logging, no validation or checkpoints on the way, a constant learning rate, and
#: training stopped by trainer.max_steps alone.
COMMON = [
    "device=cpu",
    "logger=none",
    "trainer.progress_bar=false",
    "trainer.val_every_n_epochs=null",
    "trainer.save_every_n_epochs=100000",
    "trainer.image_every_n_steps=100000",
    "trainer.lr_policy=constant",
    "trainer.n_epochs=100000",
    "trainer.n_epochs_decay=0",
    "data.num_workers=0",
]


# --- the tasks' data -----------------------------------------------------------------------------------------


def mnist_digits(root: Optional[str], split: str) -> torch.Tensor:
    """uint8 digits ``[N, 1, 32, 32]`` of ``split`` (train | test): the real MNIST under ``root`` (torchvision's
    layout) or, when ``root`` is None, the subset bundled with translate (6000 train / 1000 test); resized
    from 28 px as data=mnist resizes them (bilinear, antialiased)."""
    if root is None:
        from translate.data.mnist import load_bundled

        images = load_bundled(split)[0]
    else:
        from torchvision.datasets import MNIST

        images = MNIST(root, train=split == "train", download=False).data
    return TF.resize(images[:, None], [SIZE, SIZE], antialias=True)


def edges(digits: torch.Tensor) -> torch.Tensor:
    """The Sobel gradient magnitude of uint8 digits ``[N, 1, S, S]``, scaled to 0..255 per image."""
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    grad = F.conv2d(digits.float() / 255, torch.stack([sobel, sobel.T])[:, None], padding=1).norm(dim=1, keepdim=True)
    return (grad / grad.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8) * 255).round().to(torch.uint8)


def thicken(digits: torch.Tensor) -> torch.Tensor:
    """Digits dilated by a 3 x 3 maximum filter: the CycleGAN task's known A -> B mapping."""
    return F.max_pool2d(digits.float(), 3, stride=1, padding=1).to(torch.uint8)


def add_noise(digits: torch.Tensor) -> torch.Tensor:
    """Digits plus Gaussian noise of standard deviation 64 (a quarter of the range), clipped to 0..255. The
    noise is seeded by the digits' sum: the same digits get the same noise on every call, the train and the
    test digits different noise."""
    noise = torch.randn(digits.shape, generator=torch.Generator().manual_seed(int(digits.long().sum()))) * 64
    return (digits.float() + noise).round().clamp(0, 255).to(torch.uint8)


def blur(digits: torch.Tensor) -> torch.Tensor:
    """Digits blurred by a Gaussian of standard deviation 1.5 px (7 x 7 kernel): strokes about 3 px wide
    spread to about 8."""
    return TF.gaussian_blur(digits, [7, 7], [1.5, 1.5])


def unchanged(digits: torch.Tensor) -> torch.Tensor:
    return digits


def save_grey(image: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.squeeze(0).numpy(), mode="L").save(path)


def read_grey(path: Path) -> torch.Tensor:
    """A PNG as uint8 ``[1, H, W]`` (its first channel: translate-test writes grey images as RGB)."""
    array = np.array(Image.open(path))
    return torch.from_numpy(array if array.ndim == 2 else np.ascontiguousarray(array[..., 0]))[None]


#: What a task makes of a digit: its A and its B side; the known answer for an A image is the B of its digit.
Transform = Callable[[torch.Tensor], torch.Tensor]


def build_paired_data(root: Path, train: torch.Tensor, test: torch.Tensor, to_a: Transform, to_b: Transform) -> None:
    """``root/{train,test}/<i>.png``: to_a(digit) | to_b(digit) side by side (the reference's aligned layout)."""
    for split, digits in (("train", train), ("test", test)):
        for i, (a, b) in enumerate(zip(to_a(digits), to_b(digits))):
            save_grey(torch.cat([a, b], dim=2), root / split / f"{i:05d}.png")


def build_unpaired_data(root: Path, truth: Path, train: torch.Tensor, test: torch.Tensor, to_a: Transform, to_b: Transform) -> None:
    """``root/{train,test}{A,B}/``: to_a of one half of the digits (A) and to_b of the other half (B), never
    the same digit on both sides; ``truth/testA/<stem>.png`` holds to_b of each test A image's digit, the
    answer G_A should give."""
    half, test_half = len(train) // 2, len(test) // 2
    folders = {
        "trainA": to_a(train[:half]),
        "trainB": to_b(train[half : 2 * half]),
        "testA": to_a(test[:test_half]),
        "testB": to_b(test[test_half : 2 * test_half]),
    }
    for folder, digits in folders.items():
        for i, image in enumerate(digits):
            save_grey(image, root / folder / f"{folder}_{i:05d}.png")
    for i, image in enumerate(to_b(test[:test_half])):
        save_grey(image, truth / "testA" / f"testA_{i:05d}.png")


# --- scoring ---------------------------------------------------------------------------------------------------


class Judge:
    """The shipped MNIST classifier's features of uint8 digits, for FID and KID against real digits."""

    def __init__(self) -> None:
        self.judge = DigitJudge(load_classifier(), torch.device("cpu"))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.judge(images)[1]

    def distances(self, fake: torch.Tensor, real: torch.Tensor) -> Metrics:
        """``fid`` and, when torch-fidelity is installed, ``kid`` (x 1000) of ``fake`` against ``real``."""
        ff, fr = self.features(fake), self.features(real)
        out = {"fid": feature_frechet_distance(ff, fr)}
        try:
            from translate.evaluation.fid import kernel_inception_distance

            out["kid_x1000"] = 1000 * kernel_inception_distance(ff, fr, subset_size=min(len(ff), len(fr), 500), subsets=50)["mean"]
        except ImportError:
            pass
        return out


def as_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1


def score_cgan(test_dir: Path, task: "Task", judge: Judge) -> Metrics:
    metrics = json.loads((test_dir / "metrics.json").read_text())
    samples = torch.stack([read_grey(p) for p in sorted((test_dir / "samples").glob("*/*.png"))])
    return {
        "accuracy": metrics["accuracy"]["mean"],
        "fid": metrics["fid_mnist_classifier"]["mean"],
        "checkerboard": float(checkerboard_energy(samples).mean()),
    }


def score_paired(test_dir: Path, task: "Task", judge: Judge) -> Metrics:
    metrics = json.loads((test_dir / "metrics.json").read_text())
    fake = torch.stack([read_grey(p) for p in sorted((test_dir / "images").glob("*_fake_B.png"))])
    real = torch.stack([read_grey(p) for p in sorted((test_dir / "images").glob("*_real_B.png"))])
    return {
        "L1": metrics["L1"]["mean"],
        "PSNR": metrics["PSNR"]["mean"],
        "SSIM": metrics["SSIM"]["mean"],
        **judge.distances(fake, real),
        "checkerboard": float(checkerboard_energy(fake).mean()),
    }


def score_unpaired(test_dir: Path, task: "Task", judge: Judge) -> Metrics:
    assert task.truth is not None
    truths = sorted((task.truth / "testA").glob("*.png"))
    fake = torch.stack([read_grey(test_dir / "images" / f"{p.stem}_fake_B.png") for p in truths])
    truth = torch.stack([read_grey(p) for p in truths])
    real_b = torch.stack([read_grey(p) for p in sorted((test_dir / "images").glob("testB_*_real_B.png"))])
    x, y = as_unit(fake), as_unit(truth)
    return {
        "L1": float(l1(x, y).mean()),
        "PSNR": float(psnr(x, y).mean()),
        "SSIM": float(ssim(x, y).mean()),
        **judge.distances(fake, real_b),
        "checkerboard": float(checkerboard_energy(fake).mean()),
    }


#: Whether a larger value of a metric is better.
HIGHER_IS_BETTER = {"accuracy": True, "fid": False, "kid_x1000": False, "L1": False, "PSNR": True, "SSIM": True, "checkerboard": False}


# --- tasks and recipes -------------------------------------------------------------------------------------


@dataclass
class Task:
    name: str
    what: str
    #: overrides shared by every recipe of the task (model, data, sizes, budget)
    overrides: List[str]
    #: recipe name -> its overrides on top; "default" is the papers' settings
    recipes: Dict[str, List[str]]
    #: the recipes of --quick
    quick: List[str]
    test_overrides: List[str]
    score: Callable[[Path, "Task", Judge], Metrics]
    #: the unpaired tasks: the folder of the answers G_A should give for the test A images
    truth: Optional[Path] = None
    #: the image tasks: what A and B are made of, from one digit
    to_a: Optional[Transform] = None
    to_b: Optional[Transform] = None
    #: not one of the three tasks the recipes were first chosen on: where a recommendation is checked
    held_out: bool = False
    real_checkerboard: float = float("nan")


DIFFAUGMENT = "model.diffaugment='color,translation,cutout'"
#: An average over about the last 100 steps: with decay 0.999 the untrained weights would still make up
#: 0.999 ** 600 = 55% of the average after 600 steps.
EMA = ["model.ema.decay=0.99"]
SPECTRAL_NORM = ["model.discriminator.spectral_norm=true", "model.discriminator.norm=none"]
RESIZE_CONV = ["model.generator.upsample=resize_conv"]
#: The recipes, quick subset and test overrides shared by the image-to-image tasks.
IMAGE_TASK: Dict[str, Any] = dict(
    recipes={"default": [], "spectral_norm": SPECTRAL_NORM, "ema": EMA, "diffaugment": [DIFFAUGMENT], "resize_conv": RESIZE_CONV},
    quick=["default", "resize_conv"],
    test_overrides=["metrics.fid=false"],
)
IMAGES = ["data.load_size=32", "data.crop_size=32", "data.input_nc=1", "data.output_nc=1"]


def paired_task(name: str, what: str, data: Path, steps: int, to_a: Transform, to_b: Transform, held_out: bool = False) -> Task:
    """A pix2pix task at the suite's size: a U-Net from to_a(digit) to to_b(digit), trained on pairs."""
    return Task(
        name=name,
        what=f"{what}, 32 px pairs; U-Net (5 levels) ngf = 16, 70 x 70 PatchGAN ndf = 16, batch 8",
        overrides=[
            "model=pix2pix",
            "data=aligned",
            f"data.root={data / name}",
            *IMAGES,
            "model.generator.arch=unet",
            "model.generator.num_downs=5",
            "model.generator.ngf=16",
            "model.discriminator.ndf=16",
            "trainer.batch_size=8",
            f"trainer.max_steps={steps}",
        ],
        **IMAGE_TASK,
        score=score_paired,
        to_a=to_a,
        to_b=to_b,
        held_out=held_out,
    )


def unpaired_task(name: str, what: str, data: Path, steps: int, to_a: Transform, to_b: Transform, held_out: bool = False) -> Task:
    """A CycleGAN task at the suite's size: to_a of some digits to to_b of others, without pairs."""
    return Task(
        name=name,
        what=f"{what}, unpaired, 32 px; ResNet (2 blocks) ngf = 16, 70 x 70 PatchGAN ndf = 16, batch 4",
        overrides=[
            "model=cyclegan",
            "data=unaligned",
            f"data.root={data / name}",
            *IMAGES,
            "model.generator.arch=resnet",
            "model.generator.n_blocks=2",
            "model.generator.ngf=16",
            "model.discriminator.ndf=16",
            "trainer.batch_size=4",
            f"trainer.max_steps={steps}",
        ],
        **IMAGE_TASK,
        score=score_unpaired,
        truth=data / f"{name}_truth",
        to_a=to_a,
        to_b=to_b,
        held_out=held_out,
    )


def make_tasks(work: Path, mnist_root: Optional[str], steps: Dict[str, int]) -> Dict[str, Task]:
    """The tasks, their data to be written under ``work/data`` (by prepare_data)."""
    data = work / "data"
    mnist = ["data=mnist_subset"] if mnist_root is None else ["data=mnist", f"data.root={mnist_root}", "data.download=false"]
    return {
        "cgan": Task(
            name="cgan",
            what="class-conditional digits, 32 px; DCGAN cGAN ngf = ndf = 32, batch 64",
            overrides=[
                *mnist,
                "model=cgan",
                "model.generator.ngf=32",
                "model.discriminator.ndf=32",
                "trainer.batch_size=64",
                f"trainer.max_steps={steps['cgan']}",
            ],
            recipes={
                "default": [],
                "projection": ["experiment=cgan_projection"],
                "spectral_norm": SPECTRAL_NORM,
                "ema": EMA,
                "diffaugment": [DIFFAUGMENT],
                "resize_conv": RESIZE_CONV,
            },
            quick=["default", "projection"],
            test_overrides=["metrics.cgan_per_class=100", "metrics.tstr_steps=0", "n_per_class=20"],
            score=score_cgan,
        ),
        "pix2pix": paired_task("pix2pix", "edges -> digit", data, steps["pix2pix"], edges, unchanged),
        "cyclegan": unpaired_task("cyclegan", "thin -> thick digits", data, steps["cyclegan"], unchanged, thicken),
        "denoise": paired_task("denoise", "noisy -> clean digit", data, steps["denoise"], add_noise, unchanged, held_out=True),
        "deblur": unpaired_task("deblur", "blurred -> sharp digits", data, steps["deblur"], blur, unchanged, held_out=True),
    }


def prepare_data(work: Path, mnist_root: Optional[str], n_train: int, n_test: int, tasks: Dict[str, Task]) -> None:
    """Write the folders of the image tasks among ``tasks`` (each skipped when a previous call wrote it for the
    same source and sizes) and each task's real-image checkerboard energy (of the answers, the B side)."""
    data = work / "data"
    spec = {"mnist_root": mnist_root, "train": n_train, "test": n_test}
    train, test = mnist_digits(mnist_root, "train")[:n_train], mnist_digits(mnist_root, "test")
    for task in tasks.values():
        if task.to_a is None or task.to_b is None:
            task.real_checkerboard = float(checkerboard_energy(test).mean())
            continue
        stamp = data / f"{task.name}.json"
        if not stamp.exists() or json.loads(stamp.read_text()) != spec:
            if task.truth is None:
                build_paired_data(data / task.name, train, test[:n_test], task.to_a, task.to_b)
            else:
                build_unpaired_data(data / task.name, task.truth, train, test[: 2 * n_test], task.to_a, task.to_b)
            stamp.write_text(json.dumps(spec))
        task.real_checkerboard = float(checkerboard_energy(task.to_b(test[:n_test])).mean())


# --- running ----------------------------------------------------------------------------------------------------


def run_command(args: Sequence[str], log: Path, cwd: Path) -> tuple[float, float]:
    """Run a console script with one CPU thread, its output to ``log``; return its wall time and the CPU time
    it used (user + system; on an idle machine the two agree, on a loaded one the CPU time is the cost).
    Raises RuntimeError with the log's tail when it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([str(BIN / args[0]), *args[1:]], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        # wait4 rather than wait: it returns this child's own resource usage, whatever runs beside it
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        tail = log.read_text()[-2000:]
        raise RuntimeError(f"{args[0]} exited with {proc.returncode} ({log}):\n{tail}")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def train_and_score(task: Task, recipe: str, seed: int, work: Path, judge: Judge) -> Dict[str, object]:
    """One run: train, test, score; its result is cached in ``<run>/result.json`` by its overrides."""
    run_dir = work / "runs" / task.name / recipe / f"seed{seed}"
    overrides = [*COMMON, *task.overrides, *task.recipes[recipe], f"seed={seed}"]
    cached = run_dir / "result.json"
    if cached.exists():
        result = json.loads(cached.read_text())
        if result.get("overrides") == overrides:
            return result
    run_dir.mkdir(parents=True, exist_ok=True)
    train_s, train_cpu_s = run_command(["translate-train", *overrides, f"hydra.run.dir={run_dir}"], run_dir / "train.log", work)
    test_s, test_cpu_s = run_command(["translate-test", f"run={run_dir}", "device=cpu", *task.test_overrides], run_dir / "test.log", work)
    metrics = task.score(run_dir / "test_latest", task, judge)
    result = {
        "overrides": overrides,
        "metrics": metrics,
        "train_s": round(train_s, 1),
        "train_cpu_s": round(train_cpu_s, 1),
        "test_s": round(test_s, 1),
        "test_cpu_s": round(test_cpu_s, 1),
    }
    cached.write_text(json.dumps(result, indent=1))
    return result


def verdict(recipe: List[float], default: List[float], higher: bool) -> str:
    """better / worse when every value of ``recipe`` beats / trails every value of ``default``."""
    if not higher:
        recipe, default = [-v for v in recipe], [-v for v in default]
    if min(recipe) > max(default):
        return "better"
    if max(recipe) < min(default):
        return "worse"
    return "within noise"


def overall(verdicts: Dict[str, str]) -> str:
    values = set(verdicts.values())
    if "better" in values and "worse" in values:
        return "mixed"
    return "better" if "better" in values else "worse" if "worse" in values else "within noise"


def summarise(task: Task, results: Dict[str, Dict[int, Dict[str, object]]]) -> Dict[str, object]:
    """Median, range and verdict of each recipe's metrics over its seeds."""
    out: Dict[str, object] = {}
    default = results.get("default", {})
    for recipe, by_seed in results.items():
        names = list(next(iter(by_seed.values()))["metrics"]) if by_seed else []
        stats, verdicts = {}, {}
        for name in names:
            values = [float(r["metrics"][name]) for r in by_seed.values()]
            stats[name] = {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}
            if recipe != "default" and default:
                base = [float(default[s]["metrics"][name]) for s in by_seed if s in default]
                verdicts[name] = verdict(values, base, HIGHER_IS_BETTER[name])
        out[recipe] = {
            "overrides": task.recipes[recipe],
            "seeds": sorted(by_seed),
            "metrics": stats,
            "verdicts": verdicts,
            "verdict": overall(verdicts) if verdicts else "reference",
            "train_s": statistics.median(float(r["train_s"]) for r in by_seed.values()),
            "train_cpu_s": statistics.median(float(r.get("train_cpu_s", "nan")) for r in by_seed.values()),
        }
    return out


def fmt(value: float, name: str) -> str:
    if name in ("accuracy", "SSIM"):
        return f"{value:.3f}"
    if name == "checkerboard":
        return f"{value:.2e}"
    if name == "L1":
        return f"{value:.4f}"
    return f"{value:.2f}"


def verdict_table(tasks: Dict[str, Dict[str, Any]]) -> List[str]:
    """Each recipe's overall verdict on each task, the held-out tasks marked: a recipe holds where it is
    better on the held-out tasks too, not only on the tasks it was first chosen on."""
    names = list(tasks)
    recipes = [r for r in dict.fromkeys(r for t in tasks.values() for r in t["recipes"]) if r != "default"]
    if not recipes:
        return []
    head = [f"{n} (held out)" if tasks[n]["held_out"] else n for n in names]
    rows = [
        f"| {r} | " + " | ".join(tasks[n]["recipes"][r]["verdict"] if r in tasks[n]["recipes"] else "" for n in names) + " |"
        for r in recipes
    ]
    return ["## Verdicts", "", "| recipe | " + " | ".join(head) + " |", "|---|" + "---|" * len(names), *rows, ""]


def markdown(report: Dict[str, object]) -> str:
    lines = [
        f"# Quality suite{' (--quick)' if report['quick'] else ''}",
        "",
        f"{report['machine']}; seeds {report['seeds']}; {report['mnist']}; wall time {report['wall_s'] / 60:.1f} min, "
        f"{report['cpu_s'] / 60:.1f} CPU-minutes in training and testing (runs {report['jobs']} at a time, one thread each).",
        "Each cell: median over seeds [min, max]. Verdict against `default` (the papers' settings, same steps and seeds):",
        "better (**+**) / worse (**-**) when every seed of the recipe beats / trails every seed of the default, else",
        f"within noise; with {len(report['seeds'])} seeds each, the chance of that without a real difference is "
        f"1/{math.comb(2 * len(report['seeds']), len(report['seeds']))} (one-sided).",
        "",
        *verdict_table(report["tasks"]),  # type: ignore[arg-type]
    ]
    for name, task in report["tasks"].items():  # type: ignore[union-attr]
        recipes = task["recipes"]
        metrics = list(next(iter(recipes.values()))["metrics"])
        lines += [
            f"## {name}{' (held out)' if task['held_out'] else ''}: {task['what']}, {task['steps']} steps",
            "",
            f"checkerboard of the real images: {task['checkerboard_real']:.2e}. Arrows: the better direction.",
            "",
            "| recipe | " + " | ".join(f"{m} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in metrics) + " | verdict | train CPU s |",
            "|---|" + "---|" * (len(metrics) + 2),
        ]
        for recipe, r in recipes.items():
            cells = []
            for m in metrics:
                s = r["metrics"][m]
                mark = {"better": " **+**", "worse": " **-**"}.get(r["verdicts"].get(m, ""), "")
                cells.append(f"{fmt(s['median'], m)} [{fmt(s['min'], m)}, {fmt(s['max'], m)}]{mark}")
            lines.append(f"| {recipe} | " + " | ".join(cells) + f" | {r['verdict']} | {r['train_cpu_s']:.0f} |")
        lines += [
            "",
            "Recipes: " + "; ".join(f"`{k}`: {' '.join(v) or '(none)'}" for k, v in ((k, r["overrides"]) for k, r in recipes.items())),
            "",
        ]
    return "\n".join(lines) + "\n"


def machine() -> str:
    """The CPU by name (benchmark.py's description), the load beside the suite, torch and the date."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchmark import machine as describe  # a sibling script, not a package

    info = describe({"torch": torch.__version__, "threads": 1, "cuda_name": None})
    load = info["load_average_at_start"][0]
    return f"{info['device']}, load average {load:.1f} at the start, torch {info['torch']}, {info['date']}"


def choose_recipes(tasks: Dict[str, Task], spec: Optional[str], quick: bool) -> Dict[str, List[str]]:
    """Each task's recipes to run, default first: ``spec`` is --recipes (comma-separated; ``<recipe>`` for
    every task, ``<task>:<recipe>`` for one), None for all of them (those listed as quick with ``quick``).
    Raises ValueError naming what would work."""
    entries = [e.partition(":") if ":" in e else ("", "", e) for e in (spec or "").split(",") if e]
    strangers = sorted({t for t, _, _ in entries if t and t not in tasks})
    if strangers:
        raise ValueError(
            f"--recipes: {', '.join(strangers)} is not among --tasks ({', '.join(tasks)}); write <task>:<recipe> for a chosen task"
        )
    out = {}
    for name, task in tasks.items():
        if not entries:
            out[name] = task.quick if quick else list(task.recipes)
            continue
        wanted = ["default", *(r for t, _, r in entries if t in ("", name))]
        bad = [r for r in wanted if r not in task.recipes]
        if bad:
            raise ValueError(
                f"--recipes: {name} has no {', '.join(bad)}; it has {', '.join(task.recipes)} (write <task>:<recipe> for one task's)"
            )
        out[name] = [r for r in task.recipes if r in wanted]
    return out


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="about 7 minutes on 2 cores: the recipes each task lists as quick, 2 seeds")
    parser.add_argument("--mnist-root", default=None, help="folder holding MNIST/raw (torchvision's layout); default: the bundled subset")
    parser.add_argument("--out", type=Path, default=Path("quality"), help="where data, runs, quality.json and quality.md go")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per recipe (default 3, --quick 2)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one CPU thread each")
    parser.add_argument("--tasks", default=",".join(BUDGET), help=f"comma-separated subset of {', '.join(BUDGET)} (default: all)")
    parser.add_argument(
        "--recipes",
        default=None,
        help="comma-separated recipes to run beside default: <recipe> for every task, <task>:<recipe> for one (e.g. resize_conv,cgan:ema)",
    )
    parser.add_argument("--steps", default=None, help="override the steps, e.g. cgan=600,pix2pix=300 (the suite's budgets otherwise)")
    parser.add_argument("--train-images", type=int, default=2000, help="training digits the image tasks are built from")
    parser.add_argument("--test-images", type=int, default=200, help="test pairs / test digits per side of the image tasks")
    args = parser.parse_args(argv)

    steps = dict(BUDGET)
    for item in filter(None, (args.steps or "").split(",")):
        key, _, value = item.partition("=")
        if key not in steps or not value.isdigit():
            parser.error(f"--steps {item!r}: use <task>=<steps> with task one of {', '.join(steps)}")
        steps[key] = int(value)
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: give 1 or more (3 for a verdict that can mean something, 5 for a firmer one)")
    seeds = list(range(args.seeds or (2 if args.quick else 3)))
    work = args.out.resolve()
    tasks = make_tasks(work, args.mnist_root, steps)
    chosen = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in chosen if t not in tasks]
    if unknown:
        parser.error(f"--tasks: unknown {', '.join(unknown)}; choose from {', '.join(tasks)}")

    try:
        recipes = choose_recipes({t: tasks[t] for t in chosen}, args.recipes, args.quick)
    except ValueError as err:
        parser.error(str(err))
    # seed-major: every task and recipe gets seed k before any gets seed k + 1, so a suite stopped early
    # (its runs are cached) is summarised by a rerun with fewer --seeds from equal seeds everywhere
    jobs = [(tasks[name], recipe, seed) for seed in seeds for name in chosen for recipe in recipes[name]]

    work.mkdir(parents=True, exist_ok=True)
    prepare_data(work, args.mnist_root, args.train_images, args.test_images, {t: tasks[t] for t in chosen})
    judge = Judge()
    started = time.perf_counter()
    report: Dict[str, object] = {
        "quick": args.quick,
        "seeds": seeds,
        "machine": machine(),
        "mnist": args.mnist_root or "the bundled MNIST subset",
    }
    results: Dict[str, Dict[str, Dict[int, Dict[str, object]]]] = {}
    failures: List[str] = []

    def one(job: tuple) -> None:
        task, recipe, seed = job
        try:
            result = train_and_score(task, recipe, seed, work, judge)
        except RuntimeError as err:
            failures.append(f"{task.name}/{recipe}/seed{seed}: {err}")
            print(f"FAILED {task.name} {recipe} seed {seed}: {str(err).splitlines()[0]}", flush=True)
            return
        results.setdefault(task.name, {}).setdefault(recipe, {})[seed] = result
        shown = ", ".join(f"{k} {fmt(v, k)}" for k, v in result["metrics"].items())  # type: ignore[union-attr]
        print(
            f"{task.name:8s} {recipe:14s} seed {seed}: {shown} (train {result['train_s']} s, {result.get('train_cpu_s')} CPU s)", flush=True
        )

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, jobs))
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["jobs"] = args.jobs
    report["cpu_s"] = round(
        sum(
            float(r.get("train_cpu_s", 0)) + float(r.get("test_cpu_s", 0))
            for t in results.values()
            for rs in t.values()
            for r in rs.values()
        ),
        1,
    )
    report["tasks"] = {
        name: {
            "what": tasks[name].what,
            "held_out": tasks[name].held_out,
            "steps": steps[name],
            "checkerboard_real": tasks[name].real_checkerboard,
            "recipes": summarise(tasks[name], {r: results[name][r] for r in tasks[name].recipes if r in results.get(name, {})}),
        }
        for name in chosen
        if name in results
    }
    report["failures"] = failures
    (work / "quality.json").write_text(json.dumps(report, indent=1) + "\n")
    (work / "quality.md").write_text(markdown(report))
    print(markdown(report))
    if failures:
        print(f"{len(failures)} run(s) failed; see quality.json", file=sys.stderr)
    return report


#: Steps per task: the first three tasks' were chosen so that they fit in about 30 minutes on 2 CPU cores; each
#: held-out task has the budget of the first task of the same model.
BUDGET = {"cgan": 600, "pix2pix": 400, "cyclegan": 400, "denoise": 400, "deblur": 400}


if __name__ == "__main__":
    report = main()
    sys.exit(1 if report["failures"] else 0)
