"""The experiment trackers (``logger=``): TensorBoard, CSV, Weights & Biases and MLflow each get the config,
the losses and learning rates, the validation metrics, the image grids, the run's summary and translate-test's
metrics; a resumed run continues each tracker's run; a tracker that cannot log stops the run in one line.

W&B runs offline (its ``.wandb`` files are read back with the record format its own protobufs define) and
MLflow on a SQLite file in a temporary folder (read back with ``MlflowClient``): no account, no network.
"""

from __future__ import annotations

import csv
import json
import re
import struct
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest
from omegaconf import OmegaConf

from helpers import TINY, compose_config, expect_clear_error, read_events
from translate.cli.testing import run_test
from translate.cli.train import Attempt, train
from translate.errors import ConfigError
from translate.settings.validate import validate_test, validate_train
from translate.training import trackers

pytest.importorskip("wandb")
pytest.importorskip("mlflow")

TRACKERS = ["tensorboard", "csv", "wandb", "mlflow"]
FAST_SCORES = ("metrics.tstr_steps=0", "metrics.cgan_per_class=10")
#: debug=smoke trains 16 images in batches of 4: 4 steps an epoch; logs every step, a grid every 2 steps.
STEPS = list(range(1, 9))
GRID_STEPS = [0, 2, 4, 6, 8]


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """W&B offline with its folders in a temporary one, and no account or tracking server from the caller."""
    home = tmp_path_factory.mktemp("wandb_home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")
        env.setenv("WANDB_SILENT", "true")
        for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            env.setenv(var, str(home / var.lower()))
        for var in ("WANDB_DIR", "WANDB_API_KEY", "MLFLOW_TRACKING_URI"):
            env.delenv(var, raising=False)
        yield
        import wandb

        wandb.teardown()  # its service process ends with the tests that used it


@pytest.fixture(scope="module")
def tracked(offline, tmp_path_factory):
    """A tiny cGAN logged to every tracker (``logger=many``) for 1 epoch, resumed for 1 more, then tested,
    as translate-train and translate-test do it (config check, config.yaml, the run)."""
    root = tmp_path_factory.mktemp("tracked")
    run, store = root / "run", f"sqlite:///{root / 'mlflow.db'}"
    common = [*TINY, "logger=many", f"logger.mlflow.tracking_uri={store}"]
    train(compose_config("train", *common, "trainer.max_steps=4"), run, Attempt(resumed=False))
    first = json.loads((run / "trackers.json").read_text())
    with open(run / "metrics.csv", "a") as f:
        f.write("6,train/left_by_a_crash,1.0\n")  # a row a crash after the step-4 checkpoint would have left
    objective = train(compose_config("train", *common, "trainer.max_steps=8", f"resume={run}"), run, Attempt(resumed=True))
    out = run_test(validate_test(compose_config("test", f"run={run}", "device=cpu", "n_per_class=1", *FAST_SCORES)))
    metrics = {f"test_latest/{name}": entry["mean"] for name, entry in json.loads((out / "metrics.json").read_text()).items()}
    state = json.loads((run / "trackers.json").read_text())
    return SimpleNamespace(root=root, run=run, store=store, first=first, state=state, objective=objective, test_metrics=metrics)


def test_many_and_a_list_of_options_choose_several_trackers():
    assert validate_train(compose_config("train")).logger.trackers == ["tensorboard"]
    assert validate_train(compose_config("train", "logger=many")).logger.trackers == TRACKERS
    listed = validate_train(compose_config("train", "logger=[csv,wandb]", "logger.wandb.project=gans"))
    assert listed.logger.trackers == ["csv", "wandb"] and listed.logger.wandb.project == "gans"
    assert validate_train(compose_config("train", "logger=none")).logger.trackers == []


def test_a_resumed_run_continues_each_trackers_run(tracked):
    assert sorted(tracked.first["trackers"]) == sorted(TRACKERS)
    assert tracked.state["trackers"] == tracked.first["trackers"]  # the same W&B id, the same MLflow run
    assert tracked.state["step"] == 8
    assert tracked.objective is not None


# --- what each tracker holds ----------------------------------------------------------------------------


def test_csv_holds_every_number_and_the_grids(tracked):
    with open(tracked.run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps: Dict[str, List[int]] = defaultdict(list)
    values = {}
    for row in rows:
        steps[row["tag"]].append(int(row["step"]))
        values[row["tag"]] = float(row["value"])
    assert steps["train/loss_G/gan"] == STEPS and steps["train/lr/G"] == STEPS
    assert steps["val/fid_mnist_classifier"] == [4, 8]  # each part's final validation
    assert "train/left_by_a_crash" not in steps  # resuming from step 4 dropped it, as TensorBoard's purge
    assert values["objective"] == pytest.approx(tracked.objective)
    assert {tag: values[tag] for tag in tracked.test_metrics} == pytest.approx(tracked.test_metrics)
    assert steps[next(iter(tracked.test_metrics))] == [8]
    pngs = sorted((tracked.run / "images" / "train" / "visuals").glob("*.png"))
    assert [int(p.stem) for p in pngs] == GRID_STEPS


def test_tensorboard_holds_the_scalars_and_the_test_metrics(tracked):
    events = read_events(tracked.run / "tb")
    assert [e.step for e in events.Scalars("train/loss_G/gan")] == STEPS
    for tag, value in tracked.test_metrics.items():
        assert [(e.step, e.value) for e in events.Scalars(tag)] == [(8, pytest.approx(value))]
    assert (tracked.run / "curves.png").is_file()


def _wandb_records(path: Path) -> List[Any]:
    """The records of a ``.wandb`` file: a 7-byte header (``:W&B``, magic, version), then LevelDB-log blocks
    of 32 KiB, each record a 7-byte header (CRC, length, kind: full, first, middle, last) and a protobuf."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    position, chunks, pending = 7, [], b""
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        if left < 7:  # a block's tail too short for a header is padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 1:
            chunks.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            chunks.append(pending + chunk)
    return [wandb_internal_pb2.Record.FromString(chunk) for chunk in chunks]


def _items(items) -> Dict[str, Any]:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def test_wandb_offline_run_holds_config_history_grids_and_summary(tracked):
    run_id = tracked.state["trackers"]["wandb"]["id"]
    # training, its resume and translate-test: three offline parts of one W&B run, which wandb sync joins
    parts = sorted((tracked.run / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(parts) == 3
    records = [record for part in parts for record in _wandb_records(part / f"run-{run_id}.wandb")]
    config: Dict[str, Any] = {}
    history: Dict[str, List[int]] = defaultdict(list)
    summary: Dict[str, Any] = {}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "config":
            config.update(_items(record.config.update))
        elif kind == "history":
            row = _items(record.history.item)
            for key in row:
                history[key].append(row["_step"])
        elif kind == "summary":
            summary.update(_items(record.summary.update))
    assert config["model"]["name"] == "cgan" and config["trainer"]["max_steps"] == 8  # the resumed part's
    assert history["train/loss_G/gan"] == STEPS and history["val/fid_mnist_classifier"] == [4, 8]
    assert history["train/visuals/path"] == GRID_STEPS
    assert len(list(parts[0].glob("files/media/images/train/visuals_*.png"))) == 3  # steps 0, 2, 4
    assert summary["objective"] == pytest.approx(tracked.objective)
    assert "final/train/loss_G/gan" in summary
    assert {tag: summary[tag] for tag in tracked.test_metrics} == pytest.approx(tracked.test_metrics)


def test_mlflow_run_holds_params_metric_history_grids_and_summary(tracked):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracked.store)
    experiment = client.get_experiment_by_name("translate")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == tracked.state["trackers"]["mlflow"]["run_id"] and run.info.status == "FINISHED"
    params = run.data.params
    # MLflow keeps a param's first value; config.yaml holds the resumed part's
    assert params["model.name"] == "cgan" and params["trainer.max_steps"] == "4"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_G/gan")] == STEPS
    assert run.data.metrics["objective"] == pytest.approx(tracked.objective)
    assert {tag: run.data.metrics[tag] for tag in tracked.test_metrics} == pytest.approx(tracked.test_metrics)
    config = OmegaConf.load(client.download_artifacts(run.info.run_id, "config.yaml", str(tracked.root)))
    assert config.trainer.max_steps == 8
    # MLflow names each image file by its key and step (train~visuals+step+2+timestamp+...png)
    grids = [a.path for a in client.list_artifacts(run.info.run_id, "images") if a.path.endswith(".png")]
    assert sorted({int(re.search(r"step\D(\d+)", path).group(1)) for path in grids}) == GRID_STEPS
    assert (tracked.root / "mlartifacts").is_dir()  # beside the store, not in the working folder


# --- a sweep ---------------------------------------------------------------------------------------------


def test_each_sweep_job_logs_its_objective(run_cli, tmp_path):
    multirun = tmp_path / "multirun"
    args = ["-m", *TINY, "trainer.max_steps=1", "logger=[tensorboard,csv]", "seed=0,1", f"paths.multirun_dir={multirun}"]
    proc = run_cli("translate-train", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sweep,) = multirun.iterdir()
    for job in ("0", "1"):
        with open(sweep / job / "metrics.csv", newline="") as f:
            logged = {row["tag"]: float(row["value"]) for row in csv.DictReader(f)}
        assert logged["objective"] == pytest.approx(json.loads((sweep / job / "job.json").read_text())["objective"])
        assert "objective" in read_events(sweep / job / "tb").Tags()["scalars"]


# --- a tracker that cannot log ---------------------------------------------------------------------------


@pytest.mark.parametrize("tracker, module", [("wandb", "wandb"), ("mlflow", "mlflow"), ("mlflow", "sqlalchemy")])
def test_a_missing_package_names_the_extra_to_install(monkeypatch, tracker, module):
    real = trackers.find_spec
    monkeypatch.setattr(trackers, "find_spec", lambda name: None if name == module else real(name))
    cfg = validate_train(
        compose_config("train", f"logger=[tensorboard,{tracker}]", "logger.wandb.mode=offline" if tracker == "wandb" else "seed=0")
    )
    with pytest.raises(ConfigError) as err:
        trackers.check_ready(cfg.logger)
    assert str(err.value).count("\n") == 0 and f'pip install "translate[{tracker}]"' in str(err.value), err.value


def test_wandb_online_without_an_account_stops_before_the_run_directory(run_cli, tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))  # where `wandb login` keeps a key: none here
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    proc = run_cli("translate-train", *TINY, "logger=wandb", cwd=tmp_path)
    text = expect_clear_error(proc, "WANDB_API_KEY", "wandb login", "logger.wandb.mode=offline")
    assert "translate-train: error: logger=wandb logs online" in text
    assert not (tmp_path / "outputs").exists()


def test_test_metrics_skip_a_tracker_out_of_reach_with_a_warning(tmp_path, monkeypatch, caplog):
    """translate-test on a run whose W&B run was online, from a machine with no account: the CSV still gets
    the metrics, W&B is named in one warning."""
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    run = tmp_path / "run"
    run.mkdir()
    saved = {"step": 3, "trackers": {"csv": {}, "wandb": {"id": "abc123", "project": "translate", "entity": None, "mode": None}}}
    (run / "trackers.json").write_text(json.dumps(saved))
    (run / "test_latest").mkdir()
    (run / "test_latest" / "metrics.json").write_text(json.dumps({"PSNR": {"mean": 21.5, "num_images": 4}}))
    with caplog.at_level("WARNING", logger="translate"):
        trackers.report_test(run, "test_latest", run / "test_latest" / "metrics.json")
    with open(run / "metrics.csv", newline="") as f:
        assert list(csv.DictReader(f)) == [{"step": "3", "tag": "test_latest/PSNR", "value": "21.5"}]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "logger=wandb logs online" in warning and "metrics.json" in warning
    assert not (run / "wandb").exists()
