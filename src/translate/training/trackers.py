"""The experiment trackers a run logs to: TensorBoard, a CSV file, Weights & Biases and MLflow, behind one
small interface (:class:`Tracker`), and :class:`Trackers`, the fan-out the training report calls.

Each tracker gets the same things: the composed config, scalars at a step (losses, gradient norms, learning
rates, validation metrics), image grids at a step, and a summary (the run's final and best values and its
objective at the end of training; translate-test's metrics later). What a tracker needs to continue its own
run (W&B's run id, MLflow's store and run id) is kept in ``<run dir>/trackers.json``: a resumed run, and
translate-test, log into the same tracker runs. The tracker libraries are imported only when chosen.
"""

from __future__ import annotations

import abc
import contextlib
import csv
import dataclasses
import io
import json
import logging
import os
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Type, Union

import torch

from translate.config import CsvConfig, LoggerConfig, MlflowConfig, TensorBoardConfig, WandbConfig, to_typed
from translate.errors import ConfigError, TrainingError
from translate.files import atomic_write
from translate.settings.schema import HPARAM_GROUPS
from translate.visuals import save_png, to_pixels

log = logging.getLogger(__name__)

#: In the run directory: the step of the last summary and what each tracker needs to continue its run.
STATE_FILE = "trackers.json"

Scalar = Union[bool, int, float, str]


def flatten(tree: Any, prefix: str = "") -> Dict[str, Any]:
    """A nested dict as ``{"prefix.key.sub": leaf}`` (``{"key.sub": leaf}`` without a prefix)."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flatten(sub, f"{prefix}.{key}" if prefix else str(key)).items()}
    return {prefix: tree}


def run_hparams(config: Mapping[str, Any]) -> Dict[str, Scalar]:
    """A run's config (plain containers) as flat ``group.key`` hyperparameters for TensorBoard's HPARAMS
    table: the groups that change results (seed, model, data, trainer, device); lists and null become text."""
    flat = {k: v for group in HPARAM_GROUPS for k, v in flatten(config[group], group).items()}
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat.items()}


class Tracker(abc.ABC):
    """One tracker's run of one translate run. ``step`` is the optimisation step; ``image`` is one
    [3, H, W] grid in [0, 1]."""

    name: ClassVar[str]
    #: Its section of LoggerConfig.
    config: ClassVar[type]

    @abc.abstractmethod
    def __init__(self, run_dir: Path, cfg: Any, saved: Mapping[str, Any], step: int, label: str) -> None:
        """Start a run named ``label`` (``cfg``: the tracker's section of LoggerConfig), or continue the one
        ``saved`` (its :meth:`state` in ``trackers.json``) names; ``step``: where training starts (0 when new)."""

    @abc.abstractmethod
    def log_config(self, config: Mapping[str, Any]) -> None:
        """The composed config (plain nested containers), once per start or resume."""

    @abc.abstractmethod
    def log_scalars(self, step: int, values: Mapping[str, float]) -> None: ...

    @abc.abstractmethod
    def log_image(self, tag: str, step: int, image: torch.Tensor) -> None: ...

    @abc.abstractmethod
    def log_summary(self, step: int, values: Mapping[str, float]) -> None:
        """Numbers that describe the whole run (``final/...``, ``best/...``, ``objective``, ``test_.../...``)."""

    @abc.abstractmethod
    def close(self, failed: bool = False) -> None: ...

    def state(self) -> Dict[str, Any]:
        """What ``trackers.json`` keeps for this tracker to continue its run: its id, and the keys of its
        config section that translate-test needs to reach it."""
        return {}


class TensorBoardTracker(Tracker):
    """Events in ``<run dir>/tb/``; the summary goes to the HPARAMS table, beside the hyperparameters."""

    name, config = "tensorboard", TensorBoardConfig

    def __init__(self, run_dir: Path, cfg: Any, saved: Mapping[str, Any], step: int, label: str) -> None:
        # TensorBoard's writer loads tensorboard and protobuf, seconds of imports: only when it is chosen.
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a crashed run wrote after its last checkpoint, so curves do not fork.
        self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=step + 1 if step else None)
        self.hparams: Optional[Dict[str, Scalar]] = None

    def log_config(self, config: Mapping[str, Any]) -> None:
        # Kept for the HPARAMS table, which TensorBoard takes with the metrics it compares, at the end.
        self.hparams = run_hparams(config)

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def log_image(self, tag: str, step: int, image: torch.Tensor) -> None:
        self.writer.add_image(tag, image, step)

    def log_summary(self, step: int, values: Mapping[str, float]) -> None:
        if self.hparams is None:  # translate-test's metrics: the config was logged by training
            self.log_scalars(step, values)
            return
        # run_name "." keeps the summary in this run's tb/ folder rather than a new timestamped one.
        self.writer.add_hparams(self.hparams, dict(values), run_name=".", global_step=step)

    def close(self, failed: bool = False) -> None:
        self.writer.close()


class CsvTracker(Tracker):
    """``<run dir>/metrics.csv``, one ``step,tag,value`` row per number, and the image grids as
    ``<run dir>/images/<tag>/<step>.png``. The config is the run's own ``config.yaml``."""

    name, config = "csv", CsvConfig
    COLUMNS = ("step", "tag", "value")

    def __init__(self, run_dir: Path, cfg: Any, saved: Mapping[str, Any], step: int, label: str) -> None:
        self.path, self.images = run_dir / "metrics.csv", run_dir / "images"
        if step and self.path.is_file():
            # As TensorBoard's purge_step: rows a crashed run wrote after the checkpoint it resumes from go.
            with open(self.path, newline="") as f:
                rows = [row for row in csv.DictReader(f) if int(row["step"]) <= step]
            atomic_write(self.path, lambda tmp: self._write(tmp, rows))
        new = not self.path.is_file()
        self.file = open(self.path, "a", newline="")
        self.writer = csv.writer(self.file)
        if new:
            self.writer.writerow(self.COLUMNS)

    def _write(self, path: Path, rows: List[Dict[str, str]]) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, self.COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def log_config(self, config: Mapping[str, Any]) -> None:
        pass  # translate-train writes the config beside metrics.csv (config.yaml)

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        self.writer.writerows((step, tag, float(value)) for tag, value in values.items())
        self.file.flush()  # a crash keeps every row written so far

    def log_image(self, tag: str, step: int, image: torch.Tensor) -> None:
        save_png(image, self.images / tag / f"{step:07d}.png")

    def log_summary(self, step: int, values: Mapping[str, float]) -> None:
        self.log_scalars(step, values)

    def close(self, failed: bool = False) -> None:
        self.file.close()


class WandbTracker(Tracker):
    """A Weights & Biases run: the config as its config, scalars and images in its history at each step, the
    summary in its summary. Its files go in ``<run dir>/wandb/`` (``$WANDB_DIR/wandb/`` when that is set);
    a resumed run continues the W&B run of the same id (which takes no step lower than the last it holds)."""

    name, config = "wandb", WandbConfig

    def __init__(self, run_dir: Path, cfg: WandbConfig, saved: Mapping[str, Any], step: int, label: str) -> None:
        import wandb

        self.wandb, self.mode = wandb, cfg.mode
        mode: Any = str(cfg.mode) if cfg.mode is not None else None  # null: $WANDB_MODE, else online
        try:
            self.run = wandb.init(
                project=saved.get("project") or cfg.project,
                entity=saved.get("entity") or cfg.entity,
                id=saved.get("id"),
                resume="allow",
                name=None if saved.get("id") else label,  # a continued run keeps its name
                tags=list(cfg.tags) or None,
                mode=mode,
                dir=None if os.environ.get("WANDB_DIR") else str(run_dir),
            )
        except Exception as err:  # noqa: BLE001 - wandb raises many kinds (network, auth, settings); each is one line here
            raise TrainingError(
                f"logger=wandb: W&B could not start its run ({_first_line(err)}); check WANDB_API_KEY and the network, "
                "or add logger.wandb.mode=offline and upload later with wandb sync"
            ) from None

    def state(self) -> Dict[str, Any]:
        return {"id": self.run.id, "project": self.run.project, "entity": self.run.entity or None, "mode": self.mode and str(self.mode)}

    def log_config(self, config: Mapping[str, Any]) -> None:
        # A resumed run may change keys (trainer.max_steps): the config shows the values it trains with now.
        self.run.config.update(dict(config), allow_val_change=True)

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        self.run.log(dict(values), step=step)

    def log_image(self, tag: str, step: int, image: torch.Tensor) -> None:
        self.run.log({tag: self.wandb.Image(to_pixels(image).numpy())}, step=step)

    def log_summary(self, step: int, values: Mapping[str, float]) -> None:
        self.run.summary.update(dict(values))

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class MlflowTracker(Tracker):
    """An MLflow run in ``experiment`` of the store at ``tracking_uri``: the config as params (flat keys) and
    the ``config.yaml`` artifact, scalars and the summary as metrics at each step, the image grids as
    images (artifacts under ``images/``, with a step slider in MLflow's UI)."""

    name, config = "mlflow", MlflowConfig
    #: MLflow takes at most this many params in one call.
    PARAMS_PER_CALL = 100

    def __init__(self, run_dir: Path, cfg: MlflowConfig, saved: Mapping[str, Any], step: int, label: str) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = saved.get("tracking_uri") or _absolute_store(cfg.tracking_uri)
        try:
            self.client = MlflowClient(tracking_uri=self.tracking_uri)
            if saved.get("run_id"):
                self.run_id = str(saved["run_id"])
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                experiment = self.client.get_experiment_by_name(cfg.experiment)
                experiment_id = (
                    experiment.experiment_id
                    if experiment is not None
                    else self.client.create_experiment(cfg.experiment, artifact_location=_artifact_location(self.tracking_uri))
                )
                tags = {"translate.run_dir": str(run_dir.resolve())}
                self.run_id = self.client.create_run(experiment_id, run_name=label, tags=tags).info.run_id
        except Exception as err:  # noqa: BLE001 - MLflow raises many kinds (store, network, schema); each is one line here
            raise TrainingError(
                f"logger=mlflow: MLflow could not open the run at {self.tracking_uri} ({_first_line(err)}); "
                "check logger.mlflow.tracking_uri (e.g. sqlite:///outputs/mlflow.db, or a running server's http://host:5000)"
            ) from None

    def state(self) -> Dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "run_id": self.run_id}

    def log_config(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        # MLflow keeps a param's first value: a resumed run adds the keys it did not have, and config.yaml
        # holds the values it trains with now.
        logged = self.client.get_run(self.run_id).data.params
        flat = {key: str(value) for key, value in flatten(dict(config)).items()}
        changed = [key for key, value in flat.items() if key in logged and logged[key] != value]
        if changed:
            log.info("MLflow keeps the first value of these params; config.yaml has their values now: %s", ", ".join(changed))
        params = [Param(key, value) for key, value in flat.items() if key not in logged]
        for start in range(0, len(params), self.PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=params[start : start + self.PARAMS_PER_CALL])
        self.client.log_dict(self.run_id, dict(config), "config.yaml")

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(tag, float(value), now, step) for tag, value in values.items()])

    def log_image(self, tag: str, step: int, image: torch.Tensor) -> None:
        self.client.log_image(self.run_id, to_pixels(image).numpy(), key=tag, step=step)

    def log_summary(self, step: int, values: Mapping[str, float]) -> None:
        self.log_scalars(step, values)

    def close(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


#: Each tracker by its name in LoggerConfig (config.TRACKER_NAMES) and conf/logger/.
TRACKERS: Dict[str, Type[Tracker]] = {cls.name: cls for cls in (TensorBoardTracker, CsvTracker, WandbTracker, MlflowTracker)}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _absolute_store(uri: str) -> str:
    """A ``sqlite:///`` store with a relative path made absolute (so a run resumed or tested from another folder
    finds it), its folder created; any other URI as it is."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = Path(uri[len(prefix) :]).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(path)


def _artifact_location(uri: str) -> Optional[str]:
    """A new experiment's artifacts beside its SQLite file (``mlartifacts/``), not in the current folder;
    elsewhere (a server) the store decides."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()


# -- readiness -----------------------------------------------------------------------------------------


def _wandb_mode(cfg: WandbConfig) -> str:
    return str(cfg.mode) if cfg.mode is not None else os.environ.get("WANDB_MODE", "online")


def _wandb_logged_in() -> bool:
    """Whether W&B finds credentials here (WANDB_API_KEY, its settings, ~/.netrc), without the network."""
    import wandb

    with contextlib.redirect_stderr(io.StringIO()):  # its "API key is configured" lines: the run says it later
        try:
            return bool(wandb.login(verify=False, prompt=False))
        except Exception:  # noqa: BLE001 - credentials W&B cannot use are none to us
            return False


def problem(name: str, logger: LoggerConfig) -> Optional[str]:
    """Why tracker ``name`` cannot log from this machine (a package missing, W&B online without an
    account), in one line; None when it can."""
    if name == "wandb":
        if find_spec("wandb") is None:
            return 'logger=wandb needs the wandb package: pip install "translate[wandb]"'
        section = logger.wandb or WandbConfig()
        if _wandb_mode(section) in ("online", "run") and not _wandb_logged_in():
            return (
                "logger=wandb logs online, but no W&B account is set up on this machine: set WANDB_API_KEY or run "
                "wandb login, or add logger.wandb.mode=offline (wandb sync uploads the run later)"
            )
    if name == "mlflow":
        uri = (logger.mlflow or MlflowConfig()).tracking_uri
        modules = ("mlflow", "sqlalchemy", "alembic") if uri.startswith("sqlite:") else ("mlflow",)
        missing = [module for module in modules if find_spec(module) is None]
        if missing:
            return f'logger=mlflow needs {" and ".join(missing)}: pip install "translate[mlflow]"'
    return None


def check_ready(logger: LoggerConfig) -> None:
    """Stop with one line before anything is built when a chosen tracker cannot log from this machine."""
    for name in logger.trackers:
        reason = problem(name, logger)
        if reason:
            raise ConfigError(reason)


# -- the fan-out -----------------------------------------------------------------------------------------


def read_state(run_dir: Path) -> Dict[str, Any]:
    """``trackers.json`` of ``run_dir``: ``{"step": <last summary's step>, "trackers": {name: state}}``."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        return {"step": 0, "trackers": {}}
    try:
        state = json.loads(path.read_text())
        state = {"step": int(state["step"]), "trackers": dict(state["trackers"])}
        unknown = set(state["trackers"]) - set(TRACKERS)
        if unknown:
            raise ValueError(f"unknown trackers {sorted(unknown)}")
        return state
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: not a trackers file translate can read ({err}); move it aside to start new tracker runs") from None


class Trackers:
    """Every tracker a run logs to; each call goes to all of them. Rank 0 opens them; with none, each call
    does nothing."""

    def __init__(self, run_dir: Path, trackers: Sequence[Tracker] = ()) -> None:
        self.run_dir = run_dir
        self.trackers = list(trackers)

    def __bool__(self) -> bool:
        return bool(self.trackers)

    @classmethod
    def open(cls, run_dir: Path, logger: LoggerConfig, step: int, label: str, names: Optional[Sequence[str]] = None) -> "Trackers":
        """The trackers ``logger`` chooses (or ``names``), each continuing the run that ``trackers.json`` names
        for it, else starting one named ``label``; ``step``: the step training starts at (0: none to purge)."""
        saved = read_state(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        opened: List[Tracker] = []
        try:
            for name in logger.trackers if names is None else names:
                opened.append(TRACKERS[name](run_dir, getattr(logger, name), saved["trackers"].get(name, {}), step, label))
        except BaseException:
            for tracker in opened:
                tracker.close(failed=True)
            raise
        fanout = cls(run_dir, opened)
        fanout._save(saved["step"])
        return fanout

    def _save(self, step: int) -> None:
        state = read_state(self.run_dir)
        state["step"] = step
        state["trackers"].update({tracker.name: tracker.state() for tracker in self.trackers})
        atomic_write(self.run_dir / STATE_FILE, lambda tmp: Path(tmp).write_text(json.dumps(state, indent=1) + "\n"))

    def log_config(self, config: Mapping[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.log_config(config)

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        for tracker in self.trackers:
            tracker.log_scalars(step, values)

    def log_image(self, tag: str, step: int, image: torch.Tensor) -> None:
        for tracker in self.trackers:
            tracker.log_image(tag, step, image)

    def log_summary(self, step: int, values: Mapping[str, float]) -> None:
        for tracker in self.trackers:
            tracker.log_summary(step, values)
        if self.trackers:
            self._save(step)

    def close(self, failed: bool = False) -> None:
        for tracker in self.trackers:
            tracker.close(failed)
        self.trackers = []


def report_test(run_dir: Path, prefix: str, metrics_file: Path) -> None:
    """translate-test's metrics (``metrics_file``, ``{name: {"mean": value, ...}}``) to the trackers the run in
    ``run_dir`` logged to, as ``<prefix>/<name>`` in their summaries at the run's last step. A tracker that
    cannot log from here is left out with a warning: the metrics are in ``metrics_file`` all the same."""
    state = read_state(run_dir)
    if not state["trackers"] or not metrics_file.is_file():
        return
    values = {f"{prefix}/{name}": float(entry["mean"]) for name, entry in json.loads(metrics_file.read_text()).items()}
    # Each tracker's section as the run saved it (trackers.json holds what reaching it takes).
    sections = {}
    for name, saved in state["trackers"].items():
        keys = {field.name for field in dataclasses.fields(TRACKERS[name].config)}
        sections[name] = {key: value for key, value in saved.items() if key in keys}
    logger = to_typed(LoggerConfig, sections, "logger")
    names = []
    for name in logger.trackers:
        reason = problem(name, logger)
        if reason:
            log.warning("%s; the test metrics are not logged there (they are in %s)", reason, metrics_file)
        else:
            names.append(name)
    try:
        trackers = Trackers.open(run_dir, logger, 0, run_dir.name, names)
        try:
            trackers.log_summary(state["step"], values)
        finally:
            trackers.close()
    except Exception as err:  # noqa: BLE001 - the test's outputs are written; a tracker out of reach is not its failure
        log.warning("the test metrics could not be logged to the run's trackers (%s); they are in %s", _first_line(err), metrics_file)
