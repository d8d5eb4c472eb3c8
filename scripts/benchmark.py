"""The benchmark suite: training and test throughput of every speed setting, as ratios to a baseline measured
side by side in the same run, and the memory each one takes.

For each case (CycleGAN 128 and 256, pix2pix 256, the cGAN at 32) it runs (scripts/bench_runners.py has them):

- ``baseline: reference``: the authors' reference training step as its users run it, written as a plain
  loop over translate's networks, independent of our engine (eager fp32, NCHW, the reference's update order);
- ``baseline: copy-paste``: the common variant of that loop: nothing frozen, one Adam per network;
- ``engine ...``: ``translate-train``'s own step (``Trainer.build()`` + ``Trainer.train_step``) with each
  speed setting: fp32, channels_last, bf16 / fp16 autocast, torch.compile, a larger batch.

Every runner is warmed up first (compilation, cuDNN autotuning, allocator), then timed in windows that take
turns with the reference's: reference window 1, setting window 1, reference window 2, setting window 2, ...,
so that a machine whose load changes (a shared CPU) slows both alike. A figure is the median over the
windows; a ratio is the median over windows of reference time / setting time per image, each pair measured
back to back. Test time: translate-test's evaluation loop (``translate.evaluation.loop.evaluate`` with the
protocol's per-image metrics, batch 8) against a batch-1 eager loop over the same images, their windows in
turn. The data loader alone: images/s of the engine's ``DataLoader`` (synthetic PNGs on disk, the
configured workers), to show where input saturates.

Memory. Each runner lives in a process of its own (a fresh interpreter: its peak is what a translate-train
process of that setting reaches, loader workers aside), and at most two are alive at a time: the
reference, for the whole of a case's training part, and the one setting it is paired with, which ends (the
parent waits until it and every process it started are gone) before the next setting's is built. So the
suite holds two runners at most, whatever the number of settings. Why this design, measured on the 2-core
CPU (pix2pix 256, batch 1, the largest --quick case):

- every runner of a case in one process (this suite until 2026-12): 8 runners, 12.5 GB in the main process
  beside 12 idle forked loader workers; the machine had 28 MB free of 24 GB;
- one long-lived process per runner, all alive: a pix2pix runner's process peaks at 2.05 to 2.34 GB (0.95 GB
  of it Python, torch and translate, loaded before the build), so 8 of them 16 to 19 GB;
- one runner alive at a time, its state saved to disk and reloaded for every window: a process start and
  imports (5 to 7 s on the loaded machine), a build (2 s), warm-up calls and, for the compiled settings, a
  recompilation (their first compilation took 95 and 122 s) before every window of 1 to 5 s: several
  times the suite's time;
- this design: 4.1 to 4.4 GB for all the suite's processes together (RSS summed; 3.8 GB as PSS), one extra
  reference window per setting window (35 instead of 5 for the reference in a case of 7 settings), and
  each ratio's two windows measured back to back.

The runners read their 4 batches without loader workers (``data.num_workers=0``: the timed step never
touches the loader), so no idle workers are kept; the loader row is measured in a process of its own, with
the configured workers, as are the test rows.

Each row's memory: the peak resident memory (RSS, Linux VmHWM) of the runner's process over its build,
warm-up and windows, and on CUDA the peak of ``torch.cuda.max_memory_allocated``. The suite's own peak,
all its processes together (RSS summed every 0.2 s over this process and its descendants; pages they share,
such as torch's libraries, count once per process, so this is an upper bound), goes in the report, per
case and overall.

Settings a device lacks are listed as skipped, with the reason. Writes ``benchmark.json`` and
``benchmark.md`` to ``--out``:

    python scripts/benchmark.py                    # the full suite on the GPU
    python scripts/benchmark.py --quick            # the CPU subset (make bench-quick)
    python scripts/benchmark.py --quick --only cyclegan128   # one case
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import make_images  # noqa: E402  (a sibling script, not a package)

#: The program each runner's process runs.
RUNNERS = Path(__file__).resolve().with_name("bench_runners.py")
GB = 2**30

# -- the cases ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    model: str
    size: int
    batch: int
    #: translate-train overrides beyond the model, the data and the size.
    overrides: List[str] = field(default_factory=list)
    #: Steps (or test images) per timed window.
    steps: int = 10


def cases(quick: bool) -> List[Case]:
    if quick:
        # The 2-core CPU: CycleGAN 256 and pix2pix at batch > 1 would take the whole budget alone.
        return [
            Case("cyclegan128", "cyclegan", 128, 1, steps=1),
            Case("pix2pix256", "pix2pix", 256, 1, steps=1),
            Case("cgan32", "cgan", 32, 64, steps=2),
        ]
    # CycleGAN 256 first: the GPU targets are its figures, and a run cut short keeps the cases it finished.
    return [
        Case("cyclegan256", "cyclegan", 256, 1),
        Case("pix2pix256", "pix2pix", 256, 1),
        Case("cyclegan128", "cyclegan", 128, 1),
        Case("cgan32", "cgan", 32, 64, steps=20),
    ]


@dataclass
class Setting:
    name: str
    overrides: List[str]
    #: batch size multiplier over the case's batch
    batch_factor: int = 1
    #: why it does not run on this device, or None
    skip: Optional[str] = None


def settings(device: str, quick: bool) -> List[Setting]:
    cuda = device == "cuda"
    cpu_fp16 = None if cuda else "fp16 autocast on the CPU: no fast kernels (and GradScaler is a GPU tool); CUDA only"
    rows = [
        Setting("engine fp32", []),
        Setting("engine channels_last", ["device.channels_last=true"]),
        Setting("engine bf16", ["device.amp=bf16"]),
        Setting("engine bf16 + channels_last", ["device.amp=bf16", "device.channels_last=true"]),
        Setting("engine fp16 + channels_last", ["device.amp=fp16", "device.channels_last=true"], skip=cpu_fp16),
        Setting("engine compile", ["device.compile=true"]),
        Setting("engine compile + channels_last", ["device.compile=true", "device.channels_last=true"]),
        Setting("engine compile + bf16 + channels_last", ["device.compile=true", "device.amp=bf16", "device.channels_last=true"]),
        Setting("engine bf16 + channels_last (batch x4)", ["device.amp=bf16", "device.channels_last=true"], batch_factor=4),
        # Batch 1 leaves most of a large GPU idle; 16 images a step show the rate of a busy one.
        Setting(
            "engine compile + bf16 + channels_last (batch x16)",
            ["device.compile=true", "device.amp=bf16", "device.channels_last=true"],
            batch_factor=16,
            skip=None if cuda else "a GPU-sized batch: on a CPU, batch x4 shows the same effect",
        ),
        Setting(
            "CUDA graphs",
            [],
            skip="not offered: the image pools and the non-finite checks run on the host between the updates" if cuda else "CUDA only",
        ),
    ]
    if quick:
        # Each compiled variant costs minutes of compilation on 2 cores; keep the ones that tell something.
        keep = {
            "engine fp32",
            "engine channels_last",
            "engine bf16",
            "engine bf16 + channels_last",
            "engine fp16 + channels_last",
            "engine compile",
            "engine compile + bf16 + channels_last",
            "CUDA graphs",
        }
        rows = [s for s in rows if s.name in keep]
    return rows


# -- configs and data --------------------------------------------------------------------------------------


def case_overrides(case: Case, data_dir: Path, device: str) -> List[str]:
    """The translate-train overrides of a case: the model, synthetic data of its size, nothing logged."""
    common = [
        f"model={case.model}",
        f"device={device}",
        f"trainer.batch_size={case.batch}",
        "logger=none",
        "trainer.progress_bar=false",
        "trainer.val_every_n_epochs=null",
        # The image grid every 1,000 steps is not part of a step; it would land in one window at random.
        "trainer.image_every_n_steps=1000000",
        f"paths.output_dir={data_dir}/out",
    ]
    if case.model == "cgan":
        return [*common, "data=mnist_subset", f"data.image_size={case.size}"]
    root = data_dir / case.name
    if not root.exists():
        make_images(root, case.model, case.size, 16)
    data = ["data=aligned" if case.model == "pix2pix" else "data=unaligned", f"data.root={root}"]
    return [*common, *data, f"data.load_size={case.size}", f"data.crop_size={case.size}", *case.overrides]


# -- memory of processes -----------------------------------------------------------------------------------


def processes() -> Dict[int, Tuple[int, int]]:
    """Every process of the machine: pid -> (parent pid, resident bytes)."""
    if Path("/proc/self/stat").exists():
        page, table = os.sysconf("SC_PAGE_SIZE"), {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                # The fields after the command name (which may hold spaces): state, ppid, ..., rss (pages) 22nd.
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # it ended while we looked
                continue
            table[int(entry.name)] = (int(fields[1]), int(fields[21]) * page)
        return table
    # No /proc (macOS): ps gives the resident size in KiB.
    out = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,rss="], capture_output=True, text=True, check=True).stdout
    return {int(pid): (int(ppid), int(rss) * 1024) for pid, ppid, rss in (line.split() for line in out.splitlines() if line.strip())}


def resident(root: int) -> Dict[int, int]:
    """Resident bytes of process ``root`` and of each of its descendants (an ended, unreaped one holds 0)."""
    table = processes()
    children: Dict[int, List[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found[pid] = table[pid][1]
            todo += children.get(pid, [])
    return found


def proportional(root: int) -> Optional[int]:
    """The summed proportional set size (PSS: a page shared by n processes counts 1/n in each) of ``root``
    and its descendants, in bytes; None where the kernel does not give it (no /proc/<pid>/smaps_rollup)."""
    total = 0
    for pid in resident(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                total += next(int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:"))
        except FileNotFoundError:
            if Path("/proc/self/smaps_rollup").exists():
                continue  # that process ended while we looked
            return None
        except ProcessLookupError:
            continue
    return total


class MemoryWatch:
    """The peak of the summed resident memory of process ``root`` (default: this one) and all its descendants
    (the runners, their data-loader and compile workers), sampled every ``interval`` seconds on a thread.
    Pages that processes share (torch's libraries, a forked worker's copy-on-write pages) count once per
    process: an upper bound on what they hold together. With ``pss_interval``, also the peak of their summed
    PSS (what they hold together), sampled that often: reading it walks every page of every mapping (about
    0.1 s for a 2 GB process on a loaded 2-core machine), too costly beside a timed window."""

    def __init__(self, root: Optional[int] = None, interval: float = 0.2, pss_interval: Optional[float] = None) -> None:
        self.root, self.interval, self.pss_interval = root or os.getpid(), interval, pss_interval
        self.peak, self.case_peak = 0, 0
        self.pss_peak: Optional[int] = 0 if pss_interval else None
        self._next_pss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> None:
        total = sum(resident(self.root).values())
        self.peak, self.case_peak = max(self.peak, total), max(self.case_peak, total)
        if self.pss_peak is not None and self.pss_interval and time.monotonic() >= self._next_pss:
            self._next_pss = time.monotonic() + self.pss_interval
            pss = proportional(self.root)
            self.pss_peak = None if pss is None else max(self.pss_peak, pss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def new_case(self) -> None:
        self.case_peak = 0
        self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- runners, each in a process of its own -----------------------------------------------------------------


class RunnerFailed(Exception):
    """A runner could not be built or ended while measured (its one-line reason)."""


class RunnerProcess:
    """A runner of scripts/bench_runners.py in a process of its own: built and warmed up from ``spec``, then
    driven by commands over a pipe; its answers come back on another, so that its stdout stays free."""

    #: Every runner started by this process, for :func:`launch`'s measure of what earlier ones still hold.
    started: List["RunnerProcess"] = []

    def __init__(self, spec: Dict[str, Any]) -> None:
        read_fd, write_fd = os.pipe()
        self.process = subprocess.Popen([sys.executable, str(RUNNERS), str(write_fd)], stdin=subprocess.PIPE, pass_fds=(write_fd,))
        os.close(write_fd)
        self.pid = self.process.pid
        #: Its process and every process it was seen to start (loader and compile workers), for after it ends:
        #: an orphaned worker is no longer a descendant of anything here.
        self.tree: Set[int] = {self.pid}
        RunnerProcess.started.append(self)
        self.replies = os.fdopen(read_fd, "rb")
        try:
            self.info = self._exchange(spec)
        except RunnerFailed:
            self.close()
            raise
        self.name: str = self.info["name"]
        self.images_per_call: int = self.info["images_per_call"]
        #: Resident bytes that earlier runners' processes still held when this one was started (measured).
        self.earlier_held = 0

    def _exchange(self, message: Any) -> Any:
        try:
            pickle.dump(message, self.process.stdin)
            self.process.stdin.flush()
            status, value = pickle.load(self.replies)
        except (EOFError, BrokenPipeError):
            code = self.process.wait()
            raise RunnerFailed(f"its process ended with exit code {code}{' (killed: out of memory?)' if code == -9 else ''}") from None
        if status == "error":
            raise RunnerFailed(value)
        return value

    def ask(self, command: str, *args: Any) -> Any:
        return self._exchange((command, *args))

    def window(self, calls: int) -> float:
        """Seconds per image over ``calls`` calls."""
        return self.ask("window", calls) / (calls * self.images_per_call)

    def close(self) -> None:
        """End the process, and wait until it and every process it started (loader and compile workers) are
        gone, so that their memory is free before anything else is built."""
        tree = set(resident(self.pid))
        self.tree |= tree
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()  # end of input: the runner returns
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:  # stuck in a worker's shutdown: its memory must go all the same
            self.process.kill()
            self.process.wait()
        self.replies.close()
        deadline = time.monotonic() + 60
        while tree & set(processes()) and time.monotonic() < deadline:
            time.sleep(0.1)


def launch(spec: Dict[str, Any], keep: List[RunnerProcess]) -> RunnerProcess:
    """Start a runner, measuring first what earlier runners' processes (other than ``keep``'s) still hold: each
    one's process and every process it started, alive or orphaned, read from the process table. (Other
    children of this process, such as a test runner's compile workers, are not runners and do not count.)"""
    table = processes()
    earlier: Set[int] = set()
    for other in RunnerProcess.started:
        if all(other is not k for k in keep):
            earlier |= other.tree | set(resident(other.pid))
    held = sum(table[pid][1] for pid in earlier if pid in table)
    runner = RunnerProcess(spec)
    runner.earlier_held = held
    print(f"   built {runner.name}; {spec['warmup']} warm-up call(s) in {runner.info['warmup_s']:.1f} s", flush=True)
    return runner


def timed(runner: RunnerProcess, calls: int, into: List[float]) -> None:
    into.append(runner.window(calls))
    print(f"   {runner.name}: {into[-1] * runner.images_per_call:.3f} s per call", flush=True)


def row(runner: RunnerProcess, own: List[float], baseline: List[float], memory: Dict[str, Any]) -> Dict[str, Any]:
    result = {
        "setting": runner.name,
        "images_per_s": round(1 / statistics.median(own), 3),
        "s_per_image": round(statistics.median(own), 4),
        "speedup_vs_baseline": round(statistics.median([b / t for b, t in zip(baseline, own)]), 3),
        "windows_s_per_image": [round(t, 4) for t in own],
        "peak_rss_gb": round(memory["peak_rss_bytes"] / GB, 3),
        "rss_before_build_gb": round(runner.info["rss_at_start_bytes"] / GB, 3),
        "peak_cuda_gb": None if memory["peak_cuda_bytes"] is None else round(memory["peak_cuda_bytes"] / GB, 3),
        "earlier_runners_resident_gb_at_start": round(runner.earlier_held / GB, 3),
    }
    if baseline is not own:
        result["baseline_windows_s_per_image"] = [round(t, 4) for t in baseline]
    return result


def train_specs(case: Case, base: Dict[str, Any], device: str, tmp: Path, args: Any) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """The runners paired with the reference (the copy-paste baseline, then each engine setting), and the rows
    of the settings left out."""
    specs: List[Dict[str, Any]] = [dict(base, kind="copy-paste")]
    skipped = []
    for setting in settings(device, args.quick):
        if args.settings and setting.name not in args.settings.split(","):
            continue
        if setting.skip:
            skipped.append({"setting": setting.name, "skipped": setting.skip})
            continue
        if case.model == "cgan" and "channels_last" in setting.name and "compile" not in setting.name and args.quick:
            skipped.append({"setting": setting.name, "skipped": "--quick: left out to fit the CPU time budget"})
            continue
        extra = [
            *setting.overrides,
            f"trainer.batch_size={case.batch * setting.batch_factor}",
            # The step reads batches read once before timing: loader workers would only sit idle, holding memory.
            "data.num_workers=0",
        ]
        specs.append(
            dict(
                base,
                kind="engine",
                name=setting.name,
                overrides=[*base["overrides"], *extra],
                run_dir=str(tmp / "runs" / f"{case.name}-{len(specs)}"),
                # Compiled runners recompile on their first steps (train graphs, frozen-discriminator graphs).
                warmup=args.warmup + (2 if "compile" in setting.name else 0),
            )
        )
    return specs, skipped


def run_case(case: Case, device: str, tmp: Path, args: Any, watch: MemoryWatch) -> Dict[str, Any]:
    print(f"== {case.name}", flush=True)
    watch.new_case()
    base = {
        "case": asdict(case),
        "device": device,
        "overrides": case_overrides(case, tmp, device),
        "warmup": args.warmup,
    }
    specs, skipped = train_specs(case, base, device, tmp, args)
    rows, reference_windows = [], []
    reference = launch(dict(base, kind="reference"), keep=[])
    try:
        for spec in specs:
            try:
                runner = launch(spec, keep=[reference])
            except RunnerFailed as err:  # a setting the device refuses (e.g. bf16 on an old GPU) is a row, not a crash
                skipped.append({"setting": spec.get("name", spec["kind"]), "skipped": f"failed: {err}"})
                continue
            own, paired = [], []
            try:
                for _ in range(args.windows):
                    timed(reference, case.steps, paired)
                    timed(runner, case.steps, own)
                rows.append(row(runner, own, paired, runner.ask("memory")))
                reference_windows += paired
            except RunnerFailed as err:
                if reference.process.poll() is not None:
                    raise  # no ratio without the reference: the case is lost
                skipped.append({"setting": runner.name, "skipped": f"failed: {err}"})
            finally:
                runner.close()
        rows.insert(0, row(reference, reference_windows, reference_windows, reference.ask("memory")))
    finally:
        reference.close()
    result: Dict[str, Any] = {"case": case.name, "model": case.model, "size": case.size, "batch": case.batch, "train": rows + skipped}

    if case.model != "cgan":
        loader = launch(dict(base, kind="loader", run_dir=str(tmp / "runs" / f"{case.name}-loader"), warmup=0), keep=[])
        try:
            result["loader"] = loader.ask("loader", args.loader_batches)
        finally:
            loader.close()
        tests: List[RunnerProcess] = []
        try:
            for kind in ("test", "test-loop"):
                tests.append(launch(dict(base, kind=kind, test_images=2 if args.quick else 16, warmup=1), keep=tests))
            windows: Dict[str, List[float]] = {t.name: [] for t in tests}
            for _ in range(args.windows):
                for t in tests:
                    timed(t, 1, windows[t.name])
            baseline = windows[tests[0].name]
            result["test"] = [row(t, windows[t.name], baseline, t.ask("memory")) for t in tests]
        finally:
            for t in tests:
                t.close()
    result["peak_all_processes_gb"] = round(watch.case_peak / GB, 2)
    return result


# -- report ------------------------------------------------------------------------------------------------


def machine(about: Dict[str, Any]) -> Dict[str, Any]:
    """The machine and torch the runners saw (``about``: bench_runners.py --about)."""
    info = {
        "torch": about["torch"],
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
        "threads": about["threads"],
        "cpu_count": os.cpu_count(),
        "memory_gb": None,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    with contextlib.suppress(OSError, StopIteration, ValueError):
        total = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        info["memory_gb"] = round(int(total.split()[1]) * 1024 / GB, 1)
    if about["cuda_name"]:
        info["device"] = about["cuda_name"]
    else:
        info["device"] = f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
        with contextlib.suppress(OSError, StopIteration):
            name = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
            info["device"] = f"CPU: {name.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return info


def _gb(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(report: Dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Device: {m['device']}; {m.get('memory_gb')} GB of memory; torch {m['torch']}; {m['date']}; {m['threads']} threads; "
        f"load average at start {m['load_average_at_start']}, at end {m.get('load_average_at_end')}; command: `{report['command']}`",
        "",
        "Peak RSS: the runner's own process, over its build, warm-up and windows (of which Python, torch and translate, "
        "loaded before the build, take the `rss_before_build_gb` of benchmark.json). Peak CUDA: "
        "`torch.cuda.max_memory_allocated` of that process.",
        "",
        "| case | setting | images/s | x baseline (median of paired windows) | peak RSS (GB) | peak CUDA (GB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for case in report["cases"]:
        label = f"{case['case']} (batch {case['batch']})"
        for row in case["train"] + case.get("test", []):
            if "skipped" in row:
                lines.append(f"| {label} | {row['setting']} | skipped: {row['skipped']} | | | |")
                continue
            lines.append(
                f"| {label} | {row['setting']} | {row['images_per_s']:.3g} | {row['speedup_vs_baseline']:.2f} | "
                f"{_gb(row['peak_rss_gb'])} | {_gb(row['peak_cuda_gb'])} |"
            )
        if "loader" in case:
            ld = case["loader"]
            best = max(r["images_per_s"] for r in case["train"] if "images_per_s" in r)
            verdict = "not the bottleneck" if ld["images_per_s"] > 2 * best else "close to the training rate: input-bound"
            lines.append(
                f"| {label} | data loader alone ({ld['num_workers']} workers, persistent={ld['persistent_workers']}, pinned={ld['pin_memory']}) | "
                f"{ld['images_per_s']:.3g} | {verdict} | | |"
            )
    peaks = ", ".join(f"{case['case']} {case['peak_all_processes_gb']:.2f} GB" for case in report["cases"])
    lines += [
        "",
        f"Peak resident memory of the whole suite, all its processes together (RSS summed every 0.2 s, pages shared "
        f"between processes counted in each): {_gb(report.get('peak_all_processes_gb'))} GB; per case: {peaks}.",
    ]
    return "\n".join(lines) + "\n"


def about(device: str) -> Dict[str, Any]:
    """torch's version and threads, and the device ``device`` (auto, cpu, cuda) resolves to, as a runner sees them."""
    out = subprocess.run([sys.executable, str(RUNNERS), "--about", device], capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the CPU subset (fewer cases, settings and windows)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--only", default="", help="comma-separated case names (cyclegan128, cyclegan256, pix2pix256, cgan32)")
    parser.add_argument(
        "--settings", default="", help='comma-separated setting names to run (default: all), e.g. "engine fp32,engine compile"'
    )
    parser.add_argument("--windows", type=int, default=None, help="timed windows per runner (default 5, also with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls per runner (default 5, --quick 2)")
    parser.add_argument("--loader-batches", type=int, default=40)
    parser.add_argument("--out", default="benchmark", help="folder for benchmark.json and benchmark.md")
    args = parser.parse_args()
    args.windows = args.windows or 5
    # On the CPU a runner's first window after a single warm-up call took about twice its later ones
    # (allocator, oneDNN's kernel choice): two calls settle it.
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 5)
    wanted = {s for s in args.only.split(",") if s}
    unknown = wanted - {c.name for c in cases(False)}
    unknown |= {s for s in args.settings.split(",") if s} - {s.name for s in settings("cpu", False)}
    if unknown:
        parser.error(f"unknown case or setting names: {', '.join(sorted(unknown))}; see the names in scripts/benchmark.py")
    seen = about(args.device)
    device = seen["device"]
    report: Dict[str, Any] = {"command": " ".join(["python scripts/benchmark.py", *sys.argv[1:]]), "machine": machine(seen), "cases": []}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    watch = MemoryWatch()
    with tempfile.TemporaryDirectory() as tmp:
        # A private inductor cache: the compile rows time this run's compilation, not another's leftovers.
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(tmp) / "inductor"))
        for case in cases(args.quick):
            if wanted and case.name not in wanted:
                continue
            report["cases"].append(run_case(case, device, Path(tmp), args, watch))
            report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            report["wall_s"] = round(time.perf_counter() - started, 1)
            report["peak_all_processes_gb"] = round(watch.peak / GB, 2)
            # Written after every case, so a run cut short keeps what it measured.
            (out / "benchmark.json").write_text(json.dumps(report, indent=2))
            (out / "benchmark.md").write_text(markdown(report))
    watch.stop()
    print(markdown(report))
    print(f"wrote {out / 'benchmark.json'} and {out / 'benchmark.md'} in {report.get('wall_s')} s")


if __name__ == "__main__":
    main()
