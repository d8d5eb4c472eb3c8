"""Odd files and arrays through ``translate.load(...)`` and ``translate-apply``: each is translated (at its own
size, in the mode and bit depth it should have) or refused in one line that names it; none raises anything
else, and none stops a folder run with ``skip_bad=true``.

The generator is the tiny ResNet of test_apply (ngf 8, one residual block), as a reference-format file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

import translate
from test_apply import reference_file, resnet, scene
from translate.cli.apply import main as apply_main
from translate.errors import TranslateError

pytest.importorskip("av")  # 16-bit colour is written through PyAV

#: What a file should come out as: (Pillow mode, PNG bit depth or None) at the input's size; None: refused.
Expect = Optional[Tuple[str, Optional[int]]]


def rng_pixels(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8).squeeze()


def write_odd_files(folder: Path) -> Dict[str, Expect]:
    """Every odd file, by name, and what it should come out as from translate-apply (through an RGB generator)."""
    folder.mkdir(parents=True, exist_ok=True)
    expect: Dict[str, Expect] = {}

    def save(name: str, img: Image.Image, out: Expect, **options) -> None:
        img.save(folder / name, **options)
        expect[name] = out

    save("one_pixel.png", Image.fromarray(rng_pixels(1, 1).reshape(1, 1, 3)), ("RGB", 8))
    save("two_by_two.png", Image.fromarray(rng_pixels(2, 2)), ("RGB", 8))
    save("strip_1x5000.png", Image.fromarray(rng_pixels(1, 5000).reshape(1, 5000, 3)), ("RGB", 8))
    save("cmyk.jpg", Image.fromarray(rng_pixels(9, 11, 4), mode="CMYK"), ("RGB", None), quality=95)
    palette = Image.fromarray(scene(10, 12)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    save("palette.png", palette, ("RGB", 8), transparency=0)
    save("gray_alpha.png", Image.fromarray(rng_pixels(7, 5, 2), mode="LA"), ("RGB", 8))
    deep = (np.random.default_rng(1).random((6, 9)) * 65535).astype(np.uint16)
    save("gray16.png", Image.fromarray(deep), ("RGB", 16))  # 16-bit gray through an RGB generator: 16-bit RGB
    save("rgba.png", Image.fromarray(rng_pixels(8, 6, 4), mode="RGBA"), ("RGB", 8))
    frames = [Image.fromarray(scene(6, 7, seed=i)) for i in range(3)]
    save("animated.webp", frames[0], ("RGB", None), save_all=True, append_images=frames[1:], duration=100, lossless=True)
    save("pages.tif", frames[0], ("RGB", None), save_all=True, append_images=frames[1:])
    # .gif is not an image type translate-apply writes: a folder run leaves it alone and says so
    save("animated.gif", frames[0], None, save_all=True, append_images=frames[1:])
    (folder / "truncated.png").write_bytes(_png_of(scene(40, 40))[:200])
    expect["truncated.png"] = None
    jpeg = folder / "truncated.jpg"
    Image.fromarray(scene(40, 40)).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    expect["truncated.jpg"] = None
    (folder / "empty.png").write_bytes(b"")
    expect["empty.png"] = None
    (folder / "not_an_image.jpg").write_text("a shopping list, not a photo\n")
    expect["not_an_image.jpg"] = None
    os.symlink("loop.png", folder / "loop.png")  # points at itself
    expect["loop.png"] = None
    # A folder named like an image: a folder run walks into it; the API refuses it in one line.
    (folder / "x.png").mkdir()
    (folder / "x.png" / "inside.png").write_bytes(_png_of(scene(5, 6)))
    expect["x.png/inside.png"] = ("RGB", 8)
    return expect


def _png_of(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_depth(path: Path) -> int:
    """The bit depth a PNG's header declares (byte 24: after the signature, the IHDR length, type, width, height)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return data[24]


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> Tuple[Path, Dict[str, Expect]]:
    folder = tmp_path_factory.mktemp("odd") / "in"
    return folder, write_odd_files(folder)


@pytest.fixture(scope="module")
def gen_file(tmp_path_factory) -> Path:
    return reference_file(resnet(), tmp_path_factory.mktemp("gen") / "latest_net_G.pth")


def one_line(err: TranslateError, *needles: str) -> None:
    message = str(err)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message


def check_output(path: Path, source: Path, expect: Tuple[str, Optional[int]]) -> None:
    """``path`` is the translation of ``source``: at its size, in the expected mode and (PNG) bit depth."""
    mode, depth = expect
    with Image.open(source) as src:
        size, fmt = src.size, src.format
    with Image.open(path) as out:
        assert (out.size, out.mode, out.format) == (size, mode, fmt), path
        assert getattr(out, "n_frames", 1) == 1
    if path.suffix == ".png" and depth is not None:
        assert png_depth(path) == depth, path


# ------------------------------------------------------------------------------------------------- the API


def test_every_odd_file_through_the_api_is_translated_or_refused_in_one_line(odd, gen_file, caplog):
    folder, expect = odd
    g = translate.load(gen_file, device="cpu")
    names = [*expect, "x.png"]
    for name in names:
        path = folder / name
        caplog.clear()
        try:
            out = g(path)
        except TranslateError as err:
            assert name == "x.png" or expect[name] is None, f"{name}: {err}"
            one_line(err, str(path))
            continue
        assert expect[name] is not None or name == "animated.gif", name  # the API reads a GIF's first frame
        with Image.open(path) as src:
            width, height = src.size
        if expect.get(name) == ("RGB", 16):  # 16 bits through an RGB generator: a uint16 array
            assert isinstance(out, np.ndarray) and out.dtype == np.uint16 and out.shape == (height, width, 3), name
        else:
            assert out.mode == "RGB" and out.size == (width, height), name
        # what was converted is said in one line naming the file
        said = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
        assert len(said) <= 1, said
        if name in ("cmyk.jpg", "palette.png", "gray_alpha.png", "rgba.png", "animated.webp", "pages.tif", "animated.gif"):
            assert said, f"{name}: its conversion was not said"


@pytest.mark.parametrize(
    "array, shape",
    [
        (np.zeros((1, 1, 3), np.uint8), (1, 1, 3)),
        (np.zeros((2, 2, 3), np.uint8), (2, 2, 3)),
        (np.zeros((1, 5000, 3), np.uint8), (1, 5000, 3)),
        (np.zeros((5000, 1), np.uint8), (5000, 1, 3)),
        (np.zeros((3, 2, 4), np.uint8), (3, 2, 3)),
        (np.full((2, 3, 3), 40000, np.uint16), (2, 3, 3)),
        (torch.zeros(3, 1, 1), (3, 1, 1)),
        (np.zeros((0, 5, 3), np.uint8), None),
        (np.zeros((4, 4, 2), np.uint8), None),
        (np.zeros((4, 4, 3), np.float64), None),
        (np.zeros((4, 4, 3), bool), None),
        (np.zeros((2, 4, 4, 3), np.uint8), None),
        (torch.zeros(3, 0, 4), None),
        (torch.zeros(3, 4, 4, dtype=torch.uint8), None),
        ([np.zeros((1, 1, 3), np.uint8), np.zeros((2, 7, 3), np.uint8)], [(1, 1, 3), (2, 7, 3)]),
        (b"\x89PNG", None),
    ],
)
def test_every_odd_array_through_the_api_is_translated_or_refused_in_one_line(gen_file, array, shape):
    g = translate.load(gen_file, device="cpu", batch_size=2)
    if shape is None:
        with pytest.raises(TranslateError) as caught:
            g(array)
        one_line(caught.value, "image")
        return
    out = g(array)
    got = [tuple(o.shape) for o in out] if isinstance(out, list) else tuple(out.shape)
    assert got == shape
    if isinstance(array, np.ndarray):
        assert out.dtype == array.dtype


# ------------------------------------------------------------------------------------------- translate-apply


def apply(capsys, *args: str) -> Tuple[int, str]:
    """translate-apply in this process: its exit status (0 when it returned) and everything it printed."""
    try:
        apply_main([*args, "device=cpu", "progress_bar=false"])
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_folder_of_every_odd_file_is_translated_file_by_file_with_skip_bad(odd, gen_file, tmp_path, capsys):
    folder, expect = odd
    code, text = apply(capsys, f"run={gen_file}", f"input={folder}", f"output={tmp_path / 'out'}", "skip_bad=true")
    assert code == 0 and "Traceback" not in text, text
    lines = text.strip().splitlines()
    for name, out in expect.items():
        mentions = [line for line in lines if name in line]
        if out is None:
            assert len(mentions) == 1, (name, text)  # left out (unreadable) or left alone (not an image), once
            assert not (tmp_path / "out" / name).exists()
        else:
            assert len(mentions) <= 1, (name, text)  # at most one line of what was converted
            check_output(tmp_path / "out" / name, folder / name, out)
    written = sum(out is not None for out in expect.values())
    bad = sum(out is None for name, out in expect.items() if name != "animated.gif")
    assert f"wrote {written} images ({bad} unreadable left out)" in lines[-1], text


def test_without_skip_bad_a_folder_stops_at_its_first_bad_file_in_one_line(odd, gen_file, tmp_path, capsys):
    folder, _ = odd
    code, text = apply(capsys, f"run={gen_file}", f"input={folder}", f"output={tmp_path / 'out'}")
    assert code == 2 and "Traceback" not in text, text
    errors = [line for line in text.splitlines() if "error:" in line]
    assert len(errors) == 1 and "empty.png" in errors[0], text  # the first bad file in name order


@pytest.mark.parametrize(
    "name",
    ["one_pixel.png", "strip_1x5000.png", "cmyk.jpg", "gray16.png", "pages.tif", "animated.gif", "empty.png", "loop.png", "x.png"],
)
def test_each_odd_file_alone_is_translated_or_refused_in_one_line(odd, gen_file, tmp_path, capsys, name):
    folder, expect = odd
    code, text = apply(capsys, f"run={gen_file}", f"input={folder / name}", f"output={tmp_path / 'out'}")
    assert "Traceback" not in text and len(text.strip().splitlines()) <= 4, text
    if name == "x.png":  # a folder: translated as one
        assert code == 0
        check_output(tmp_path / "out" / "inside.png", folder / "x.png" / "inside.png", ("RGB", 8))
    elif expect[name] is None:
        assert code == 2 and name in text, text
    else:
        assert code == 0, text
        check_output(tmp_path / "out" / name, folder / name, expect[name])
