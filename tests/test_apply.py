"""Using what you trained: ``translate.load`` on every kind of image, images at their own size, tiles without
seams, translate-apply on folders and video, exports with the preprocessing baked in.

Generators are tiny (ngf 8, one or two residual blocks) and made here, saved as reference-format files; one
tiny CycleGAN run trains two steps for what needs a run (directions, weights), one tiny cGAN run one step.
Odd files and arrays: test_apply_fuzz.py.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageOps

import helpers
import translate
from _models_helpers import TINY_CYCLEGAN, load_run_model, train, write_folder
from translate.cli.apply import main as apply_main
from translate.config import PILLOW_MAX_IMAGE_PIXELS
from translate.errors import BadImageError, CheckpointError, ConfigError, InputError
from translate.inference import tiles
from translate.inference.images import write_picture
from translate.inference.tiles import border_index, plan_tiles, seam_ratio
from translate.networks.generators import ResnetGenerator
from translate.networks.init import init_weights

av = pytest.importorskip("av")


def resnet(in_nc: int = 3, out_nc: int = 3, n_blocks: int = 1, seed: int = 0) -> nn.Module:
    """A tiny CycleGAN-style generator (instance norm) with the reference's initialisation."""
    torch.manual_seed(seed)
    return init_weights(ResnetGenerator(in_nc, out_nc, ngf=8, norm="instance", n_blocks=n_blocks)).eval()


def reference_file(net: nn.Module, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def eager(net: nn.Module, pixels: np.ndarray) -> np.ndarray:
    """What the generator makes of uint8 ``[H, W, C]`` pixels: reflected to a multiple of 4, cropped back."""
    h, w = pixels.shape[:2]
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() * (2 / 255) - 1
    x = F.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect")
    with torch.no_grad():
        y = net(x)[0, :, :h, :w]
    return ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 image: smooth colour blobs under a left-to-right brightness ramp, so tiles differ in tone."""
    cells = np.random.default_rng(seed).integers(0, 256, (max(2, h // 8), max(2, w // 8), 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(cells).resize((w, h), Image.BILINEAR), dtype=np.float64)
    return (smooth * np.linspace(0.3, 1.0, w)[None, :, None]).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.fixture(scope="module")
def gen_file(tmp_path_factory) -> Path:
    return reference_file(resnet(), tmp_path_factory.mktemp("gen") / "latest_net_G.pth")


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cyclegan")
    write_folder(root / "data" / "trainA", 2, 16, seed=0, prefix="a")
    write_folder(root / "data" / "trainB", 2, 16, seed=1, prefix="b")
    train(root / "run", [*TINY_CYCLEGAN, f"data.root={root / 'data'}", "logger=none", "trainer.max_steps=2", "model.ema.decay=0.5"])
    return root / "run"


# ------------------------------------------------------------------------------------------------ the API


def test_import_translate_stays_light_and_load_is_there():
    code = "import sys, translate; assert 'torch' not in sys.modules; assert callable(translate.load); assert 'torch' in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_kind_of_image_comes_back_as_its_kind_at_its_own_size(gen_file, tmp_path):
    net = resnet()
    g = translate.load(gen_file, device="cpu", batch_size=4)  # whole images of one size go in batches
    pixels = scene(30, 45)  # neither side a multiple of 4
    expected = eager(net, pixels)

    assert np.array_equal(g(pixels), expected)
    pil = g(Image.fromarray(pixels))
    assert isinstance(pil, Image.Image) and pil.size == (45, 30) and np.array_equal(np.asarray(pil), expected)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    assert np.array_equal(np.asarray(g(tmp_path / "photo.png")), expected)
    x = torch.from_numpy(pixels).permute(2, 0, 1).float() * (2 / 255) - 1
    y = g(x)
    assert y.shape == (3, 30, 45) and torch.allclose(y, g(x[None])[0], atol=1e-5)
    assert np.array_equal(((y + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy(), expected)
    # A list is one batch per size; each comes back as if alone.
    other = scene(30, 45, seed=1)
    outs = g([pixels, other, pixels[:20]])
    assert [o.shape for o in outs] == [(30, 45, 3), (30, 45, 3), (20, 45, 3)]
    assert (
        np.array_equal(outs[0], expected)
        and np.array_equal(outs[1], eager(net, other))
        and np.array_equal(outs[2], eager(net, pixels[:20]))
    )
    # Gray in, for an RGB generator: repeated into RGB, as the datasets read gray files.
    gray = pixels[:, :, 0]
    assert np.array_equal(g(gray), eager(net, np.repeat(gray[:, :, None], 3, axis=2)))


def test_a_grayscale_generator_reads_colour_as_its_datasets_do_and_gives_gray(tmp_path):
    net = resnet(in_nc=1, out_nc=1)
    g = translate.load(reference_file(net, tmp_path / "gray.pth"), device="cpu")
    pixels = scene(24, 28)
    luma = np.asarray(Image.fromarray(pixels).convert("L"))
    out = g(pixels)
    assert out.shape == (24, 28, 1) and np.array_equal(out, eager(net, luma[:, :, None]))
    assert g(Image.fromarray(pixels)).mode == "L"
    assert g(luma).shape == (24, 28)


def test_a_cyclegan_run_translates_both_ways_with_ema_or_raw_weights(cyclegan_run):
    pixels = scene(16, 20)
    model = load_run_model(cyclegan_run)  # raw weights
    assert np.array_equal(translate.load(cyclegan_run, weights="raw", device="cpu")(pixels), eager(model.netG_A, pixels))
    assert np.array_equal(translate.load(cyclegan_run, weights="raw", direction="BtoA", device="cpu")(pixels), eager(model.netG_B, pixels))
    g = translate.load(cyclegan_run, device="cpu")
    assert not np.array_equal(g(pixels), eager(model.netG_A, pixels)), "ema should differ from raw"
    assert "G_A, ema weights, step 2" in repr(g)


def test_the_summary_says_raw_weights_for_a_run_without_a_moving_average(cgan_run):
    assert "cgan G, raw weights, the run kept no moving average, step 1" in repr(translate.load(cgan_run, device="cpu"))
    assert "cgan G, raw weights, step 1" in repr(translate.load(cgan_run, weights="raw", device="cpu"))


def test_an_image_smaller_than_the_generator_takes_is_padded_and_cropped_back(gen_file):
    """A ResNet's bottleneck must be at least 2 x 2, so sides under 8 are padded to 8 as the tiles pad
    (reflected, then the pixel the reflection ends on repeated); the output is the input's size."""
    g = translate.load(gen_file, device="cpu")
    assert g.min_side == 8
    for h, w in ((2, 2), (1, 1), (1, 30), (30, 3)):
        pixels = scene(max(h, 8), max(w, 8))[:h, :w]
        padded = pixels[np.ix_(border_index(h, max(h, 8)), border_index(w, max(w, 8)))]
        assert np.array_equal(g(pixels), eager(resnet(), padded)[:h, :w]), (h, w)
        assert g(pixels, tile=16, overlap=4).shape == pixels.shape  # in tiles too: (1, 30) makes two


def test_a_pretrained_name_loads_from_the_data_cache(gen_file, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSLATE_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(CheckpointError, match="translate-data download-model horse2zebra"):
        translate.load("horse2zebra", device="cpu")
    reference_file(resnet(), tmp_path / "data" / "pretrained" / "horse2zebra" / "latest_net_G.pth")
    pixels = scene(16, 16)
    assert np.array_equal(translate.load("horse2zebra", device="cpu")(pixels), eager(resnet(), pixels))


@pytest.mark.parametrize(
    "bad, error, needle",
    [
        (torch.zeros(1, 8, 8), InputError, "takes float [3, H, W]"),
        (np.zeros((8, 8, 2), np.uint8), InputError, "(8, 8, 2)"),
        (np.zeros((8, 8, 3), np.float32), InputError, "float32 array"),
        (torch.full((3, 8, 8), 255.0), InputError, "scale them to [-1, 1]"),
        ("missing.png", BadImageError, "missing.png"),
    ],
)
def test_bad_input_gets_one_line_naming_it(gen_file, bad, error, needle):
    g = translate.load(gen_file, device="cpu")
    with pytest.raises(error) as caught:
        g(bad)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_a_path_that_is_not_a_run_gets_one_line(gen_file, tmp_path):
    with pytest.raises(CheckpointError, match="is not a run directory"):
        translate.load(tmp_path, device="cpu")
    with pytest.raises(CheckpointError, match="no such run, checkpoint or pretrained"):
        translate.load(tmp_path / "nowhere", device="cpu")
    with pytest.raises(ConfigError, match="holds one generator"):
        translate.load(gen_file, direction="BtoA", device="cpu")


# ---------------------------------------------------------------------------------------------- tiling


def test_tiles_match_the_untiled_image_and_show_no_seam():
    """The whole image's norm statistics in every tile: the tiled translation is the untiled one at >= 40 dB,
    with no step at the tile borders. With per-tile statistics (what hand-tiling gets), neither holds."""
    from translate.inference.translator import Translator

    t = Translator(resnet(), "tiny", torch.device("cpu"))
    pixels = scene(96, 96)
    whole = t(pixels)
    tiled = t(pixels, tile=64, overlap=32)
    plan = plan_tiles(96, 96, 4, 64, 32)
    assert plan.count == 4
    assert psnr(tiled, whole) >= 40
    # The step across the tile borders is the untiled image's own there (its content's), within 2 %.
    assert abs(seam_ratio(tiled, plan) / seam_ratio(whole, plan) - 1) < 0.02
    # Hand-tiling: no overlap, each tile normalised alone: a tone step at every border.
    hand = np.zeros_like(whole)
    for top in (0, 48):
        for left in (0, 48):
            hand[top : top + 48, left : left + 48] = t(pixels[top : top + 48, left : left + 48])
    hand_plan = plan_tiles(96, 96, 4, 48, 0)
    assert psnr(hand, whole) < 30 and seam_ratio(hand, hand_plan) > 1.25 * seam_ratio(whole, hand_plan)


def test_without_the_image_statistics_tiles_disagree(monkeypatch):
    """The check above fails when the statistics pass is switched off (each tile keeps its own)."""
    from translate.inference.translator import Translator

    monkeypatch.setattr(tiles.ImageStatistics, "gather", lambda self, first, sweep: None)
    t = Translator(resnet(), "tiny", torch.device("cpu"))
    pixels = scene(96, 96)
    plan = plan_tiles(96, 96, 4, 64, 32)
    tiled, whole = t(pixels, tile=64, overlap=32), t(pixels)
    assert psnr(tiled, whole) < 35 and seam_ratio(tiled, plan) > 1.25 * seam_ratio(whole, plan)


def test_batched_tiles_give_the_tiles_one_at_a_time():
    from translate.inference.translator import Translator

    pixels = scene(80, 72)
    one = Translator(resnet(), "tiny", torch.device("cpu"), batch_size=1)(pixels, tile=32, overlap=16)
    many = Translator(resnet(), "tiny", torch.device("cpu"), batch_size=6)(pixels, tile=32, overlap=16)
    assert np.abs(one.astype(int) - many.astype(int)).max() <= 1


# ------------------------------------------------------------------------------------------ translate-apply


def write_exif_jpeg(pixels: np.ndarray, path: Path, orientation: int) -> None:
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"  # Make
    img.save(path, quality=95, exif=exif)


def test_apply_writes_every_image_at_its_size_name_format_orientation_and_depth(gen_file, tmp_path, capsys):
    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    wide = scene(30, 50)
    Image.fromarray(wide).save(photos / "wide.png")
    Image.fromarray(scene(21, 13)[:, :, 0]).save(photos / "trip" / "gray.png")
    write_exif_jpeg(scene(20, 28), photos / "trip" / "turned.jpg", orientation=6)  # stored 28x20, shown 20x28
    deep = (np.random.default_rng(0).random((18, 26)) * 65535).astype(np.uint16)
    Image.fromarray(deep).save(photos / "deep16.png")
    (photos / "notes.txt").write_text("not an image")

    apply_main([f"run={gen_file}", f"input={photos}", f"output={tmp_path / 'out'}", "device=cpu", "progress_bar=false"])
    assert "wrote 4 images" in capsys.readouterr().out
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "deep16.png",
        "trip/gray.png",
        "trip/turned.jpg",
        "wide.png",
    ]
    assert np.array_equal(np.asarray(Image.open(out / "wide.png")), eager(resnet(), wide))
    assert Image.open(out / "trip" / "gray.png").size == (13, 21)
    turned = Image.open(out / "trip" / "turned.jpg")
    assert turned.format == "JPEG" and turned.size == (20, 28)
    assert turned.getexif().get(0x0112) == 1 and turned.getexif().get(0x010F) == "TestCam"
    # 16-bit gray in: read at 16 bits, written as 16-bit RGB (PyAV); 8-bit levels would be 257 apart.
    with av.open(str(out / "deep16.png")) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name.startswith("rgb48")
        deep_out = frame.to_ndarray(format="rgb48le")
    assert deep_out.shape == (18, 26, 3) and np.any(deep_out % 257 != 0)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["output=SAME"], "overwrite the originals"),
        (["tile=64", "overlap=64"], "overlap=64 must be smaller than tile=64"),
        (["direction=sideways"], "direction=sideways"),
        (["input=nowhere/"], "input=nowhere/"),
    ],
)
def test_apply_bad_arguments_get_one_line(gen_file, tmp_path, capsys, args, needle):
    (tmp_path / "in").mkdir()
    Image.fromarray(scene(8, 8)).save(tmp_path / "in" / "a.png")
    given = {"run": str(gen_file), "input": str(tmp_path / "in"), "output": str(tmp_path / "out")}
    for arg in args:
        key, value = arg.split("=", 1)
        given[key] = given["input"] if value == "SAME" else value
    with pytest.raises(SystemExit):
        apply_main([f"{k}={v}" for k, v in given.items()] + ["device=cpu"])
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err


def test_apply_stops_on_an_unreadable_image_unless_told_to_skip_it(gen_file, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    Image.fromarray(scene(8, 8)).save(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    common = [f"run={gen_file}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}", "device=cpu", "progress_bar=false"]
    with pytest.raises(SystemExit):
        apply_main(common)
    assert "broken.jpg: cannot read image" in capsys.readouterr().err
    apply_main([*common, "skip_bad=true"])
    assert "wrote 1 image (1 unreadable left out)" in capsys.readouterr().out


def png16(path: Path, pixels: np.ndarray, exif: bytes = b"") -> None:
    """A 16-bit RGB PNG of ``[H, W, 3]`` uint16 pixels written by hand (Pillow writes none), unfiltered, with an
    eXIf chunk when ``exif`` is given (Pillow's ``Exif.tobytes()``), after the pixels (PNG allows either place):
    Pillow decodes the image to look for it, as for a PNG without one, which is what once cost 16-bit colour its depth."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w, _ = pixels.shape
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(h))
    exif_chunk = chunk(b"eXIf", exif.removeprefix(b"Exif\0\0")) if exif else b""
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(rows)) + exif_chunk + chunk(b"IEND", b""))


def read_rgb48(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name.startswith("rgb48"), frame.format.name
        return frame.to_ndarray(format="rgb48le")


def test_16_bit_colour_with_an_exif_orientation_comes_back_16_bit_and_upright(gen_file, tmp_path, capsys):
    rng = np.random.default_rng(0)
    stored = (rng.random((10, 14, 3)) * 65535).astype(np.uint16)  # 14 wide as stored; orientation 6 shows it 10 wide
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "TestCam"
    photos = tmp_path / "photos"
    photos.mkdir()
    png16(photos / "deep.png", stored, exif.tobytes())
    tif = (rng.random((9, 7, 3)) * 65535).astype(np.uint16)
    with av.open(str(photos / "deep.tif"), mode="w", format="image2") as container:
        stream = container.add_stream("tiff")
        stream.width, stream.height, stream.pix_fmt = 7, 9, "rgb48le"
        for packet in (*stream.encode(av.VideoFrame.from_ndarray(tif, format="rgb48le")), *stream.encode()):
            container.mux(packet)
    upright = np.rot90(stored, k=-1)  # orientation 6: turned a quarter clockwise to be shown
    with Image.open(photos / "deep.png") as shown:  # Pillow's own reading of the orientation, at 8 bits
        assert np.asarray(ImageOps.exif_transpose(shown)).shape == upright.shape

    g = translate.load(gen_file, device="cpu")
    expected = g(np.ascontiguousarray(upright))
    assert expected.dtype == np.uint16 and np.any(expected % 257 != 0)  # 8-bit levels would all be multiples of 257
    assert np.array_equal(g(photos / "deep.png"), expected)  # a path: the documented uint16 [H, W, 3] array

    apply_main([f"run={gen_file}", f"input={photos}", f"output={tmp_path / 'out'}", "device=cpu", "progress_bar=false"])
    assert "wrote 2 images" in capsys.readouterr().out
    assert np.array_equal(read_rgb48(tmp_path / "out" / "deep.png"), expected)
    assert np.array_equal(read_rgb48(tmp_path / "out" / "deep.tif"), g(tif))
    with Image.open(tmp_path / "out" / "deep.png") as out:  # the EXIF is kept, its orientation reset
        assert out.getexif().get(0x0112) == 1 and out.getexif().get(0x010F) == "TestCam"


def test_what_a_format_cannot_hold_is_said_when_written(tmp_path):
    deep = np.full((4, 5, 3), 40000, np.uint16)
    assert write_picture(tmp_path / "deep.jpg", deep) == ["written at 8 bits (JPEG holds 8)"]
    assert Image.open(tmp_path / "deep.jpg").mode == "RGB"
    assert write_picture(tmp_path / "deep.png", deep) == []


# ----------------------------------------------------------------------------------- what is already there


def test_existing_outputs_are_kept_and_counted_unless_overwrite(gen_file, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(scene(12, 16, seed=len(name))).save(tmp_path / "in" / name)
    common = [f"run={gen_file}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}", "device=cpu", "progress_bar=false"]
    apply_main(common)
    assert "wrote 3 images" in capsys.readouterr().out
    mine = np.zeros((3, 3, 3), np.uint8)
    Image.fromarray(mine).save(tmp_path / "out" / "a.png")  # a file of the user's where an output would go
    (tmp_path / "out" / "b.png").unlink()  # as if the job had stopped before b

    apply_main(common)
    out = capsys.readouterr().out
    assert "kept 2 existing outputs (overwrite=true replaces them)" in out and "wrote 1 image (2 existing kept)" in out
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), mine)
    assert (tmp_path / "out" / "b.png").is_file()

    apply_main([*common, "overwrite=true"])
    assert "wrote 3 images to" in capsys.readouterr().out
    assert Image.open(tmp_path / "out" / "a.png").size == (16, 12)


def test_a_glob_says_which_folder_its_outputs_are_relative_to(gen_file, tmp_path, capsys):
    (tmp_path / "shots" / "day1").mkdir(parents=True)
    Image.fromarray(scene(8, 8)).save(tmp_path / "shots" / "day1" / "a.png")
    apply_main([f"run={gen_file}", f"input={tmp_path}/shots/**/*.png", f"output={tmp_path / 'out'}", "device=cpu", "progress_bar=false"])
    out = capsys.readouterr().out
    assert f"matches 1 image; each is written under its path relative to {tmp_path / 'shots' / 'day1'}" in out
    assert (tmp_path / "out" / "a.png").is_file() and "wrote 1 image to" in out


# ---------------------------------------------------------------------------------- Pillow's pixel guard


def test_max_image_pixels_replaces_pillows_guard(gen_file, tmp_path, capsys, monkeypatch):
    assert PILLOW_MAX_IMAGE_PIXELS == 2 * Image.MAX_IMAGE_PIXELS  # the default: where Pillow refuses
    (tmp_path / "in").mkdir()
    Image.fromarray(scene(16, 16)).save(tmp_path / "in" / "big.png")
    Image.fromarray(scene(8, 8)).save(tmp_path / "in" / "small.png")
    with pytest.raises(BadImageError) as caught:
        translate.load(gen_file, device="cpu", max_image_pixels=100)(tmp_path / "in" / "big.png")
    assert "big.png: 16 x 16 is 256 pixels, more than max_image_pixels=100" in str(caught.value)
    capsys.readouterr()  # what logging outside a command printed (an earlier command's handler may be stale)
    common = [
        f"run={gen_file}",
        f"input={tmp_path / 'in'}",
        f"output={tmp_path / 'out'}",
        "device=cpu",
        "max_image_pixels=100",
        "progress_bar=false",
    ]
    with pytest.raises(SystemExit):
        apply_main(common)
    err = capsys.readouterr().err
    assert "max_image_pixels=100" in err and len(err.strip().splitlines()) == 1, err
    apply_main([*common, "skip_bad=true"])
    assert "wrote 1 image (1 unreadable left out)" in capsys.readouterr().out

    # Pillow set to refuse above 80 pixels: the default lifts its guard for translate's own, null lifts it
    # altogether, and Pillow's setting is back afterwards.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "in" / "big.png")
    assert translate.load(gen_file, device="cpu")(tmp_path / "in" / "big.png").size == (16, 16)
    assert translate.load(gen_file, device="cpu", max_image_pixels=None)(tmp_path / "in" / "big.png").size == (16, 16)
    assert Image.MAX_IMAGE_PIXELS == 40
    with pytest.raises(BadImageError, match="max_image_pixels"):
        translate.load(gen_file, device="cpu", max_image_pixels=60)(tmp_path / "in" / "big.png")


# ------------------------------------------------------------------------------------------------- the cGAN


def test_a_cgan_run_writes_samples_of_each_label(cgan_run, tmp_path, capsys):
    apply_main([f"run={cgan_run}", "labels=[3,7]", "n=2", "seed=5", f"output={tmp_path / 'digits'}", "device=cpu", "progress_bar=false"])
    assert "wrote 4 samples" in capsys.readouterr().out
    g = translate.load(cgan_run, device="cpu")
    for i, label in enumerate((3, 7)):
        drawn = g.sample([label], n=2, seed=5 + i)
        for k in range(2):
            got = np.asarray(Image.open(tmp_path / "digits" / str(label) / f"{k}.png"))
            want = ((drawn[k, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
            assert got.shape == (helpers.IMAGE_SIZE, helpers.IMAGE_SIZE) and np.array_equal(got, want)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "digits").rglob("*.png")) == [
        "digits/3/0.png",
        "digits/3/1.png",
        "digits/7/0.png",
        "digits/7/1.png",
    ]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["input=IN"], "is a cGAN: it draws digits"),
        (["labels=[3,10]"], "labels=[3, 10]: 10 is not a class of this cGAN; use 0..9"),
    ],
)
def test_a_cgan_run_given_images_or_unknown_classes_stops_in_one_line(cgan_run, tmp_path, capsys, args, needle):
    Image.fromarray(scene(8, 8)).save(tmp_path / "a.png")
    args = [a.replace("IN", str(tmp_path / "a.png")) for a in args]
    with pytest.raises(SystemExit):  # the progress bar is on: nothing but the error reaches stderr
        apply_main([f"run={cgan_run}", *args, f"output={tmp_path / 'out'}", "device=cpu"])
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_labels_for_a_generator_of_images_stops_in_one_line(gen_file, tmp_path, capsys):
    with pytest.raises(SystemExit):
        apply_main([f"run={gen_file}", "labels=[1]", f"output={tmp_path / 'out'}", "device=cpu"])
    err = capsys.readouterr().err
    assert "labels= draws samples of a cGAN" in err and len(err.strip().splitlines()) == 1, err


# ------------------------------------------------------------------------------------------------- video


def write_clip(path: Path, frames: list, rate: int) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=rate)  # lossless, so the input frames are known exactly
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "bgr0"
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_clip(path: Path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, stream.average_rate, (stream.codec_context.width, stream.codec_context.height)


def test_a_video_comes_back_at_its_rate_and_size_frame_by_frame(gen_file, tmp_path, capsys):
    frames = [scene(26, 34, seed=i) for i in range(5)]  # sides not multiples of 4 (34 is even, 26 is even)
    write_clip(tmp_path / "clip.mkv", frames, rate=12)
    apply_main([f"run={gen_file}", f"input={tmp_path / 'clip.mkv'}", f"output={tmp_path / 'out'}", "device=cpu", "batch_size=2"])
    assert "wrote 5 frames" in capsys.readouterr().out
    out, rate, size = read_clip(tmp_path / "out" / "clip.mkv")
    assert len(out) == 5 and rate == Fraction(12) and size == (34, 26)
    # H.264 keeps luma close (CRF 18) and subsamples chroma (4:2:0): compare luma, frame for frame.
    luma = [eager(resnet(), frame) @ np.array([0.299, 0.587, 0.114]) for frame in frames]
    for i, got in enumerate(out):
        scores = [psnr(got @ np.array([0.299, 0.587, 0.114]), y) for y in luma]
        assert scores[i] > 30 and scores[i] == max(scores), scores


def test_a_folder_of_frames_becomes_a_video(gen_file, tmp_path, capsys):
    for i in range(4):
        Image.fromarray(scene(16, 22, seed=i)).save(tmp_path / f"frame_{i:03d}.png")
    apply_main([f"run={gen_file}", f"input={tmp_path}/frame_*.png", f"output={tmp_path / 'movie.mkv'}", "fps=8", "device=cpu"])
    assert "wrote 4 frames" in capsys.readouterr().out
    out, rate, size = read_clip(tmp_path / "movie.mkv")
    assert len(out) == 4 and rate == Fraction(8) and size == (22, 16)
    # the video is there: kept, unless overwrite=true
    apply_main([f"run={gen_file}", f"input={tmp_path}/frame_*.png", f"output={tmp_path / 'movie.mkv'}", "fps=4", "device=cpu"])
    assert "wrote 0 frames (1 existing kept)" in capsys.readouterr().out
    assert read_clip(tmp_path / "movie.mkv")[1] == Fraction(8)


# ------------------------------------------------------------------------------------- baked preprocessing


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_an_export_with_baked_preprocessing_gives_the_pixels_of_the_api(gen_file, tmp_path, fmt):
    from translate.cli.export import main as export_main

    export_main([f"checkpoint={gen_file}", f"format={fmt}", "bake=true", "size=16", f"output={tmp_path / 'g'}.{fmt}"])
    pixels = scene(37, 50)  # another size than traced, not a multiple of 4
    expected = translate.load(gen_file, device="cpu")(pixels)
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        got = ort.InferenceSession(str(tmp_path / "g.onnx")).run(None, {"image": pixels})[0]
    else:
        got = torch.jit.load(str(tmp_path / "g.torchscript")).eval()(torch.from_numpy(pixels)).numpy()
    assert got.dtype == np.uint8 and got.shape == (37, 50, 3)
    assert np.array_equal(got, expected)
