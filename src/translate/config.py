"""The shared config vocabulary: the enums, the schemas of the groups every run shares (trainer, device,
logger, paths, metrics), and the whole configs of translate-test, translate-export and translate-apply. Imports no torch
and no component.

Hydra composes YAML; these dataclasses and the component schemas beside their code
(``translate.networks.configs``, ``translate.data.configs``, ``translate.models.configs``) say what a valid
composition is, and :mod:`translate.settings.validate` turns one into typed objects, checking every range and
cross-key rule on the way. The training config, whose model and data sections are typed by the registries
above this layer, is :class:`translate.settings.schema.TrainConfig`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import PurePath
from typing import Any, List, Optional, Type, TypeVar, cast

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from translate.errors import ConfigError

T = TypeVar("T")


class Choice(str, Enum):
    """A string enum whose members compare equal to their plain string values."""

    def __str__(self) -> str:
        return self.value


class GanMode(Choice):
    vanilla = "vanilla"
    lsgan = "lsgan"
    wgangp = "wgangp"
    hinge = "hinge"
    wgan = "wgan"


class OptimType(Choice):
    adam = "adam"
    rmsprop = "rmsprop"


class Norm(Choice):
    batch = "batch"
    instance = "instance"
    none = "none"


class InitType(Choice):
    normal = "normal"
    xavier = "xavier"
    kaiming = "kaiming"
    orthogonal = "orthogonal"


class Amp(Choice):
    off = "off"
    bf16 = "bf16"
    fp16 = "fp16"


class BestMode(Choice):
    max = "max"
    min = "min"


class Accelerator(Choice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class LrPolicy(Choice):
    linear = "linear"
    step = "step"
    cosine = "cosine"
    constant = "constant"


class EvalMode(Choice):
    """How translate-test runs a generator: ``eval`` (model.eval()) or ``paper`` (dropout and batch
    statistics on, one image at a time, as the pix2pix paper and the reference's test.py test)."""

    eval = "eval"
    paper = "paper"


class Weights(Choice):
    """Which generator weights a trained run gives: ``ema`` (the moving average when the run kept one, else
    the raw weights) or ``raw``."""

    ema = "ema"
    raw = "raw"


class ExportFormat(Choice):
    # pt2: a torch.export program; onnx: the same through torch's ONNX exporter; torchscript: legacy (torch.jit).
    pt2 = "pt2"
    onnx = "onnx"
    torchscript = "torchscript"


@dataclass
class TrainerConfig:
    """The papers' schedule (pix2pix, CycleGAN): batch 1, 100 epochs at constant lr, 100 of linear decay."""

    batch_size: int = 1
    n_epochs: int = 100
    n_epochs_decay: int = 100
    # linear | step (x lr_decay_gamma every lr_decay_epochs) | cosine | constant
    lr_policy: LrPolicy = LrPolicy.linear
    lr_decay_epochs: int = 50
    lr_decay_gamma: float = 0.1
    # Hard cap on optimisation steps (null: run all epochs).
    max_steps: Optional[int] = None
    # Discriminator updates per generator update: the discriminators learn on every step (every batch),
    # the generators on every n-th (5: the WGAN paper's n_critic).
    d_steps_per_g_step: int = 1
    log_every_n_steps: int = 100
    image_every_n_steps: int = 1000
    save_every_n_epochs: int = 5
    # Test metrics (e.g. pix2pix L1/PSNR/SSIM) on the val split, when the data has one, logged as val/...
    val_every_n_epochs: Optional[int] = 5
    val_max_images: Optional[int] = 50
    # Keep checkpoints/best.pt by this validation metric (e.g. val/PSNR, val/fid_mnist_classifier); null: no best.pt.
    best_metric: Optional[str] = None
    # max or min; null: the metric's usual direction (lower for L1/FID/KID, higher for PSNR/SSIM/accuracy).
    best_mode: Optional[BestMode] = None
    # Keep only this many epoch_<n>.pt files (null: all); latest.pt is always kept.
    keep_last_n: Optional[int] = None
    # A non-finite loss stops training; up to this many such steps are skipped (their updates left out) instead.
    skip_nonfinite: int = 0
    progress_bar: bool = True

    def check(self, where: str = "trainer") -> None:
        for key in ("batch_size", "d_steps_per_g_step", "log_every_n_steps", "image_every_n_steps", "save_every_n_epochs"):
            at_least(getattr(self, key), 1, f"{where}.{key}", "5 is the WGAN paper's" if key == "d_steps_per_g_step" else "")
        at_least(self.n_epochs, 0, f"{where}.n_epochs")
        at_least(self.n_epochs_decay, 0, f"{where}.n_epochs_decay")
        require(
            self.n_epochs + self.n_epochs_decay >= 1,
            f"{where}.n_epochs",
            self.n_epochs,
            f"with {where}.n_epochs_decay={self.n_epochs_decay}: train at least one epoch",
        )
        at_least(self.max_steps, 1, f"{where}.max_steps", optional=True)
        at_least(self.val_every_n_epochs, 1, f"{where}.val_every_n_epochs", "null turns validation off", optional=True)
        at_least(self.val_max_images, 1, f"{where}.val_max_images", optional=True)
        at_least(self.keep_last_n, 0, f"{where}.keep_last_n", "null keeps every epoch_<n>.pt", optional=True)
        at_least(self.skip_nonfinite, 0, f"{where}.skip_nonfinite")
        at_least(self.lr_decay_epochs, 1, f"{where}.lr_decay_epochs")
        require(self.lr_decay_gamma > 0, f"{where}.lr_decay_gamma", self.lr_decay_gamma, "must be > 0, e.g. 0.1")


@dataclass
class DeviceConfig:
    """Where to train (auto: CUDA if present, else MPS, else CPU), and how."""

    accelerator: Accelerator = Accelerator.auto
    # Mixed precision: off | bf16 | fp16 (fp16 uses a gradient scaler).
    amp: Amp = Amp.off
    # NHWC memory layout: faster convolutions on tensor-core GPUs.
    channels_last: bool = False
    # torch.compile every network (first steps are slow while it compiles).
    compile: bool = False
    # Deterministic kernels and no cuDNN autotuning: reproducible, slower.
    deterministic: bool = False
    # Over several processes: batch norm with the statistics of the whole batch (all processes), not each one's share.
    sync_bn: bool = False


class WandbMode(Choice):
    """How a W&B run syncs: ``online`` (to the server as it trains; needs WANDB_API_KEY or ``wandb login``)
    or ``offline`` (files only, uploaded later with ``wandb sync``)."""

    online = "online"
    offline = "offline"


@dataclass
class TensorBoardConfig:
    """TensorBoard events in <run dir>/tb/ (open with: tensorboard --logdir outputs)."""


@dataclass
class CsvConfig:
    """<run dir>/metrics.csv (step, tag, value: one row per logged number) and the image grids as PNG files
    in <run dir>/images/."""


@dataclass
class WandbConfig:
    """Weights & Biases (pip install "translate[wandb]"); its files go in <run dir>/wandb/ ($WANDB_DIR when set)."""

    project: str = "translate"
    # The W&B user or team; null: the account's default entity.
    entity: Optional[str] = None
    # online | offline; null: $WANDB_MODE, else online.
    mode: Optional[WandbMode] = None
    tags: List[str] = field(default_factory=list)

    def check(self, where: str) -> None:
        require(bool(self.project.strip()), f"{where}.project", repr(self.project), "is empty; name the W&B project, e.g. translate")


@dataclass
class MlflowConfig:
    """MLflow (pip install "translate[mlflow]"): a run in ``experiment`` of the tracking store at ``tracking_uri``."""

    # A database (sqlite:///<file>), or a server (http://host:5000); the default: $MLFLOW_TRACKING_URI, else
    # <paths.output_dir>/mlflow.db, with the image grids beside it in mlartifacts/.
    tracking_uri: str = "${oc.env:MLFLOW_TRACKING_URI,sqlite:///${paths.output_dir}/mlflow.db}"
    experiment: str = "translate"

    def check(self, where: str) -> None:
        require(
            bool(self.tracking_uri.strip()), f"{where}.tracking_uri", repr(self.tracking_uri), "is empty; e.g. sqlite:///outputs/mlflow.db"
        )
        require(bool(self.experiment.strip()), f"{where}.experiment", repr(self.experiment), "is empty; name the MLflow experiment")


@dataclass
class LoggerConfig:
    """The experiment trackers a run logs to: each one whose section is set (conf/logger/ sets them: logger=wandb,
    logger=[tensorboard,mlflow], logger=many). Every tracker gets the config, the losses and learning rates, the
    validation metrics, the image grids, the run's summary and translate-test's metrics (docs/tracking.md)."""

    # The logger option chosen (conf/logger/<name>.yaml); with a list of options, the last one.
    name: str = "none"
    tensorboard: Optional[TensorBoardConfig] = None
    csv: Optional[CsvConfig] = None
    wandb: Optional[WandbConfig] = None
    mlflow: Optional[MlflowConfig] = None

    @property
    def trackers(self) -> List[str]:
        """The names of the trackers this config turns on, in a fixed order."""
        return [name for name in TRACKER_NAMES if getattr(self, name) is not None]

    @property
    def enabled(self) -> bool:
        return bool(self.trackers)

    def check(self, where: str = "logger") -> None:
        for name in ("wandb", "mlflow"):
            section = getattr(self, name)
            if section is not None:
                section.check(f"{where}.{name}")


#: The trackers, as LoggerConfig's sections and conf/logger/ name them.
TRACKER_NAMES = ("tensorboard", "csv", "wandb", "mlflow")


@dataclass
class PathsConfig:
    """Datasets are read from (and translate-data stores them in) data_dir; runs go under output_dir."""

    data_dir: str = "./data"
    output_dir: str = "./outputs"
    multirun_dir: str = "./multirun"


@dataclass
class ValMetricsConfig:
    """FID and KID of the translations on the validation split, at each validation (pix2pix, CycleGAN), on
    torch-fidelity's Inception-v3 (pip install "translate[metrics]"); logged as val/FID_B, val/KID_B, ...
    On trainer.val_max_images images they follow a run's trend; they are not comparable with test-set FIDs."""

    # false (they cost an Inception pass over each validation) | auto: when the weights are found | true: stop
    # before training when torch-fidelity or the weights are missing. Any: a bool or the string auto.
    fid: Any = False
    # The Inception weights file; null: torch-fidelity's cache (see docs/evaluation.md).
    inception_weights: Optional[str] = None
    kid_subset_size: int = 1000

    def check(self, where: str = "metrics") -> None:
        require(self.fid in (True, False, "auto"), f"{where}.fid", self.fid, "is not known; use auto, true or false")
        at_least(self.kid_subset_size, 2, f"{where}.kid_subset_size")


@dataclass
class TestMetricsConfig(ValMetricsConfig):
    """What translate-test's metrics.json holds beyond the per-image metrics (conf/test.yaml explains each)."""

    fid: Any = "auto"
    # cGAN: digits generated per class for its scores (0: none; grid and samples only).
    cgan_per_class: int = 1000
    # cGAN: the judge: null (the classifier shipped in the package), a model=classifier run, or a weights file.
    classifier: Optional[str] = None
    # cGAN: steps (batch 128) of the TSTR classifier trained on the generated digits only (0: no TSTR).
    tstr_steps: int = 500

    def check(self, where: str = "metrics") -> None:
        super().check(where)
        at_least(self.cgan_per_class, 0, f"{where}.cgan_per_class", "0 writes the grid and samples without scores")
        at_least(self.tstr_steps, 0, f"{where}.tstr_steps", "0 turns TSTR off")


@dataclass
class TestConfig:
    """translate-test's config (conf/test.yaml): which run or file to test, on what, and what to write."""

    # The run directory to test (holds config.yaml and checkpoints/).
    run: Optional[str] = None
    # A checkpoint file (default: <run>/checkpoints/latest.pt), or a reference generator file.
    checkpoint: Optional[str] = None
    # Where outputs go; null: <run>/test_<checkpoint name>/. An earlier test there is renamed to
    # <output_dir>.<its time>/ once the new one is complete; a folder holding other files is refused.
    output_dir: Optional[str] = None
    # Cap on the number of test inputs of each direction (null: the whole split).
    num_test: Optional[int] = None
    split: str = "test"
    batch_size: int = 8
    # cGAN: samples written per class, and the noise seed.
    n_per_class: int = 10
    seed: int = 0
    eval_mode: EvalMode = EvalMode.eval
    weights: Weights = Weights.ema
    metrics: TestMetricsConfig = field(default_factory=TestMetricsConfig)
    # Bars over the long phases (translating, Inception, TSTR); each phase is logged as it starts either way.
    progress_bar: bool = True
    device: DeviceConfig = field(default_factory=DeviceConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    # data=<kind or preset> replaces the run's dataset; model= is read only for a reference generator file.
    # Both stay raw here: translate.settings.validate types them against the registries.
    data: Any = None
    model: Any = None
    # Composed when model= picks its own schedule (conf/model/cgan.yaml); testing does not read it.
    trainer: Any = None

    def check(self) -> None:
        if not self.run and not self.checkpoint:
            raise ConfigError("run: say which run to test, e.g. translate-test run=outputs/cgan/mnist/<timestamp>")
        at_least(self.batch_size, 1, "batch_size")
        at_least(self.num_test, 1, "num_test", "null tests the whole split", optional=True)
        at_least(self.n_per_class, 0, "n_per_class")
        self.metrics.check()


@dataclass
class ExportConfig:
    """translate-export's config (conf/export.yaml)."""

    run: Optional[str] = None
    checkpoint: Optional[str] = None
    # pt2 (torch.export), onnx, or torchscript (legacy, while torch still has torch.jit); no default.
    format: ExportFormat = MISSING
    # G (pix2pix, cGAN), G_A or G_B (CycleGAN); null: the run's first generator.
    network: Optional[str] = None
    output: Optional[str] = None
    # Side of the example image the generator is exported with; null: the run's crop size, else 256.
    size: Optional[int] = None
    weights: Weights = Weights.ema
    # true: the run's preprocessing baked in: the file takes an 8-bit [H, W, C] image of any size and gives
    # one back (pads to the generator's multiple and crops back inside), the pixels translate.load gives.
    bake: bool = False

    def check(self) -> None:
        if not self.run and not self.checkpoint:
            raise ConfigError("run: say what to export, e.g. run=outputs/pix2pix/facades/<timestamp> or checkpoint=<file>")
        at_least(self.size, 1, "size", optional=True)
        if self.format == ExportFormat.pt2 and self.output and PurePath(self.output).suffix != ".pt2":
            # torch.export.load warns about any other name and may not read it.
            raise ConfigError(
                f"output={self.output}: torch.export.load reads files named *.pt2; e.g. output={PurePath(self.output).with_suffix('.pt2')}"
            )


#: The most pixels an image file may hold before Pillow refuses it as a possible decompression bomb (twice
#: ``PIL.Image.MAX_IMAGE_PIXELS``, below which it only warns): the default of ``max_image_pixels``.
PILLOW_MAX_IMAGE_PIXELS = 178_956_970


def check_tiles(tile: Optional[int], overlap: Optional[int]) -> None:
    """``tile`` and ``overlap`` of translate-apply and translate-demo: a tile of at least 16 px (None: whole
    images), an overlap smaller than it (None: the generator's receptive field)."""
    at_least(tile, 16, "tile", "null translates each image whole", optional=True)
    at_least(overlap, 0, "overlap", "null takes the generator's receptive field", optional=True)
    if tile is not None and overlap is not None and overlap >= tile:
        raise ConfigError(f"overlap={overlap} must be smaller than tile={tile}, e.g. overlap={tile // 8}")


@dataclass
class ApplyConfig:
    """translate-apply's config (conf/apply.yaml): which generator, on which images or video, into where."""

    # A run directory, a checkpoint file, a reference generator file, or a pretrained name (horse2zebra).
    run: Optional[str] = None
    # An image, a folder of images (searched recursively), a glob ('photos/*.jpg'), or a video file.
    input: Optional[str] = None
    # A folder (images keep their names and sub-folders; a video its name), or a video file to write.
    output: Optional[str] = None
    weights: Weights = Weights.ema
    # CycleGAN: AtoB (G_A) or BtoA (G_B).
    direction: str = "AtoB"
    # A generator by name instead (G, G_A, G_B).
    network: Optional[str] = None
    # Tile side in pixels (null: each image whole) and the overlap of neighbouring tiles (null: the generator's
    # receptive field, the tile grown to 2 x overlap + its multiple if smaller; less is honoured with a warning).
    tile: Optional[int] = None
    overlap: Optional[int] = None
    # Images, tiles or frames per forward pass; null: 1 on the CPU (batching does not pay there), 4 on a GPU.
    batch_size: Optional[int] = None
    # Frames per second of a video made from a folder of frames (a video keeps its own).
    fps: float = 30.0
    # true: an image that cannot be read is logged and left out; false: it stops the command.
    skip_bad: bool = False
    # false: outputs that already exist are kept (and counted), so a stopped job resumes; true: replaced.
    overwrite: bool = False
    # An image file of more pixels is refused (Pillow's guard against decompression bombs); null or 0: no limit.
    max_image_pixels: Optional[int] = PILLOW_MAX_IMAGE_PIXELS
    # A cGAN run: the classes to draw (instead of input=), n samples of each, written as <output>/<class>/<k>.png;
    # seed fixes the noise.
    labels: Optional[List[int]] = None
    n: int = 1
    seed: Optional[int] = None
    progress_bar: bool = True
    device: DeviceConfig = field(default_factory=DeviceConfig)

    def check(self) -> None:
        for key, example in (
            ("run", "outputs/cyclegan/horse2zebra/<time> or horse2zebra"),
            ("input", "photos/"),
            ("output", "translated/"),
        ):
            if not getattr(self, key) and not (key == "input" and self.labels is not None):
                raise ConfigError(f"{key} is not set; add {key}=<...>, e.g. {key}={example}")
        if self.labels is not None and self.input:
            raise ConfigError(
                f"labels={self.labels} draws samples of a cGAN and input={self.input} gives images to translate; set one of them"
            )
        require(self.labels is None or len(self.labels) > 0, "labels", self.labels, "names no class; give some, e.g. labels=[3,7]")
        require(self.labels is None or min(self.labels) >= 0, "labels", self.labels, "must be classes 0, 1, ...")
        at_least(self.n, 1, "n", "samples drawn of each label")
        require(self.direction in ("AtoB", "BtoA"), "direction", self.direction, "is not known; use AtoB or BtoA")
        check_tiles(self.tile, self.overlap)
        at_least(self.batch_size, 1, "batch_size", optional=True)
        require(self.fps > 0, "fps", self.fps, "must be > 0, e.g. 30")
        at_least(self.max_image_pixels, 0, "max_image_pixels", "null or 0: no limit", optional=True)


@dataclass
class BundleConfig:
    """translate-bundle's config (conf/bundle.yaml): which run to hand over, and where to write it."""

    # A run directory (its checkpoints/latest.pt) or one of its checkpoint files.
    run: Optional[str] = None
    # A new folder, or a file ending in .zip; null: <run>/bundle_<checkpoint stem>/.
    output: Optional[str] = None
    # ema: the generators' moving average when the run kept one; raw: the raw weights.
    weights: Weights = Weights.ema

    def check(self) -> None:
        if not self.run:
            raise ConfigError("run is not set; add run=<run directory or checkpoint>, e.g. run=outputs/cyclegan/horse2zebra/<timestamp>")


@dataclass
class DemoConfig:
    """translate-demo's config (conf/demo.yaml): which generator, and where the page listens."""

    # A run directory, a checkpoint file, a bundle, a reference generator file, or a pretrained name (horse2zebra).
    run: Optional[str] = None
    # The address the page listens on: 127.0.0.1 (this machine only); 0.0.0.0 opens it to the network.
    host: str = "127.0.0.1"
    # Its port; null: the first free one from 7860.
    port: Optional[int] = 7860
    weights: Weights = Weights.ema
    # Images larger than tile pixels a side are translated in overlapping tiles, in bounded memory; null: whole.
    tile: Optional[int] = 1024
    # null: the generator's receptive field, as translate-apply (docs/apply.md#large-images-tiles-without-seams).
    overlap: Optional[int] = None
    # Images or tiles per forward pass; null: 1 on the CPU, 4 on a GPU.
    batch_size: Optional[int] = None
    device: DeviceConfig = field(default_factory=DeviceConfig)

    def check(self) -> None:
        if not self.run:
            raise ConfigError("run is not set; add run=<run directory, checkpoint, bundle or pretrained name>, e.g. run=horse2zebra")
        require(bool(self.host.strip()), "host", repr(self.host), "is empty; use 127.0.0.1 (this machine) or 0.0.0.0 (every interface)")
        require(
            self.port is None or 1 <= self.port <= 65535, "port", self.port, "must be within 1..65535 (or null: the first free from 7860)"
        )
        check_tiles(self.tile, self.overlap)
        at_least(self.batch_size, 1, "batch_size", optional=True)


def require(ok: bool, key: str, value: Any, rule: str) -> None:
    """Raise ConfigError ``<key>=<value> <rule>`` unless ``ok``: the one form of every range check."""
    if not ok:
        raise ConfigError(f"{key}={value} {rule}")


def at_least(value: Optional[float], low: float, key: str, rule: str = "", optional: bool = False) -> None:
    """``value >= low`` (or None when ``optional``), else ConfigError naming ``key``; ``rule`` adds advice."""
    if optional and value is None:
        return
    nullable = " (or null)" if optional else ""
    require(value is not None and value >= low, key, value, f"must be >= {low:g}{nullable}{'; ' + rule if rule else ''}")


def plain(node: Any) -> Any:
    """``node`` (a DictConfig, a dataclass instance, or plain containers) as plain containers, enums as their
    strings. A composed node keeps the schema type of the config it came from; as plain values it is checked
    key by key against whichever schema it is merged into."""
    if isinstance(node, DictConfig) or OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    if hasattr(node, "__dataclass_fields__"):
        return OmegaConf.to_container(OmegaConf.structured(node), resolve=True, enum_to_str=True)
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items()}
    return node


def _choices(schema: Any, key: str) -> str:
    """``a|b|c`` when ``key`` (dotted, under the dataclass ``schema``) is an enum field, else ""."""
    kind: Any = schema
    for part in key.split("."):
        hints = typing.get_type_hints(kind) if hasattr(kind, "__dataclass_fields__") else {}
        kind = hints.get(part)
    return "|".join(member.value for member in kind) if isinstance(kind, type) and issubclass(kind, Enum) else ""


def to_typed(schema: Type[T], node: Any, where: str = "", base: Optional[DictConfig] = None) -> T:
    """``node`` merged into ``schema`` (a dataclass) and returned as an instance of it, every value converted
    and checked by its type; a key the schema lacks, a value of the wrong type or a missing mandatory value
    raises ConfigError naming the full key (``where`` is the prefix of ``node``'s keys, e.g. ``model``).
    ``base``: the structured node to merge into, when some of its sections are of subclasses of the
    schema's types (a model's own schema in TrainConfig's ``model``)."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema) if base is None else base, plain(node) if node is not None else {})
        return cast(T, OmegaConf.to_object(merged))
    except MissingMandatoryValue as err:
        key = ".".join(k for k in (where, str(err.full_key or "")) if k)
        choices = _choices(schema, str(err.full_key or ""))
        raise ConfigError(f"{key} is not set; add {key}={choices or '<value>'} (--cfg job shows every key)") from None
    except OmegaConfBaseException as err:
        key = ".".join(k for k in (where, str(getattr(err, "full_key", "") or "")) if k)
        message = str(getattr(err, "msg", err)).splitlines()[0]
        raise ConfigError(f"{key}: {message}") from None
