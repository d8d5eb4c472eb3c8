"""Do the learning tests hold on every numeric path? What each one measures under each kernel set and thread count.

A GAN's training amplifies float rounding: the same seed on another CPU kind (ATen's AVX-512, AVX2 or plain
kernels, oneDNN's AVX-512 or AVX2 convolutions) or with another thread count (the sums in another order) ends
somewhere else, as another seed would. This runs pytest on the chosen tests once per numeric path and thread
count, each in a process of its own, one after another, with TRANSLATE_OUTCOME_LOG set (every statistic a test
hands its ``outcome`` fixture, see tests/conftest.py, lands there) and TRANSLATE_TEST_THREADS set. It prints
one markdown row per test and statistic: its value under each path, and the min and max over them; then the
tests that failed under each path. ``--json`` also writes every record (after each run). The paths ATEN_CPU_CAPABILITY and
ONEDNN_MAX_CPU_ISA select exist on a CPU with AVX-512 (on one without, avx512 falls back to what the CPU has).

    python scripts/outcome_spread.py                                  # tests/test_learning.py, 6 paths x 1 and 2 threads
    python scripts/outcome_spread.py -k projection --threads 1        # one test, one thread
    python scripts/outcome_spread.py --paths avx2 default --json spread.json tests/test_pix2pix.py
    python scripts/outcome_spread.py --show spread.json                # that table again
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Tuple

#: Each numeric path by name: the variables that select it. "+dnnl_avx2" caps oneDNN (the convolutions) at AVX2.
PATHS: Dict[str, Dict[str, str]] = {
    f"{aten}{dnnl}": {"ATEN_CPU_CAPABILITY": aten, **({"ONEDNN_MAX_CPU_ISA": "AVX2"} if dnnl else {})}
    for dnnl in ("", "+dnnl_avx2")
    for aten in ("avx512", "avx2", "default")
}
ROOT = Path(__file__).resolve().parent.parent


def run_pytest(tests: List[str], select: str | None, env: Dict[str, str], threads: int, work: Path) -> Tuple[List[dict], List[str]]:
    """Run pytest on ``tests`` under ``env`` and ``threads`` threads; return the records the tests logged and
    the node ids that failed."""
    log, report = work / "outcome.jsonl", work / "report.xml"
    log.unlink(missing_ok=True)
    # OMP_WAIT_POLICY=PASSIVE: threads that sleep rather than spin at each barrier; on a shared machine two spinning
    # threads made each run 5 times slower. It changes when a thread waits, not what it adds.
    environ = {**os.environ, **env, "TRANSLATE_OUTCOME_LOG": str(log), "TRANSLATE_TEST_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), environ.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *tests]
    subprocess.run([*command, *(["-k", select] if select else [])], cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, check=False)
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    failed = []
    for case in ET.parse(report).iter("testcase") if report.exists() else []:
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    return records, failed


def table(runs: Dict[str, Tuple[List[dict], List[str]]]) -> str:
    """One markdown row per (test, seed, statistic): the value under each run, then the min and max over them."""
    values: Dict[Tuple[str, str, str], Dict[str, float]] = {}
    for run, (records, _) in runs.items():
        for record in records:
            test, seed = record["test"].split("::")[-1], str(record.get("seed", ""))
            for name, value in record.items():
                if name not in ("test", "seed") and isinstance(value, (int, float)):
                    values.setdefault((test, seed, name), {})[run] = float(value)
    lines = ["| test | seed | statistic | " + " | ".join(runs) + " | min | max |", "|" + "---|" * (len(runs) + 5)]
    for (test, seed, name), found in values.items():
        cells = [f"{found[run]:.3f}" if run in found else "-" for run in runs]
        lines.append(f"| {test} | {seed} | {name} | " + " | ".join(cells) + f" | {min(found.values()):.3f} | {max(found.values()):.3f} |")
    lines += ["", "| run | failed |", "|---|---|"]
    lines += [f"| {run} | {', '.join(failed) or 'none'} |" for run, (_, failed) in runs.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", nargs="*", default=["tests/test_learning.py"], help="pytest paths or node ids")
    parser.add_argument("-k", dest="select", help="pytest's -k expression")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS), help="numeric paths (default: all)")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch threads of each run (default: 1 2)")
    parser.add_argument("--json", type=Path, help="also write every record here (rewritten after each run)")
    parser.add_argument("--show", type=Path, help="print the table of a --json file and run nothing")
    args = parser.parse_args()
    if args.show:
        print(table({run: (found["records"], found["failed"]) for run, found in json.loads(args.show.read_text()).items()}))
        return
    runs: Dict[str, Tuple[List[dict], List[str]]] = {}
    with tempfile.TemporaryDirectory() as work:
        for threads in args.threads:
            for path in args.paths:
                name = f"{path} t{threads}"
                start = time.perf_counter()
                runs[name] = run_pytest(args.tests, args.select, PATHS[path], threads, Path(work))
                print(f"{name}: {time.perf_counter() - start:.0f} s, failed: {runs[name][1] or 'none'}", file=sys.stderr, flush=True)
                if args.json:  # after each run: a long sweep stopped midway keeps what it measured
                    args.json.write_text(json.dumps({run: {"records": r, "failed": f} for run, (r, f) in runs.items()}, indent=1))
    print(table(runs))


if __name__ == "__main__":
    main()
