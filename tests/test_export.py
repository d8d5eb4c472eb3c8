"""translate-export: a generator written as a torch.export program (pt2), ONNX or legacy TorchScript runs
without translate, takes other batch sizes and sides than it was exported with, and computes what the eager
generator computes; baked files give translate.load's pixels; nothing but translate's own lines reaches the
terminal, and the loading snippets of docs/export.md run without a warning."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import translate
from _models_helpers import train, write_pairs
from helpers import compose_config
from test_docs import fenced_blocks
from translate.cli.export import main
from translate.cli.exporting import DEFAULT_SIZE, example_inputs, export_generator, exported_program, write_pt2
from translate.cli.testing import load_trained
from translate.config import ExportConfig, ExportFormat
from translate.networks.generators import ConditionalGenerator, ResnetGenerator
from translate.networks.init import init_weights

SIZE = 32
ROOT = Path(__file__).resolve().parents[1]

# Runs in a bare interpreter: -I -S (no user site, no site-packages, so no editable install of translate),
# torch's own folder put back by hand, and a finder that refuses translate should it sit beside torch.
# Every warning is an error: loading and running the program must be quiet.
ISOLATED = """
import importlib.abc, importlib.util, sys, warnings
warnings.simplefilter("error")
sys.path.append(sys.argv[1])
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "translate":
            raise ModuleNotFoundError("translate is not installed here")
sys.meta_path.insert(0, Refuse())
try:
    import translate
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("translate is importable")
import torch
net = torch.export.load(sys.argv[2]).module()
torch.save([net(x) for x in torch.load(sys.argv[3])], sys.argv[4])
assert not any(m.split(".")[0] == "translate" for m in sys.modules), "loading imported translate"
"""


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory) -> Path:
    """A U-Net pix2pix run trained for two steps: batch norm statistics and dropout make eval mode matter."""
    root = tmp_path_factory.mktemp("export")
    write_pairs(root / "pairs", "train", 2, SIZE, seed=0)
    train(
        root / "run",
        [
            "model=pix2pix",
            "data=aligned",
            f"data.root={root / 'pairs'}",
            f"data.load_size={SIZE}",
            f"data.crop_size={SIZE}",
            "logger=none",
            "trainer.max_steps=2",
            "model.generator.arch=unet",
            "model.generator.num_downs=5",
            "model.generator.ngf=8",
            "model.discriminator.ndf=8",
        ],
    )
    return root / "run"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """A reference-format ResNet generator file (``latest_net_G.pth``), initialised as for training."""
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(3, 3, ngf=8, n_blocks=1))
    torch.nn.init.normal_(net.model[1].bias)
    path = tmp_path_factory.mktemp("reference") / "latest_net_G.pth"
    torch.save(net.state_dict(), path)
    return path


def reference_net(path: Path) -> nn.Module:
    net = ResnetGenerator(3, 3, ngf=8, n_blocks=1).eval()
    net.load_state_dict(torch.load(path, weights_only=True))
    return net


@pytest.fixture(scope="module")
def raw_exports(reference) -> Dict[str, Path]:
    """The reference generator as pt2 and ONNX at their default paths, exported with every warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return {
            fmt: export_generator(ExportConfig(checkpoint=str(reference), format=ExportFormat(fmt), size=16)) for fmt in ("pt2", "onnx")
        }


@pytest.fixture(scope="module")
def baked_exports(reference) -> Dict[str, subprocess.CompletedProcess]:
    """``translate-export ... bake=true`` in each format, run as a user runs it: what reaches the terminal."""
    return {
        fmt: subprocess.run(
            [str(Path(sys.executable).parent / "translate-export"), f"checkpoint={reference}", f"format={fmt}", "bake=true", "size=16"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        for fmt in ("pt2", "onnx", "torchscript")
    }


def eager_generator(run: Path) -> nn.Module:
    """The run's G as translate-test builds it, in eval mode."""
    return load_trained(compose_config("test", f"run={run}", "device=cpu"))[0].netG.eval()


def run_isolated(model: Path, inputs: list, folder: Path) -> list:
    torch.save(inputs, folder / "x.pt")
    torch_dir = str(Path(torch.__file__).resolve().parent.parent)
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", ISOLATED, torch_dir, str(model), str(folder / "x.pt"), str(folder / "y.pt")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return torch.load(folder / "y.pt", weights_only=True)


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------ pt2


def test_pt2_runs_without_translate_and_takes_any_batch_and_side(pix2pix_run, tmp_path, capsys):
    main([f"run={pix2pix_run}", "format=pt2"])
    path = pix2pix_run / "export" / "G_latest.pt2"
    assert f"wrote {path}" in capsys.readouterr().out
    assert [p.name for p in path.parent.iterdir()] == [path.name]

    # Exported on [1, 3, 32, 32]: another batch size and side, and the U-Net's own multiple, where its
    # innermost map is 1 x 1 (what unet_256 meets on 256 px images).
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.rand(2, 3, 64, 32, generator=gen) * 2 - 1, torch.rand(1, 3, 32, 96, generator=gen) * 2 - 1]
    with torch.no_grad():
        expected = [eager_generator(pix2pix_run)(x) for x in inputs]
    for got, want in zip(run_isolated(path, inputs, tmp_path), expected):
        assert got.shape == want.shape and not got.requires_grad
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_a_reference_generator_file_exports_to_pt2(reference, raw_exports):
    path = raw_exports["pt2"]
    assert path == reference.parent / "export" / "latest_net_G.pt2"
    x = torch.rand(3, 3, 20, 24) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(str(path)).module()(x), reference_net(reference)(x), rtol=0, atol=1e-6)


def test_the_cgan_generator_exports_to_pt2_with_a_free_batch(tmp_path):
    torch.manual_seed(0)
    net = ConditionalGenerator(z_dim=8, num_classes=10, image_size=16, ngf=8, conditional_bn=True).eval().requires_grad_(False)
    write_pt2(exported_program(net, example_inputs(net, DEFAULT_SIZE)), tmp_path / "g.pt2")
    z, labels = torch.randn(5, 8), torch.tensor([0, 3, 3, 7, 9])  # exported with a batch of 1
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(str(tmp_path / "g.pt2")).module()(z, labels), net(z, labels), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------- ONNX


def test_onnx_matches_the_eager_generator_with_named_free_axes(pix2pix_run, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = export_generator(ExportConfig(run=str(pix2pix_run), format=ExportFormat.onnx, output=str(tmp_path / "g.onnx")))
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*model.graph.input, *model.graph.output]}
    assert shapes == {"input": ["batch", 3, "height", "width"], "output": ["batch", 3, "height", "width"]}

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    net = eager_generator(pix2pix_run)
    gen = torch.Generator().manual_seed(1)
    for x in (torch.rand(2, 3, 64, 32, generator=gen) * 2 - 1, torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1):
        (got,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            assert torch.allclose(torch.from_numpy(got), net(x), atol=1e-4)


def test_a_cyclegan_generator_exports_to_onnx_and_computes_what_it_computes(reference, raw_exports):
    """Instance norm and reflection padding (the fixture exports with every warning an error)."""
    ort = pytest.importorskip("onnxruntime")
    x = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(2)) * 2 - 1
    (got,) = ort.InferenceSession(str(raw_exports["onnx"]), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(got), reference_net(reference)(x), atol=1e-4)


@pytest.mark.parametrize("package", ["onnx", "onnxscript"])
def test_onnx_without_its_packages_says_what_to_install(pix2pix_run, tmp_path, monkeypatch, capsys, package):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else find_spec(name, *a))
    with pytest.raises(SystemExit) as exit_:
        main([f"run={pix2pix_run}", "format=onnx", f"output={tmp_path / 'g.onnx'}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f'needs the {package} package: pip install "translate[export]"' in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------ TorchScript (legacy)


def test_torchscript_is_legacy_says_so_in_one_line_and_lets_no_deprecation_through(reference, tmp_path, caplog, recwarn):
    path = export_generator(
        ExportConfig(checkpoint=str(reference), format=ExportFormat.torchscript, size=16, output=str(tmp_path / "g.pt"))
    )
    assert [str(w.message) for w in recwarn] == []
    assert [r.getMessage() for r in caplog.records if "legacy" in r.getMessage()] == [
        f"format=torchscript is legacy (torch {torch.__version__} deprecates torch.jit); "
        "format=pt2 writes its replacement, a torch.export program"
    ]
    x = torch.rand(1, 3, 20, 24) * 2 - 1
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated", category=FutureWarning)
        assert torch.allclose(torch.jit.load(str(path))(x), reference_net(reference)(x), atol=1e-5)


def test_torchscript_without_torch_jit_names_the_replacement(reference, tmp_path, monkeypatch, capsys):
    monkeypatch.delattr(torch.jit, "trace")
    with pytest.raises(SystemExit) as exit_:
        main([f"checkpoint={reference}", "format=torchscript", f"output={tmp_path / 'g.pt'}"])
    assert exit_.value.code == 2
    assert (
        capsys.readouterr().err.strip()
        == f"translate-export: error: format=torchscript: torch {torch.__version__} has no torch.jit; use format=pt2 (torch.export)"
    )
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------------------- bake=true


def test_only_translates_own_lines_reach_the_terminal(reference, baked_exports):
    described = f"{reference}: resnet with n_blocks=1, ngf=8, norm=instance, 3->3 channels"
    suffixes = {"pt2": ".pt2", "onnx": ".onnx", "torchscript": ".torchscript.pt"}
    for fmt, proc in baked_exports.items():
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        legacy = [line for line in proc.stdout.splitlines() if "is legacy" in line]
        wrote = f"translate-export: wrote {reference.parent / 'export' / ('latest_net_G_uint8' + suffixes[fmt])}"
        assert proc.stdout.splitlines() == [described, *legacy, wrote]
        assert len(legacy) == (fmt == "torchscript")


@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
def test_a_baked_torch_file_gives_the_pixels_of_the_api(reference, baked_exports, fmt):
    path = reference.parent / "export" / f"latest_net_G_uint8{'.pt2' if fmt == 'pt2' else '.torchscript.pt'}"
    if fmt == "pt2":
        net = torch.export.load(str(path)).module()
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated", category=FutureWarning)
            net = torch.jit.load(str(path))
    g = translate.load(reference, device="cpu")
    for h, w in ((37, 50), (16, 16), (64, 21)):  # other sizes than exported, no multiple of 4 among them
        pixels = photo(h, w, seed=h)
        got = net(torch.from_numpy(pixels)).numpy()
        assert got.dtype == np.uint8 and got.shape == (h, w, 3)
        assert np.array_equal(got, g(pixels))


def test_a_baked_onnx_file_is_within_one_level_of_the_api_in_rare_values(reference, baked_exports):
    """onnxruntime's kernels sum in another order than PyTorch's: a value within ~1e-4 of x.5 may round the
    other way (docs/export.md measures how often); never by more than one level."""
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(reference.parent / "export" / "latest_net_G_uint8.onnx"), providers=["CPUExecutionProvider"])
    g = translate.load(reference, device="cpu")
    differ = total = 0
    for h, w in ((37, 50), (16, 16), (64, 21)):
        pixels = photo(h, w, seed=h)
        got = session.run(None, {"image": pixels})[0]
        assert got.dtype == np.uint8 and got.shape == (h, w, 3)
        gap = np.abs(got.astype(int) - g(pixels).astype(int))
        assert gap.max() <= 1
        differ, total = differ + int((gap > 0).sum()), total + gap.size
    assert differ <= total // 100, f"{differ} of {total} values differ"


# ------------------------------------------------------------------------------------ docs' snippets


def test_the_loading_snippets_of_the_docs_run_without_a_warning(raw_exports, baked_exports, reference, tmp_path, monkeypatch):
    """Each Python block of docs/export.md that loads a file runs on the files exported here, with every
    warning an error (paths swapped for ours, the photo for one made here)."""
    pytest.importorskip("onnxruntime")
    export = reference.parent / "export"
    files = {
        ("pt2", False): raw_exports["pt2"],
        ("onnx", False): raw_exports["onnx"],
        ("pt2", True): export / "latest_net_G_uint8.pt2",
        ("onnx", True): export / "latest_net_G_uint8.onnx",
    }
    Image.fromarray(photo(45, 60)).save(tmp_path / "horse.jpg")
    monkeypatch.chdir(tmp_path)
    ran = []
    for start, lines in fenced_blocks(ROOT / "docs" / "export.md"):
        code = "\n".join(lines)
        loaded = re.findall(r'"([^"]+\.(pt2|onnx))"', code)
        if not loaded:
            continue
        ((name, fmt),) = loaded
        key = (fmt, name.endswith("_uint8." + fmt))
        code = code.replace(f'"{name}"', repr(str(files[key])))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            exec(compile(code, f"docs/export.md:{start}", "exec"), {})
        ran.append(key)
    assert sorted(ran) == sorted(files)
    assert Image.open(tmp_path / "zebra.jpg").size == (60, 45)


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "args, needle",
    [
        (["format=pt2", "network=D"], "network=D is not a generator of this pix2pix run; choose one of: G"),
        (["format=pt2", "size=40"], "size=40 does not fit this generator: image sides must be multiples of 32"),
        (["format=tflite"], "format: Invalid value 'tflite', expected one of [pt2, onnx, torchscript]"),
        (["format=pt2", "sizes=32"], "sizes=32: sizes is not a key of this config; did you mean size?"),
        (["format=pt2", "output=g.pt"], "output=g.pt: torch.export.load reads files named *.pt2; e.g. output=g.pt2"),
        ([], "format is not set; add format=pt2|onnx|torchscript"),
    ],
    ids=["network", "size", "format", "unknown-key", "pt2-name", "no-format"],
)
def test_bad_arguments_give_one_line_naming_them(pix2pix_run, tmp_path, capsys, args, needle):
    output = [] if any(a.startswith("output=") for a in args) else [f"output={tmp_path / 'g.pt2'}"]
    with pytest.raises(SystemExit) as exit_:
        main([f"run={pix2pix_run}", *output, *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())
