"""Image-folder datasets (aligned, unaligned, single), their preprocessing and their conf/data presets."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from translate.config import to_typed
from translate.data.aligned import AlignedDataset
from translate.data.configs import ImageDataConfig, machine_workers
from translate.data.folders import find_images, load_image
from translate.data.single import SingleDataset
from translate.data.unaligned import UnalignedDataset
from translate.errors import BadImageError, ConfigError, DatasetLayoutError, DatasetNotFoundError, ImageTooSmallError
from translate.settings.validate import typed_data

CONF_DATA = Path(__file__).resolve().parents[1] / "conf" / "data"
GENERIC = {"aligned", "unaligned", "single"}


def cfg(root: Path, **overrides):
    """A typed data config with small sizes; no resizing or flipping unless a test asks."""
    values = {"root": str(root), "load_size": 8, "crop_size": 8, "preprocess": "none", "flip": False}
    return to_typed(ImageDataConfig, {**values, **overrides}, "data")


def checked(**values):
    """``data`` as translate-train checks it before any dataset is built."""
    return typed_data({"kind": "aligned", "root": "/data", **values})


def save(path: Path, pixels: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path)
    return path


def flat(value: int, w: int = 8, h: int = 8, channels: int = 3) -> np.ndarray:
    shape = (h, w) if channels == 1 else (h, w, channels)
    return np.full(shape, value, dtype=np.uint8)


def side_by_side(left: int, right: int, w: int = 8, h: int = 8) -> np.ndarray:
    return np.concatenate([flat(left, w, h), flat(right, w, h)], axis=1)


def level(x: torch.Tensor) -> float:
    """The 8-bit value a constant tensor in [-1, 1] came from."""
    return round(((x.float().mean().item() + 1) / 2) * 255)


def coords(w: int, h: int, marker: int) -> np.ndarray:
    """RGB image whose R and G encode x and y; B is a constant marker."""
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs * 10, ys * 10, np.full_like(xs, marker)], axis=-1).astype(np.uint8)


# ---------------------------------------------------------------- aligned


def test_aligned_side_by_side_splits_each_file_into_a_and_b(tmp_path):
    for i in range(3):
        save(tmp_path / "train" / f"{i}.png", side_by_side(10 + i, 100 + i))
    ds = AlignedDataset(cfg(tmp_path), "train", train=True)
    assert len(ds) == 3
    for i in range(3):
        item = ds[i]
        assert item["A"].shape == item["B"].shape == (3, 8, 8)
        assert item["A"].dtype == torch.float32
        assert (level(item["A"]), level(item["B"])) == (10 + i, 100 + i)
        assert item["A_path"] == item["B_path"] == str(tmp_path / "train" / f"{i}.png")


def test_aligned_separate_folders_pair_by_name_across_extensions(tmp_path):
    for i, name in enumerate(["x/001", "x/002", "003"]):
        save(tmp_path / "A" / "test" / f"{name}.png", flat(10 + i))
        save(tmp_path / "B" / "test" / f"{name}.bmp", flat(100 + i))
    ds = AlignedDataset(cfg(tmp_path), "test", train=False)
    assert len(ds) == 3
    for k in range(3):
        item = ds[k]
        a_name, b_name = Path(item["A_path"]), Path(item["B_path"])
        assert (a_name.suffix, b_name.suffix) == (".png", ".bmp")
        stem_a = a_name.relative_to(tmp_path / "A" / "test").with_suffix("")
        assert stem_a == b_name.relative_to(tmp_path / "B" / "test").with_suffix("")
        assert level(item["B"]) - level(item["A"]) == 90


def test_aligned_unpaired_names_are_listed(tmp_path):
    for name in ["a", "b", "c", "d", "e", "f", "g", "h"]:
        save(tmp_path / "A" / "train" / f"{name}.png", flat(1))
    for name in ["a", "zz"]:
        save(tmp_path / "B" / "train" / f"{name}.png", flat(1))
    with pytest.raises(DatasetLayoutError) as err:
        AlignedDataset(cfg(tmp_path), "train", train=True)
    message = str(err.value)
    assert "\n" not in message
    assert "7 in" in message and "b, c, d, e, f and 2 more" in message
    assert "1 in" in message and "zz" in message


def test_aligned_layout_missing_or_ambiguous(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"train.*A/train.*B/train"):
        AlignedDataset(cfg(tmp_path), "train", train=True)
    save(tmp_path / "train" / "0.png", side_by_side(1, 2))
    save(tmp_path / "A" / "train" / "0.png", flat(1))
    with pytest.raises(DatasetLayoutError, match="keep one layout"):
        AlignedDataset(cfg(tmp_path), "train", train=True)


def test_aligned_btoa_swaps_roles_and_gives_each_side_its_channels(tmp_path):
    save(tmp_path / "combined" / "val" / "0.png", side_by_side(40, 200))
    config = cfg(tmp_path / "combined", direction="BtoA", input_nc=1, output_nc=3)
    ds = AlignedDataset(config, "val", train=False)
    item = ds[0]
    assert item["A"].shape == (1, 8, 8) and item["B"].shape == (3, 8, 8)
    assert (level(item["A"]), level(item["B"])) == (200, 40)

    save(tmp_path / "sep" / "A" / "val" / "0.png", flat(40))
    save(tmp_path / "sep" / "B" / "val" / "0.png", flat(200))
    item = AlignedDataset(cfg(tmp_path / "sep", direction="BtoA"), "val", train=False)[0]
    assert "/B/val/" in item["A_path"] and "/A/val/" in item["B_path"]
    assert (level(item["A"]), level(item["B"])) == (200, 40)


@pytest.mark.parametrize("preprocess", ["crop", "resize_and_crop", "scale_width_and_crop"])
def test_aligned_pair_shares_crop_and_flip(tmp_path, preprocess):
    pair = np.concatenate([coords(16, 12, marker=0), coords(16, 12, marker=255)], axis=1)
    save(tmp_path / "train" / "0.png", pair)
    ds = AlignedDataset(cfg(tmp_path, preprocess=preprocess, load_size=10, crop_size=8, flip=True), "train", train=True)
    corners, flips = set(), set()
    for seed in range(24):
        item = ds[(0, seed)]
        a, b = item["A"], item["B"]
        assert a.shape == b.shape == (3, 8, 8)
        assert torch.equal(a[:2], b[:2]), f"A and B were cropped or flipped differently for seed {seed}"
        assert level(a[2]) == 0 and level(b[2]) == 255
        corners.add((a[0, 0, 0].item(), a[1, 0, 0].item()))
        flips.add(bool(a[0, 0, 0] > a[0, 0, -1]))
    assert len(corners) > 1 and flips == {True, False}


def test_aligned_separate_pair_of_different_sizes_is_refused_when_cropping(tmp_path):
    save(tmp_path / "A" / "train" / "0.png", flat(1, 8, 8))
    save(tmp_path / "B" / "train" / "0.png", flat(1, 12, 12))
    ds = AlignedDataset(cfg(tmp_path, preprocess="crop"), "train", train=True)
    with pytest.raises(DatasetLayoutError, match=r"0\.png \(8x8\).*0\.png \(12x12\)"):
        ds[0]
    ds = AlignedDataset(cfg(tmp_path, preprocess="resize_and_crop"), "train", train=True)
    assert ds[0]["A"].shape == ds[0]["B"].shape == (3, 8, 8)


# ---------------------------------------------------------------- unaligned


def unaligned_root(tmp_path: Path, n_a: int = 3, n_b: int = 5, split: str = "train") -> Path:
    for i in range(n_a):
        save(tmp_path / f"{split}A" / f"a{i}.png", flat(10 + i))
    for i in range(n_b):
        save(tmp_path / f"{split}B" / f"b{i}.jpg", flat(100 + 20 * i))
    return tmp_path


def test_unaligned_length_is_the_larger_side_and_a_cycles(tmp_path):
    ds = UnalignedDataset(cfg(unaligned_root(tmp_path)), "train", train=True)
    assert len(ds) == 5
    assert [Path(ds[i]["A_path"]).name for i in range(5)] == [f"a{i % 3}.png" for i in range(5)]
    assert ds.info == {"input_nc": 3, "output_nc": 3, "image_size": None}


def test_unaligned_serial_b_follows_index_and_random_b_follows_seed(tmp_path):
    root = unaligned_root(tmp_path)
    serial = UnalignedDataset(cfg(root, serial_batches=True), "train", train=True)
    assert [Path(serial[(i, 99 + i)]["B_path"]).name for i in range(5)] == [f"b{i}.jpg" for i in range(5)]
    rand = UnalignedDataset(cfg(root), "train", train=True)
    drawn = [rand[(0, seed)]["B_path"] for seed in range(30)]
    assert len(set(drawn)) >= 3
    assert drawn == [rand[(0, seed)]["B_path"] for seed in range(30)]


def test_unaligned_btoa_takes_input_from_the_b_folder(tmp_path):
    root = unaligned_root(tmp_path, split="test")
    ds = UnalignedDataset(cfg(root, direction="BtoA", input_nc=1, serial_batches=True), "test", train=False)
    item = ds[1]
    assert len(ds) == 5
    assert Path(item["A_path"]).name == "b1.jpg" and Path(item["B_path"]).name == "a1.png"
    assert item["A"].shape == (1, 8, 8) and item["B"].shape == (3, 8, 8)


def test_unaligned_missing_domain_folder_is_named(tmp_path):
    save(tmp_path / "trainA" / "a.png", flat(1))
    expected = r"trainB: no such folder; expected .*trainA/ and .*trainB/"
    with pytest.raises(DatasetNotFoundError, match=expected):
        UnalignedDataset(cfg(tmp_path), "train", train=True)


# ---------------------------------------------------------------- randomness


def test_same_key_gives_same_item_whatever_the_global_rngs(tmp_path):
    root = unaligned_root(tmp_path)
    for i in range(5):
        save(root / "trainB" / f"b{i}.jpg", coords(16, 16, marker=0))
    ds = UnalignedDataset(cfg(root, preprocess="crop", flip=True), "train", train=True)
    items = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        random.seed(global_seed)
        np.random.seed(global_seed)
        items.append(ds[(2, 12345)])
    assert items[0]["B_path"] == items[1]["B_path"]
    assert torch.equal(items[0]["A"], items[1]["A"]) and torch.equal(items[0]["B"], items[1]["B"])
    others = [ds[(2, seed)]["B"] for seed in range(8)]
    assert any(not torch.equal(others[0], other) for other in others[1:])
    copy = pickle.loads(pickle.dumps(ds))
    assert torch.equal(copy[(2, 12345)]["B"], items[0]["B"])


def test_test_time_is_centre_crop_without_flip(tmp_path):
    save(tmp_path / "img.png", coords(16, 12, marker=0))
    ds = SingleDataset(cfg(tmp_path, preprocess="crop", flip=True), "test", train=False)
    items = [ds[(0, seed)]["A"] for seed in range(6)]
    assert all(torch.equal(items[0], x) for x in items)
    # Centre window of a 16x12 image: x from 4, y from 2, left to right.
    assert (level(items[0][0, 0, 0]), level(items[0][1, 0, 0])) == (40, 20)
    assert items[0][0, 0, 0] < items[0][0, 0, -1]


# ---------------------------------------------------------------- preprocessing


@pytest.mark.parametrize(
    ("preprocess", "size", "expected"),
    [
        ("resize_and_crop", (30, 20), (8, 8)),
        ("crop", (30, 20), (8, 8)),
        ("scale_width", (40, 20), (10, 8)),  # height 5 would fall below the crop: kept at 8
        ("scale_width", (20, 40), (10, 20)),
        ("scale_width_and_crop", (20, 40), (8, 8)),
        ("none", (30, 21), (32, 20)),
    ],
)
def test_preprocess_modes_give_reference_sizes(tmp_path, preprocess, size, expected):
    save(tmp_path / "x.png", flat(128, *size))
    ds = SingleDataset(cfg(tmp_path, preprocess=preprocess, load_size=10, crop_size=8), "train", train=True)
    x = ds[0]["A"]
    assert (x.shape[2], x.shape[1]) == expected
    assert -1.0 <= x.min() <= x.max() <= 1.0
    assert ds.info["image_size"] == (8 if "crop" in preprocess else None)


def test_normalisation_maps_0_and_255_to_minus_one_and_one(tmp_path):
    save(tmp_path / "x.png", side_by_side(0, 255))
    item = AlignedDataset(cfg(tmp_path.parent, preprocess="none"), tmp_path.name, train=False)[0]
    assert torch.all(item["A"] == -1.0) and torch.all(item["B"] == 1.0)


def test_image_smaller_than_crop_names_file_and_sizes(tmp_path):
    save(tmp_path / "small.png", flat(1, 6, 6))
    ds = SingleDataset(cfg(tmp_path, preprocess="crop", crop_size=8), "train", train=True)
    with pytest.raises(ImageTooSmallError, match=r"small\.png: the image is 6x6, smaller than data\.crop_size=8; use data\.crop_size<=6"):
        ds[0]


def test_bad_preprocess_settings_name_the_key():
    with pytest.raises(ConfigError, match="data.crop_size=300 is larger than data.load_size=286"):
        checked(preprocess="resize_and_crop", load_size=286, crop_size=300)
    with pytest.raises(ConfigError, match="data.preprocess: Invalid value 'zoom'"):
        checked(preprocess="zoom")
    with pytest.raises(ConfigError, match="data.load_size=0 must be >= 1"):
        checked(load_size=0)


# ---------------------------------------------------------------- files and decoding


def test_find_images_is_recursive_sorted_and_case_insensitive(tmp_path):
    names = ["b/IMG.PNG", "a.JPEG", "c/d/e.Tif", "f.webp", "g.bmp"]
    for name in names:
        save(tmp_path / name, flat(1))
    (tmp_path / "notes.txt").write_text("x")
    save(tmp_path / ".hidden.png", flat(1))
    save(tmp_path / "__MACOSX" / "._a.png", flat(1))
    found = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert found == sorted(names)


def test_missing_and_empty_folders_are_named(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=rf"{tmp_path}/nope: no such folder"):
        find_images(tmp_path / "nope")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DatasetNotFoundError, match=rf"{tmp_path}/empty: no images found"):
        find_images(tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError, match=rf"data.root={tmp_path}/gone: no such folder"):
        SingleDataset(cfg(tmp_path / "gone"), "test", train=False)
    with pytest.raises(ConfigError, match="data.root is not set; add data.root=<folder> holding a folder of images"):
        typed_data({"kind": "single"})


@pytest.mark.parametrize("damage", ["empty", "truncated", "text"])
def test_unreadable_image_raises_bad_image_error_naming_it(tmp_path, damage):
    noise = np.random.default_rng(0).integers(0, 255, (32, 64, 3), np.uint8)
    path = save(tmp_path / "train" / "broken.png", noise)
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "text": b"not an image"}[damage])
    with pytest.raises(BadImageError, match=r"broken\.png: cannot read image") as err:
        load_image(path, 3)
    assert "\n" not in str(err.value)
    with pytest.raises(BadImageError, match=r"broken\.png"):
        AlignedDataset(cfg(tmp_path), "train", train=True)[0]


def test_load_image_converts_modes_to_gray_or_rgb(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = 0
    img = load_image(save(tmp_path / "rgba.png", rgba), 3)
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (200, 100, 50)

    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 30, 60, 90] + [0] * 762)
    palette.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png", 3).getpixel((0, 0)) == (30, 60, 90)

    gray = load_image(save(tmp_path / "l.png", flat(77, channels=1)), 3)
    assert gray.getpixel((0, 0)) == (77, 77, 77)
    luma = load_image(save(tmp_path / "rgb.png", np.full((4, 4, 3), (255, 0, 0), np.uint8)), 1)
    assert luma.mode == "L" and luma.getpixel((0, 0)) == 76  # ITU-R 601-2, as PIL and the reference


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    save(tmp_path / "i16.png", values)
    save(tmp_path / "i32.tif", values.astype(np.int32))
    assert Image.open(tmp_path / "i16.png").mode == "I;16" and Image.open(tmp_path / "i32.tif").mode == "I"
    for name in ("i16.png", "i32.tif"):
        gray = load_image(tmp_path / name, 1)
        assert np.asarray(gray).tolist() == [[0, 4, 128, 255]]
        assert load_image(tmp_path / name, 3).getpixel((2, 0)) == (128, 128, 128)


# ---------------------------------------------------------------- single and max_dataset_size


def test_single_yields_one_item_per_image_and_prefers_the_split_folder(tmp_path):
    for name in ["x.png", "sub/y.jpg", "sub/deeper/z.PNG"]:
        save(tmp_path / name, flat(5))
    ds = SingleDataset(cfg(tmp_path), "test", train=False)
    assert len(ds) == 3
    assert set(ds[0]) == {"A", "A_path"} and ds[0]["A"].shape == (3, 8, 8)
    assert sorted(Path(ds[i]["A_path"]).name for i in range(3)) == ["x.png", "y.jpg", "z.PNG"]
    save(tmp_path / "test" / "only.png", flat(5))
    ds = SingleDataset(cfg(tmp_path, input_nc=1), "test", train=False)
    assert len(ds) == 1 and ds[0]["A"].shape == (1, 8, 8)


def test_max_dataset_size_caps_every_kind(tmp_path):
    for i in range(4):
        save(tmp_path / "al" / "train" / f"{i}.png", side_by_side(i, i))
    root = unaligned_root(tmp_path / "un", n_a=4, n_b=6)
    assert len(AlignedDataset(cfg(tmp_path / "al", max_dataset_size=2), "train", True)) == 2
    un = UnalignedDataset(cfg(root, max_dataset_size=2), "train", True)
    assert len(un) == 2 and {Path(un[(0, s)]["B_path"]).name for s in range(20)} <= {"b0.jpg", "b1.jpg"}
    assert len(SingleDataset(cfg(root / "trainA", max_dataset_size=3), "x", False)) == 3
    with pytest.raises(ConfigError, match="data.max_dataset_size=0"):
        checked(max_dataset_size=0)


def test_channel_counts_other_than_1_or_3_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="data.input_nc=4"):
        checked(input_nc=4)


# ---------------------------------------------------------------- conf/data presets


def data_files() -> list[Path]:
    return sorted(p for p in CONF_DATA.glob("*.yaml") if not p.stem.startswith("mnist"))


def test_generic_and_preset_files_load_into_the_schema():
    files = {p.stem: OmegaConf.load(p) for p in data_files()}
    assert GENERIC <= files.keys()
    assert {"facades", "maps", "horse2zebra", "cyclegan_maps", "cyclegan_facades"} <= files.keys()
    own = {stem: OmegaConf.to_container(node) for stem, node in files.items()}
    defaults = {stem: raw.pop("defaults", None) for stem, raw in own.items()}
    for stem, raw in own.items():
        # A preset extends the generic file of its kind, which extends the schema.
        parent = own[defaults[stem][0]] if stem not in GENERIC else {}
        typed = OmegaConf.merge(OmegaConf.structured(ImageDataConfig), parent, raw)
        assert typed.name == stem and typed.kind in GENERIC
        if stem in GENERIC:
            assert OmegaConf.is_missing(typed, "root") and defaults[stem] == ["/schema_data_images@_here_", "_self_"]
        else:
            assert defaults[stem] == [typed.kind, "_self_"], stem
            assert raw["root"] == f"${{paths.data_dir}}/{stem}"


def test_presets_compose_with_hydra():
    with initialize_config_dir(config_dir=str(CONF_DATA.parent), version_base=None):
        for path in data_files():
            if path.stem in GENERIC:
                continue
            composed = compose(overrides=[f"+data={path.stem}", "+paths.data_dir=/d"])
            resolved = OmegaConf.to_container(composed, resolve=True)["data"]
            typed = OmegaConf.merge(OmegaConf.structured(ImageDataConfig), resolved)
            assert typed.root == f"/d/{path.stem}"
            assert (typed.load_size, typed.crop_size, typed.num_workers, typed.flip) == (286, 256, machine_workers(4), True)
    assert str(OmegaConf.load(CONF_DATA / "facades.yaml").direction) == "BtoA"
