"""translate-export: a generator written as TorchScript (or ONNX) runs without translate and computes
what the eager generator computes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from _models_helpers import train, write_pairs
from helpers import compose_config
from translate.cli.export import main
from translate.cli.exporting import export_generator
from translate.cli.testing import load_trained
from translate.config import ExportConfig, ExportFormat
from translate.networks.generators import ResnetGenerator

SIZE = 32

# Runs in a bare interpreter: -I -S (no user site, no site-packages, so no editable install of translate),
# torch's own folder put back by hand, and a finder that refuses translate should it sit beside torch.
ISOLATED = """
import importlib.abc, importlib.util, sys
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
net = torch.jit.load(sys.argv[2])
torch.save(net(torch.load(sys.argv[3])), sys.argv[4])
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


def eager_generator(run: Path) -> nn.Module:
    """The run's G as translate-test builds it, in eval mode."""
    return load_trained(compose_config("test", f"run={run}", "device=cpu"))[0].netG.eval()


def run_isolated(model: Path, x: torch.Tensor, folder: Path) -> torch.Tensor:
    torch.save(x, folder / "x.pt")
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


def test_torchscript_runs_without_translate_and_matches_the_eager_generator(pix2pix_run, tmp_path, capsys):
    main([f"run={pix2pix_run}", "format=torchscript"])
    path = pix2pix_run / "export" / "G_latest.torchscript.pt"
    assert f"wrote {path}" in capsys.readouterr().out
    assert [p.name for p in path.parent.iterdir()] == [path.name]

    # Another batch size and another side than the traced [1, 3, 32, 32]: nothing is baked in.
    x = torch.rand(2, 3, 64, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = eager_generator(pix2pix_run)(x)
    assert torch.allclose(run_isolated(path, x, tmp_path), expected, atol=1e-5)


# torch.jit announces its deprecation on every call; translate-export silences it for users.
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_reference_generator_file_exports_too(tmp_path):
    net = ResnetGenerator(3, 3, ngf=8, n_blocks=1).eval()
    torch.nn.init.normal_(net.model[1].bias)
    torch.save(net.state_dict(), tmp_path / "latest_net_G.pth")
    path = export_generator(ExportConfig(checkpoint=str(tmp_path / "latest_net_G.pth"), format=ExportFormat.torchscript, size=16))
    assert path == tmp_path / "export" / "latest_net_G.torchscript.pt"
    x = torch.rand(1, 3, 20, 24) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(path))(x), net(x), atol=1e-5)


def test_onnx_matches_the_eager_generator(pix2pix_run, tmp_path):
    onnx = pytest.importorskip("onnx")
    path = export_generator(ExportConfig(run=str(pix2pix_run), format=ExportFormat.onnx, output=str(tmp_path / "g.onnx")))
    onnx.checker.check_model(onnx.load(str(path)))
    if importlib.util.find_spec("onnxruntime") is None:
        return
    import onnxruntime

    x = torch.rand(2, 3, 64, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected = eager_generator(pix2pix_run)(x)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.numpy()})
    assert torch.allclose(torch.from_numpy(got), expected, atol=1e-4)


def test_a_cyclegan_generator_exports_to_onnx_quietly_and_exactly(tmp_path, recwarn):
    """Instance norm and reflection padding make torch's exporter warn in ways that do not matter: translate
    says nothing, and the file computes what the generator computes."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = ResnetGenerator(3, 3, ngf=8, n_blocks=1).eval()
    torch.save(net.state_dict(), tmp_path / "latest_net_G.pth")
    path = export_generator(ExportConfig(checkpoint=str(tmp_path / "latest_net_G.pth"), format=ExportFormat.onnx, size=16))
    assert [str(w.message) for w in recwarn if issubclass(w.category, UserWarning)] == []
    x = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(2)) * 2 - 1
    (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(got), net(x), atol=1e-4)


def test_onnx_without_the_onnx_package_says_what_to_install(pix2pix_run, tmp_path, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else find_spec(name, *a))
    with pytest.raises(SystemExit) as exit_:
        main([f"run={pix2pix_run}", "format=onnx", f"output={tmp_path / 'g.onnx'}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert 'pip install "translate[export]"' in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, needle",
    [
        (["format=torchscript", "network=D"], "network=D is not a generator of this pix2pix run; choose one of: G"),
        (["format=torchscript", "size=40"], "size=40 does not fit this generator: image sides must be multiples of 32"),
        (["format=tflite"], "format: Invalid value 'tflite', expected one of [torchscript, onnx]"),
        (["format=torchscript", "sizes=32"], "sizes=32: sizes is not a key of this config; did you mean size?"),
        ([], "format is not set; add format=torchscript|onnx"),
    ],
    ids=["network", "size", "format", "unknown-key", "no-format"],
)
def test_bad_arguments_give_one_line_naming_them(pix2pix_run, tmp_path, capsys, args, needle):
    with pytest.raises(SystemExit) as exit_:
        main([f"run={pix2pix_run}", f"output={tmp_path / 'g.pt'}", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "g.pt").exists()
