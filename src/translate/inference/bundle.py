"""A trained generator you can hand over (``translate-bundle``): a folder, or one ``.zip`` of it, holding

    translate.json             the settings: model, network config, channels, normalisation, directions,
                               the image size it trained at, tile guidance, step, epoch, test metrics
    <G | G_A | G_B>.safetensors  each generator's weights (the moving average when the run kept one)
    README.md                  the model card: what trained it, on which data, how long, its metrics, how to load it
    samples.png                a sample grid, when the run made one

Written by :func:`write_bundle`; read by :func:`read_bundle` as a checkpoint's state holding only the
generators, so ``translate.load``, ``translate-apply``, ``translate-demo`` and ``init_from`` take a bundle
wherever they take a run (:func:`translate.inference.translator.find_source`). Reading runs no code from the
bundle: JSON and safetensors only, no pickle; a damaged or edited bundle raises CheckpointError in one line.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import safetensors.torch
import torch
import torch.nn as nn

from translate.config import Weights
from translate.errors import CheckpointError, ConfigError
from translate.files import atomic_write, read_weights, resolve_checkpoint
from translate.models.base import GANModel, build_model
from translate.models.checkpoint import FORMAT, VERSION, Checkpoint, is_checkpoint, trained_model
from translate.networks.generators import ConditionalGenerator, generator_input_multiple
from translate.version import __version__

PathLike = Union[str, Path]

BUNDLE_FORMAT = "translate-bundle"
BUNDLE_VERSION = 1
SETTINGS = "translate.json"
CARD = "README.md"
SAMPLES = "samples.png"
#: Generator names become file names (``<name>.safetensors``): nothing that could leave the bundle's folder.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INFO_KEYS = ("input_nc", "output_nc", "image_size", "num_classes")
#: The tile a bundle suggests for large images (apply.md measured 512 with overlap 64), at least two multiples.
_TILE, _OVERLAP = 512, 64


def is_bundle(path: Path) -> bool:
    """Whether ``path`` is meant as a bundle: a folder holding ``translate.json``, or a ``.zip`` file."""
    return (path.is_dir() and (path / SETTINGS).is_file()) or (path.is_file() and path.suffix.lower() == ".zip")


# ---------------------------------------------------------------------------------------------- writing


def write_bundle(source: PathLike, output: Optional[PathLike] = None, weights: Weights = Weights.ema) -> Path:
    """Bundle the generators of ``source`` (a run directory, meaning its ``checkpoints/latest.pt``, or one of
    its checkpoints) into ``output``: a folder, or a ``.zip`` file when it ends so (default
    ``<run>/bundle_<checkpoint stem>/``). ``weights``: ema (the generators' moving average when the run kept
    one) or raw. Refuses an ``output`` that exists; written whole or not at all. Returns ``output``."""
    ckpt_path = resolve_checkpoint(source)
    raw = read_weights(ckpt_path)
    if not is_checkpoint(raw):
        raise CheckpointError(
            f"{ckpt_path} is not a translate checkpoint; translate-bundle takes a run directory or one of its checkpoints"
        )
    ckpt = Checkpoint.from_state(raw, ckpt_path)
    model = trained_model(ckpt, weights, ckpt_path)
    if not model.generators:
        raise ConfigError(f"{ckpt_path} holds a {ckpt.model} model, which has no generator to bundle")
    run_dir = ckpt_path.parent.parent
    out = Path(output).expanduser() if output else run_dir / f"bundle_{ckpt_path.stem}"
    if out.exists():
        raise ConfigError(f"output={out} exists; choose another output= (a folder, or a file ending in .zip) or move it away")
    samples = sample_grid(run_dir, ckpt_path.stem)
    settings = _settings(ckpt, model, Weights.ema if weights == Weights.ema and ckpt.ema else Weights.raw, run_dir, ckpt_path)
    files: Dict[str, bytes] = {SETTINGS: (json.dumps(settings, indent=2) + "\n").encode()}
    for name in model.generators:
        state = {k: v.detach().contiguous() for k, v in model.networks[name].state_dict().items()}
        files[f"{name}.safetensors"] = safetensors.torch.save(state, metadata={"format": "pt"})
    files[CARD] = model_card(settings, samples is not None).encode()
    if samples is not None:
        files[SAMPLES] = samples.read_bytes()
    if out.suffix.lower() == ".zip":
        atomic_write(out, lambda tmp: _zip(files, tmp))
    else:
        _folder(files, out)
    return out


def _zip(files: Mapping[str, bytes], path: str) -> None:
    # Stored, not deflated: weights hardly compress, and a stored zip opens as fast as the folder.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def _folder(files: Mapping[str, bytes], out: Path) -> None:
    """The files into a new folder ``out``, renamed into place once complete: a crash leaves no half bundle."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; a bundle is meant to be shared
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def run_metrics(run_dir: Path, checkpoint_stem: str) -> Optional[Dict[str, Any]]:
    """``<run>/test_<checkpoint stem>/metrics.json`` (what translate-test wrote for that checkpoint), if any."""
    path = run_dir / f"test_{checkpoint_stem}" / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None


def run_name(model: str, config: Mapping[str, Any], run_dir: Path) -> str:
    """A run's ``name`` when it was given one, else ``<model>_<data>_<run folder>`` (the folder: its start time)."""
    data = config.get("data", {}).get("name", "data")
    return str(config.get("name") or f"{model}_{data}_{run_dir.name}")


def sample_grid(run_dir: Path, checkpoint_stem: str) -> Optional[Path]:
    """The run's picture of its results: translate-test's cGAN grid, else the last training grid."""
    found = [p for p in (run_dir / f"test_{checkpoint_stem}" / "grid.png", run_dir / "samples" / "final.png") if p.is_file()]
    return found[0] if found else None


def _net_settings(net: nn.Module, direction: Optional[str]) -> Dict[str, Any]:
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    entry: Dict[str, Any] = {"in_channels": convs[0].in_channels, "out_channels": convs[-1].out_channels}
    if isinstance(net, ConditionalGenerator):
        entry.update(makes=f"images from class labels 0..{net.num_classes - 1} and {net.z_dim} noise values", tiles=None)
        return entry
    multiple = generator_input_multiple(net)
    tile = max(_TILE, 2 * multiple)
    entry.update(
        direction=direction,
        multiple=multiple,
        # Images of any size are padded to the multiple and cropped back; tiles bound the memory of large ones.
        tiles={"tile": tile, "overlap": _OVERLAP, "when": f"images much larger than {tile} px a side that do not fit in memory whole"},
    )
    return entry


def _settings(ckpt: Checkpoint, model: GANModel, weights: Weights, run_dir: Path, ckpt_path: Path) -> Dict[str, Any]:
    """What translate.json holds (see the module docstring); nothing of the machine it was made on (no paths)."""
    config = ckpt.config
    data = {k: v for k, v in config.get("data", {}).items() if k in ("name", "kind", "direction", "load_size", "crop_size", "image_size")}
    trainer = {k: v for k, v in config.get("trainer", {}).items() if k in ("batch_size", "n_epochs", "n_epochs_decay", "max_steps")}
    directions = dict(zip(model.generators, ("AtoB", "BtoA")))
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "translate_version": __version__,
        "name": run_name(ckpt.model, config, run_dir),
        "model": ckpt.model,
        "generators": {name: _net_settings(model.networks[name], directions[name]) for name in model.generators},
        "weights": str(weights),
        "network": config["model"],
        "info": dict(ckpt.info),
        "image_size": ckpt.info.get("image_size"),
        "normalisation": {
            "range": [-1, 1],
            "from_pixels": "x / (max / 2) - 1, max 255 for 8-bit and 65535 for 16-bit images (mean 0.5, std 0.5 of [0, 1])",
            "to_pixels": "(y + 1) * max / 2, rounded and clipped",
            "channels": "gray images are repeated into RGB for a 3-channel generator, colour reduced to luma (ITU-R 601-2) for a 1-channel one",
        },
        "step": ckpt.step,
        "epoch": ckpt.epoch,
        "checkpoint": ckpt_path.name,
        "seed": config.get("seed"),
        "data": data,
        "trainer": trainer,
        "test_metrics": run_metrics(run_dir, ckpt_path.stem),
    }


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)


def metrics_table(metrics: Mapping[str, Any]) -> List[str]:
    """``metrics.json`` of translate-test as the lines of a Markdown table: metric, mean, images."""
    lines = ["| metric | mean | images |", "|---|---|---|"]
    for key, entry in metrics.items():
        entry = entry if isinstance(entry, dict) else {"mean": entry}
        lines.append(f"| {key} | {_number(entry.get('mean'))} | {entry.get('num_images', '')} |")
    return lines


def model_card(settings: Mapping[str, Any], with_samples: bool) -> str:
    """The bundle's README.md: what trained it, on which data, for how long, its test metrics, how to use it."""
    net, gen = settings["network"], settings["network"].get("generator", {})
    depth = next((f", {k} {gen[k]}" for k in ("n_blocks", "num_downs") if gen.get(k) is not None), "")
    # lambda_gp weighs the gradient penalty of wgangp only.
    lambdas = ", ".join(
        f"{k} {_number(v)}" for k, v in net.items() if k.startswith("lambda_") and (k != "lambda_gp" or net.get("gan_mode") == "wgangp")
    )
    trainer, data = settings["trainer"], settings["data"]
    planned = " + ".join(f"{trainer[k]}" for k in ("n_epochs", "n_epochs_decay") if k in trainer)
    planned = f"{planned} epochs" if planned else ""
    if trainer.get("max_steps"):
        planned += f"{', ' if planned else ''}capped at {trainer['max_steps']} steps"
    epochs = f"{settings['epoch']} epoch{'' if settings['epoch'] == 1 else 's'}"
    rows = [
        (
            "model",
            f"{settings['model']}: " + ", ".join(f"{n} ({g.get('direction') or 'from labels'})" for n, g in settings["generators"].items()),
        ),
        ("generator", f"{gen.get('arch')}, ngf {gen.get('ngf')}, norm {gen.get('norm')}{depth}"),
        (
            "discriminator",
            f"{net.get('discriminator', {}).get('arch')}, gan_mode {net.get('gan_mode')}" + (f", {lambdas}" if lambdas else ""),
        ),
        ("data", ", ".join(f"{k} {v}" for k, v in data.items()) or "unknown"),
        ("channels", ", ".join(f"{n} {g['in_channels']} -> {g['out_channels']}" for n, g in settings["generators"].items())),
        ("training", f"{settings['step']} steps, {epochs}" + (f" (planned: {planned})" if planned else "")),
        ("", f"batch size {trainer.get('batch_size')}, lr {_number(net.get('optim', {}).get('lr'))}, seed {settings.get('seed')}"),
        (
            "weights",
            "the generators' moving average" if settings["weights"] == "ema" else "the raw weights (the run kept no moving average)",
        ),
        ("made by", f"translate {settings['translate_version']} from {settings['checkpoint']}"),
    ]
    lines = [f"# {settings['name']}", "", f"A {settings['model']} generator trained with translate.", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "## Test metrics", ""]
    metrics = settings.get("test_metrics")
    if metrics:
        lines += metrics_table(metrics)
    else:
        lines.append(f"None: the run had no translate-test results for {settings['checkpoint']} when it was bundled.")
    if with_samples:
        lines += ["", "## Samples", "", f"![samples]({SAMPLES})"]
    first = next(iter(settings["generators"].values()))
    tiles = first.get("tiles")
    lines += ["", "## Use it", "", "```python", "import translate", "", 'g = translate.load("<this folder or zip>")']
    if first.get("direction") is None:
        lines += ["digits = g.sample(range(10), n=8, seed=0)    # float [80, C, H, W] in [-1, 1]"]
    else:
        lines += ['g("photo.jpg").save("translated.png")         # any size: padded to a multiple and cropped back']
    lines += ["```", "", "```bash"]
    if first.get("direction") is not None:
        tiling = f" tile={tiles['tile']} overlap={tiles['overlap']}" if tiles else ""
        lines += [
            "translate-apply run=<this folder or zip> input=photos/ output=translated/",
            f"translate-apply run=<...> input=huge.tif output=out/{tiling}",
        ]
    lines += ["translate-demo run=<this folder or zip>      # a local page (pip install 'translate[demo]')", "```", ""]
    lines += [
        f"Settings (network config, channels, normalisation, directions, tile guidance) are in `{SETTINGS}`, the weights in",
        "`<generator>.safetensors`. Loading runs no code from these files: JSON and safetensors only, no pickle.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- reading


def _reader(path: Path) -> Callable[[str], bytes]:
    """``read(name)``: the bytes of a bundle's file, from its folder or from its zip (at the root of the zip,
    or in the one folder a zipped bundle folder holds)."""
    if path.is_dir():

        def from_folder(name: str) -> bytes:
            try:
                return (path / name).read_bytes()
            except OSError as err:
                raise CheckpointError(
                    f"{path} lacks {name} ({err.strerror}); the bundle is incomplete: make it again with translate-bundle"
                ) from None

        return from_folder
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path} is not a readable zip file ({err}); give a bundle made by translate-bundle") from None
    settings = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == SETTINGS and n.count("/") <= 1]
    if len(settings) != 1:
        raise CheckpointError(f"{path} is not a translate bundle: no {SETTINGS} in it (or several); make one with translate-bundle")
    prefix = settings[0][: -len(SETTINGS)]

    def from_zip(name: str) -> bytes:
        try:
            return archive.read(prefix + name)
        except KeyError:
            raise CheckpointError(f"{path} lacks {prefix + name}; the bundle is incomplete: make it again with translate-bundle") from None
        except (OSError, zipfile.BadZipFile, RuntimeError) as err:
            raise CheckpointError(f"{path}: {prefix + name} cannot be read from the zip ({err})") from None

    return from_zip


def _check_settings(settings: Any, where: str) -> Dict[str, Any]:
    """``translate.json`` with every key the reader relies on, of the right type; else one line naming it."""
    if not isinstance(settings, dict) or settings.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(f'{where} is not a translate bundle\'s settings (no "format": "{BUNDLE_FORMAT}")')
    if not isinstance(settings.get("version"), int) or settings["version"] > BUNDLE_VERSION:
        raise CheckpointError(
            f"{where}: bundle version {settings.get('version')!r}; this translate reads up to {BUNDLE_VERSION}: upgrade translate"
        )
    for key, kind in (
        ("model", str),
        ("generators", dict),
        ("network", dict),
        ("info", dict),
        ("weights", str),
        ("step", int),
        ("epoch", int),
    ):
        if not isinstance(settings.get(key), kind):
            raise CheckpointError(f'{where}: "{key}" is {settings.get(key)!r}, not a {kind.__name__}; the file was edited or damaged')
    bad = next((n for n in settings["generators"] if not _NAME.fullmatch(n)), None)
    if bad is not None or not settings["generators"]:
        raise CheckpointError(f'{where}: "generators" names {bad!r}; expected the model\'s generators, e.g. G or G_A and G_B')
    info = settings["info"]
    wrong = next((k for k, v in info.items() if k not in _INFO_KEYS or not (v is None or (isinstance(v, int) and v > 0))), None)
    if wrong is not None or "input_nc" not in info or "output_nc" not in info:
        raise CheckpointError(
            f'{where}: "info" is {info}; expected positive integers for {", ".join(_INFO_KEYS)} (input_nc and output_nc set)'
        )
    if settings["weights"] not in ("ema", "raw"):
        raise CheckpointError(f'{where}: "weights" is {settings["weights"]!r}; expected ema or raw')
    return settings


def _tensors(data: bytes, where: str) -> Dict[str, torch.Tensor]:
    try:
        # safetensors parses a JSON header and copies raw arrays: nothing in the file can run.
        return safetensors.torch.load(data)
    except Exception as err:  # noqa: BLE001  (the parser raises its own error type for any damage)
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{where} is not a readable safetensors file ({detail}); the bundle is damaged: make it again with translate-bundle"
        ) from None


def read_bundle(path: PathLike) -> Dict[str, Any]:
    """The bundle at ``path`` as a checkpoint's state (:class:`translate.models.checkpoint.Checkpoint` reads
    it) holding only its generators, its settings under ``bundle``. Raises CheckpointError in one line for a
    missing or damaged file, edited settings, or anything that is not a bundle."""
    path = Path(path).expanduser()
    read = _reader(path)
    where = f"{path}/{SETTINGS}" if path.is_dir() else f"{path}:{SETTINGS}"
    try:
        settings = json.loads(read(SETTINGS).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{where} is not valid JSON ({err})") from None
    settings = _check_settings(settings, where)
    networks = {name: _tensors(read(f"{name}.safetensors"), f"{path}/{name}.safetensors") for name in settings["generators"]}
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": settings["model"],
        "config": {"model": settings["network"]},
        "info": settings["info"],
        "networks": networks,
        "step": settings["step"],
        "epoch": settings["epoch"],
        "samples_in_epoch": 0,
        "bundle": settings,
    }


def bundle_model(raw: Mapping[str, Any], weights: Weights, where: Path) -> GANModel:
    """The model a bundle read by :func:`read_bundle` describes, its generators loaded (the other networks as
    built: a bundle holds none), on the CPU in eval mode. ``weights=raw`` of a bundle of moving averages stops."""
    settings = raw["bundle"]
    if Weights(weights) == Weights.raw and settings["weights"] == "ema":
        raise ConfigError(f"weights=raw: {where} holds the generators' moving average only (bundled with weights=ema); leave weights= out")
    ckpt = Checkpoint.from_state(raw, where)
    try:
        model = build_model(ckpt.model_config(where), ckpt.info)
    except CheckpointError:  # the model or its config unknown here: the message names the bundle already
        raise
    except Exception as err:  # noqa: BLE001  (values edited into translate.json can fail anywhere in a constructor)
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise CheckpointError(f"{where}: {SETTINGS} describes a network this translate cannot build: {detail}") from None
    if set(ckpt.networks) != set(model.generators):
        raise CheckpointError(
            f"{where} holds {', '.join(ckpt.networks)}; a {ckpt.model} model's generators are {', '.join(model.generators)}"
        )
    for name in model.generators:
        try:
            model.networks[name].load_state_dict(ckpt.networks[name])
        except RuntimeError as err:
            # load_state_dict's first line only names the class; the next names what does not fit.
            detail = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))[:200]
            raise CheckpointError(f"{where}: {name}.safetensors does not fit the network {SETTINGS} describes: {detail}") from None
    return model.eval()
