"""Tiles without seams, in bounded memory, and translate-apply's speed: the measurements behind the README.

    python scripts/bench_tiles.py --out benchmark            # all three parts, on the CPU
    python scripts/bench_tiles.py --part psnr --generator data/pretrained/horse2zebra/latest_net_G.pth

Parts (each writes its numbers into ``<out>/bench_tiles.json`` and prints a table):

- ``psnr``: a photo (matplotlib's Grace Hopper sample, resized to ``--size``) through CycleGAN's ResNet-9
  generator (ngf 64; random weights with the reference's initialisation unless ``--generator`` names a
  trained file) whole, then in tiles: with the whole image's norm statistics (translate's tiling), with each
  tile's own statistics (blended as translate blends), and hand-tiled (no overlap, own statistics). PSNR
  against the untiled image, and the seam measure (:func:`translate.inference.tiles.seam_ratio`) next to the
  untiled image's own value at the same borders.
- ``memory``: ``translate-apply`` on a 4096 x 4096 photo with ``tile=512 overlap=64`` in a child process on
  the CPU; its peak resident memory (``ru_maxrss``). The generator is ResNet with ngf 64 and no residual
  block: the same widest activations as ResNet-9 (ngf channels at full resolution, 4 ngf at a quarter), which
  set the peak, at a fraction of the compute. ``--batch-size`` tiles per forward pass (default 4).
- ``overlap``: how tiled agrees with untiled by generator, weights, image, tile and overlap (the default
  overlap included: the generator's receptive field, :func:`translate.inference.tiles.generator_reach`). ResNet-6,
  ResNet-9 (instance norm) and U-Net-256 (batch norm, eval) at ``--ngf`` (default 16: the receptive field and
  the tiling do not depend on it), each with random weights (the reference's initialisation) and trained
  briefly (:func:`train_for_context`). Tiles are spread evenly, so the overlap in effect is printed too.
- ``big``: one ``--side`` x ``--side`` image (the photo repeated, an in-memory array: Pillow's pixel limit
  never applies) through ``Translator.translate_to_pixels`` (translate-apply's path for one image) with a
  ResNet of ngf 8 and no residual block, ``--tile``, the first of ``--overlaps``, ``--batch-size``; the
  process's peak resident memory (``VmHWM``) and the size of the image buffers (input and output pixels).
  Run one side per process (each keeps its own peak).
- ``speed``: ``--images`` photos of 256 x 256 through ResNet-9: translate-apply (batches, one image read ahead)
  against a loop of ``g(Image.open(path)).save(...)``, one image at a time. Images/s of each.

Set OMP_NUM_THREADS (the numbers in the README used 1) and say how loaded the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

from translate.inference.tiles import ImageStatistics, plan_tiles, seam_ratio
from translate.inference.translator import Translator, load
from translate.networks.generators import ResnetGenerator, UnetGenerator
from translate.networks.init import init_weights


def photo(height: int, width: int) -> np.ndarray:
    """matplotlib's sample photo (a real one: skin, uniform, background) at ``height`` x ``width``."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return np.asarray(Image.open(path).convert("RGB").resize((width, height), Image.BICUBIC))


def generator(ngf: int, n_blocks: int, path: Optional[str]) -> Translator:
    if path:
        return load(path, device="cpu")
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(3, 3, ngf=ngf, norm="instance", n_blocks=n_blocks))
    return Translator(net, f"ResNet ngf={ngf} n_blocks={n_blocks}, reference init, seed 0", torch.device("cpu"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def part_psnr(args: argparse.Namespace) -> Dict[str, Any]:
    g = generator(64, 9, args.generator)
    h, w = args.size
    pixels = photo(h, w)
    start = time.perf_counter()
    whole = g(pixels)
    whole_s = time.perf_counter() - start
    rows = []
    for overlap in args.overlaps:
        plan = plan_tiles(h, w, g.multiple, args.tile, overlap)
        start = time.perf_counter()
        tiled = g(pixels, tile=args.tile, overlap=overlap)
        seconds = time.perf_counter() - start
        gather = ImageStatistics.gather
        ImageStatistics.gather = lambda self, first, sweep: None  # each tile's own statistics
        try:
            own = g(pixels, tile=args.tile, overlap=overlap)
        finally:
            ImageStatistics.gather = gather
        rows.append(
            {
                "tile": args.tile,
                "overlap": overlap,
                "tiles": plan.count,
                # Tiles are spread evenly, so neighbours may overlap by more than asked.
                "overlap_effective": plan.overlap,
                "psnr_image_stats_db": psnr(tiled, whole),
                "psnr_tile_stats_db": psnr(own, whole),
                "seam_image_stats": seam_ratio(tiled, plan),
                "seam_tile_stats": seam_ratio(own, plan),
                "seam_untiled_same_borders": seam_ratio(whole, plan),
                "seconds_tiled": seconds,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    step = g.multiple * (args.tile // g.multiple)
    hand = np.zeros_like(whole)
    for top in range(0, h, step):
        for left in range(0, w, step):
            hand[top : top + step, left : left + step] = g(pixels[top : top + step, left : left + step])
    hand_plan = plan_tiles(h, w, g.multiple, step, 0)
    return {
        "generator": g.description,
        "image": f"grace_hopper.jpg resized to {w}x{h}",
        "seconds_untiled": whole_s,
        "tiled": rows,
        "hand_tiled": {
            "tile": step,
            "psnr_db": psnr(hand, whole),
            "seam": seam_ratio(hand, hand_plan),
            "seam_untiled_same_borders": seam_ratio(whole, hand_plan),
        },
    }


def blurred(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x`` ``[N, C, H, W]`` blurred with a Gaussian of ``sigma`` pixels (reflected at the borders)."""
    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = (k / k.sum()).repeat(x.shape[1], 1, 1)
    y = torch.nn.functional.pad(x, (radius,) * 4, mode="reflect")
    y = torch.nn.functional.conv2d(y, k[:, :, None, :], groups=x.shape[1])
    return torch.nn.functional.conv2d(y, k[:, :, :, None], groups=x.shape[1])


def train_for_context(net: torch.nn.Module, steps: int, crop: int, pixels: np.ndarray) -> Tuple[float, float]:
    """``net`` after ``steps`` of Adam (lr 2e-4, L1, batches of 4 random ``crop`` x ``crop`` crops of ``pixels``,
    flipped at random) towards the crop blurred by a Gaussian of 8 px with its colour channels rotated: a
    translation that needs the context around each pixel, so the trained weights use the receptive field more
    than random ones. Leaves ``net`` in eval mode; returns the L1 loss of the first and the last step."""
    x_all = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float()[None] / 127.5 - 1
    target_all = blurred(x_all, 8.0).roll(1, dims=1)
    rng = np.random.default_rng(0)
    opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))
    net.train()
    h, w = pixels.shape[:2]
    losses = []
    for _ in range(steps):
        tops, lefts = rng.integers(0, h - crop + 1, 4), rng.integers(0, w - crop + 1, 4)
        x = torch.cat([x_all[:, :, t : t + crop, s : s + crop] for t, s in zip(tops, lefts)])
        y = torch.cat([target_all[:, :, t : t + crop, s : s + crop] for t, s in zip(tops, lefts)])
        if rng.random() < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        loss = (net(x) - y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    return losses[0], losses[-1]


#: (family, net for ngf, [(image H, W, tile, overlap or None for the default)], crop of training). The first
#: three ResNet cases are the user's of issue #30.
OVERLAP_CASES = (
    (
        "ResNet-6",
        lambda ngf: ResnetGenerator(3, 3, ngf=ngf, norm="instance", n_blocks=6),
        [(192, 256, 64, 16), (192, 256, 64, 32), (192, 256, 128, 16), (192, 256, 128, None), (384, 512, 256, None)],
        96,
    ),
    (
        "ResNet-9",
        lambda ngf: ResnetGenerator(3, 3, ngf=ngf, norm="instance", n_blocks=9),
        [(192, 256, 64, 16), (192, 256, 64, 32), (192, 256, 128, 16), (384, 512, 256, 64), (384, 512, 256, None)],
        96,
    ),
    (
        "U-Net-256",
        lambda ngf: UnetGenerator(3, 3, 8, ngf=ngf, norm="batch"),
        [(768, 1024, 512, 256), (768, 1024, 768, 256), (1024, 1024, 768, 512)],
        256,
    ),
)


def part_overlap(args: argparse.Namespace) -> Dict[str, Any]:
    rows = []
    for family, build, cases, crop in OVERLAP_CASES:
        for weights in ("random", "trained"):
            torch.manual_seed(0)
            net = init_weights(build(args.ngf))
            if weights == "trained":
                start = time.perf_counter()
                first, last = train_for_context(net, args.train_steps, crop, photo(384, 512))
                print(
                    f"{family}: trained {args.train_steps} steps in {time.perf_counter() - start:.0f} s, L1 {first:.3f} -> {last:.3f}",
                    flush=True,
                )
            g = Translator(net, f"{family} ngf={args.ngf}, {weights}", torch.device("cpu"))
            for h, w, tile, overlap in cases:
                pixels = photo(h, w)
                plan = g.plan(h, w, tile, overlap)
                start = time.perf_counter()
                tiled = g(pixels, tile=tile, overlap=overlap)
                seconds = time.perf_counter() - start
                row = {
                    "generator": family,
                    "weights": weights,
                    "reach": g.reach,
                    "default_overlap": g.default_overlap,
                    "image": f"{w}x{h}",
                    "tile": tile,
                    "tile_used": max(plan.rows.spans[0][1] - plan.rows.spans[0][0], plan.cols.spans[0][1] - plan.cols.spans[0][0]),
                    "overlap": overlap,
                    "overlap_effective": plan.overlap,
                    "tiles": plan.count,
                    "psnr_db": psnr(tiled, g(pixels)),
                    "seconds_tiled": seconds,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(overlap_table(rows), flush=True)
    return {"ngf": args.ngf, "train_steps": args.train_steps, "image": "grace_hopper.jpg resized", "rows": rows}


def overlap_table(rows: List[Dict[str, Any]]) -> str:
    """The overlap part's rows as a Markdown table: one line per (generator, image, tile, overlap), the PSNR
    with random and with trained weights side by side."""
    lines = [
        "| generator (reach, default overlap) | image | tile (used) | overlap (in effect) | tiles | PSNR, random weights | PSNR, trained |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = list(dict.fromkeys((r["generator"], r["image"], r["tile"], r["overlap"]) for r in rows))
    for key in keys:
        by = {r["weights"]: r for r in rows if (r["generator"], r["image"], r["tile"], r["overlap"]) == key}
        r = next(iter(by.values()))
        tile = f"{r['tile']} ({r['tile_used']})" if r["tile_used"] != r["tile"] else str(r["tile"])
        overlap = "default" if r["overlap"] is None else str(r["overlap"])
        db = {w: f"{by[w]['psnr_db']:.1f} dB" if w in by else "" for w in ("random", "trained")}
        lines.append(
            f"| {r['generator']} ({r['reach']}, {r['default_overlap']}) | {r['image']} | {tile} | {overlap} ({r['overlap_effective']}) "
            f"| {r['tiles']} | {db['random']} | {db['trained']} |"
        )
    return "\n".join(lines)


def part_memory(args: argparse.Namespace) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        Image.fromarray(photo(4096, 4096)).save(folder / "big.png")
        torch.manual_seed(0)
        torch.save(init_weights(ResnetGenerator(3, 3, ngf=64, norm="instance", n_blocks=0)).state_dict(), folder / "g.pth")
        command = [
            str(Path(sys.executable).parent / "translate-apply"),
            f"run={folder / 'g.pth'}",
            f"input={folder / 'big.png'}",
            f"output={folder / 'out'}",
            "tile=512",
            "overlap=64",
            f"batch_size={args.batch_size}",
            "device=cpu",
            "progress_bar=false",
        ]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(proc.stdout + proc.stderr)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        size = Image.open(folder / "out" / "big.png").size
    result = {
        "command": " ".join(["translate-apply", *command[1:]]).replace(str(folder), "<tmp>"),
        "generator": "ResNet ngf=64 n_blocks=0 (ResNet-9's widest activations), reference init",
        "output_size": list(size),
        "peak_rss_mib": peak_mib,
        "seconds": seconds,
    }
    print(json.dumps(result), flush=True)
    return result


def vm_hwm_mib() -> float:
    """This process's peak resident memory so far (``VmHWM`` of /proc/self/status), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def part_big(args: argparse.Namespace) -> Dict[str, Any]:
    side = args.side
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(3, 3, ngf=8, norm="instance", n_blocks=0))
    g = Translator(net, "ResNet ngf=8 n_blocks=0, reference init, seed 0", torch.device("cpu"), batch_size=args.batch_size)
    # The photo repeated into one side x side array, filled in place: no second full-size copy is ever made.
    piece = photo(1000, 1000)
    pixels = np.empty((side, side, 3), np.uint8)
    for top in range(0, side, 1000):
        for left in range(0, side, 1000):
            block = pixels[top : top + 1000, left : left + 1000]
            block[...] = piece[: block.shape[0], : block.shape[1]]
    before_mib = vm_hwm_mib()
    start = time.perf_counter()
    out = g.translate_to_pixels(pixels, 255, args.tile, args.overlaps[0])
    seconds = time.perf_counter() - start
    plan = g.plan(side, side, args.tile, args.overlaps[0])
    result = {
        "side": side,
        "generator": g.description,
        "tile": args.tile,
        "overlap": args.overlaps[0],
        "tiles": plan.count,
        "batch_size": args.batch_size,
        "path": "Translator.translate_to_pixels (what translate-apply runs on one image: band by band into pixels)",
        "image_buffers_mib": (pixels.nbytes + out.nbytes) / 2**20,
        "peak_before_translating_mib": before_mib,
        "peak_vm_hwm_mib": vm_hwm_mib(),
        "seconds": seconds,
    }
    print(json.dumps(result), flush=True)
    return result


def part_speed(args: argparse.Namespace) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = photo(512, 512)
        (folder / "in").mkdir()
        for i in range(args.images):  # different crops of the photo
            Image.fromarray(np.ascontiguousarray(np.roll(big, 37 * i, axis=1)[:256, :256])).save(folder / "in" / f"{i:03d}.png")
        torch.manual_seed(0)
        torch.save(init_weights(ResnetGenerator(3, 3, ngf=64, norm="instance", n_blocks=9)).state_dict(), folder / "g.pth")
        paths = sorted((folder / "in").iterdir())

        g = load(folder / "g.pth", device="cpu", batch_size=1)
        g(np.asarray(Image.open(paths[0])))  # warm-up
        (folder / "loop").mkdir()
        start = time.perf_counter()
        for path in paths:
            g(Image.open(path)).save(folder / "loop" / path.name)
        loop_s = time.perf_counter() - start

        from translate.cli.apply import main as apply_main

        start = time.perf_counter()
        try:
            apply_main(
                [
                    f"run={folder / 'g.pth'}",
                    f"input={folder / 'in'}",
                    f"output={folder / 'apply'}",
                    "device=cpu",
                    "progress_bar=false",
                    f"batch_size={args.batch_size}",
                ]
            )
        except SystemExit as exit:
            if exit.code:
                raise
        apply_s = time.perf_counter() - start
        same = all(
            np.array_equal(np.asarray(Image.open(folder / "loop" / p.name)), np.asarray(Image.open(folder / "apply" / p.name)))
            for p in paths
        )
    result = {
        "images": args.images,
        "size": "256x256",
        "generator": "ResNet-9 ngf=64 (CycleGAN's), reference init",
        "loop_images_per_s": args.images / loop_s,
        "apply_images_per_s": args.images / apply_s,
        "apply_batch_size": args.batch_size,
        "speedup": loop_s / apply_s,
        "same_pixels": same,
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["psnr", "memory", "speed", "overlap", "big", "all"], default="all")
    parser.add_argument("--out", type=Path, default=Path("benchmark"))
    parser.add_argument("--generator", help="a trained generator (run, file or pretrained name) for the psnr part")
    parser.add_argument("--size", type=int, nargs=2, default=[384, 512], metavar=("H", "W"))
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlaps", type=int, nargs="+", default=[64])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--ngf", type=int, default=16, help="the overlap part's generator width")
    parser.add_argument("--train-steps", type=int, default=80, help="the overlap part's brief training")
    parser.add_argument("--side", type=int, default=16000, help="the big part's image side")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench_tiles.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results["machine"] = {"threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "load": os.getloadavg()}
    parts = {"psnr": part_psnr, "memory": part_memory, "speed": part_speed, "overlap": part_overlap}
    for name in parts if args.part == "all" else [args.part]:
        if name == "big":  # one entry per side: each size is its own process, for its own peak memory
            results.setdefault("big", {})[str(args.side)] = part_big(args)
        else:
            results[name] = parts[name](args)
        path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
