"""The YAML configs compose, and the command-line check and ``validate_train`` turn every bad key, type or
choice into a one-line error that names it, before any data is read. The command-line checks run against
the installed Hydra and OmegaConf: a release that changes what they raise fails here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from translate.cli.app import config_dir
from translate.cli.compose import check_command_line
from translate.data.configs import ImageDataConfig, MNISTDataConfig
from translate.errors import ConfigError
from translate.models import MODELS, model_class
from translate.settings.validate import check_model_data, typed_data, typed_model, validate_train

CONF = Path(config_dir())
# hydra/ configures run directories, not the job; the CLI tests check where runs go.
GROUPS = sorted(d.name for d in CONF.iterdir() if d.is_dir() and d.name != "hydra")
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))]
# The key whose value each option of these groups must carry: run directories and logs are named by them.
NAMED_BY = {"model": "name", "data": "name", "device": "accelerator", "logger": "name"}


def _pairing(group: str, cfg, default_model: str) -> tuple[list[str], bool]:
    """Overrides that give ``cfg`` a model and data that fit each other, keeping ``group``'s choice, and
    whether the pair is a test-time one (image models also translate a ``single`` folder in translate-test).
    An option that picks the model (a model, or a preset such as experiment=fastcut) gets data for it."""
    model, kind = model_class(cfg.model.name), cfg.data.kind
    if kind in model.data_kinds:
        return [], False
    if group == "model" or cfg.model.name != default_model:
        return [f"data={model.data_kinds[0]}"], False
    testing = kind == "single"
    fits = [name for name in MODELS if (model_class(name).task == "translate" if testing else kind in model_class(name).data_kinds)]
    assert fits, f"no model trains on data.kind={kind}"
    return [f"model={fits[0]}"], testing


def test_every_group_has_options():
    assert {"model", "data", "device", "trainer", "logger", "paths", "experiment", "debug"} <= set(GROUPS)
    assert ("model", "cgan") in OPTIONS and ("data", "mnist_subset") in OPTIONS and ("debug", "smoke") in OPTIONS


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes_and_validates(compose_config, group, option):
    cfg = compose_config("train", f"{group}={option}")
    pairing, testing = _pairing(group, cfg, compose_config("train").model.name)
    # a folder dataset without a preset names no folder: the run would refuse to start without one
    root = ["data.root=/data"] if OmegaConf.is_missing(compose_config("train", f"{group}={option}", *pairing).data, "root") else []
    if pairing or root:
        cfg = compose_config("train", f"{group}={option}", *pairing, *root)
    if testing:  # translate-test's check of a run's model against the data given now
        check_model_data(typed_model(cfg.model), typed_data(cfg.data), testing=True)
        return
    # every interpolation (paths, presets' roots) resolves on the way
    typed = validate_train(cfg)
    if group in NAMED_BY:
        assert str(getattr(getattr(typed, group), NAMED_BY[group])) == option


def test_defaults_are_the_conditional_gan_of_the_issue(compose_config):
    cfg = validate_train(compose_config("train"))
    m = cfg.model
    assert (m.name, m.z_dim, m.num_classes, m.gan_mode) == ("cgan", 100, 10, "vanilla")
    assert (m.optim.lr, m.optim.beta1, m.optim.beta2) == (2e-4, 0.5, 0.999)
    for net in (m.generator, m.discriminator):
        assert (net.init_type, net.init_gain) == ("normal", 0.02)
    assert (cfg.data.name, cfg.data.image_size) == ("mnist", 32)
    assert (cfg.device.accelerator, cfg.device.amp, cfg.device.channels_last) == ("auto", "off", False)
    assert (cfg.trainer.lr_policy, cfg.trainer.max_steps) == ("linear", None)
    assert cfg.logger.enabled and cfg.resume is None


def test_model_picks_its_schedule_and_the_command_line_still_wins(compose_config):
    assert compose_config("train").trainer.batch_size == 64
    assert compose_config("train", "trainer=default").trainer.batch_size == 1


def test_command_line_overrides_survive_validation(compose_config):
    cfg = validate_train(compose_config("train", "trainer.batch_size=7", "model.optim.lr=1e-3", "device=cpu", "seed=5"))
    assert (cfg.trainer.batch_size, cfg.model.optim.lr, cfg.device.accelerator, cfg.seed) == (7, 1e-3, "cpu", 5)


def test_debug_smoke_is_a_handful_of_steps(compose_config):
    cfg = validate_train(compose_config("train", "data=mnist_subset", "debug=smoke"))
    assert cfg.trainer.max_steps is not None and cfg.trainer.max_steps <= 10
    assert cfg.data.max_dataset_size is not None


def test_data_dir_comes_from_the_environment(compose_config, monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSLATE_DATA_DIR", str(tmp_path))
    cfg = validate_train(compose_config("train", "model=cyclegan", "data=horse2zebra"))
    assert cfg.data.root == f"{tmp_path}/horse2zebra"


# --- bad input -----------------------------------------------------------------------------------------


def _one_line(err: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


@pytest.mark.parametrize(
    "override, nearest",
    [("trainer.batchsize=3", "trainer.batch_size"), ("model.generator.ngff=8", "model.generator.ngf"), ("model.optim.xyz=1", None)],
)
def test_misspelled_key_on_the_command_line_names_the_nearest_real_key(override, nearest):
    with pytest.raises(ConfigError) as err:
        check_command_line("train", [override])
    _one_line(err, override.split("=")[0], "is not a key")
    assert (f"did you mean {nearest}?" in str(err.value)) if nearest else "did you mean" not in str(err.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("+trainer.batchsize=3", "trainer.batchsize"),
        ("+model.generator.ngff=8", "model.generator.ngff"),
        ("+data.rooot=x", "data.rooot"),
        ("+device.amps=bf16", "device.amps"),
        ("+seeed=1", "seeed"),
    ],
)
def test_unknown_key_is_refused_by_validate(compose_config, override, key):
    """A key forced in with ``+`` (or a typo in a user's own YAML) is not silently ignored."""
    with pytest.raises(ConfigError) as err:
        validate_train(compose_config("train", override))
    _one_line(err, key)


@pytest.mark.parametrize(
    "override, key, value",
    [
        ("trainer.batch_size=abc", "trainer.batch_size", "abc"),
        ("model.optim.lr=fast", "model.optim.lr", "fast"),
        ("model.z_dim=1.5", "model.z_dim", "1.5"),
        ("data.image_size=big", "data.image_size", "big"),
        ("device.channels_last=maybe", "device.channels_last", "maybe"),
    ],
)
def test_wrong_type_names_key_and_value(override, key, value):
    with pytest.raises(ConfigError) as err:
        check_command_line("train", [override])
    _one_line(err, key, value)


@pytest.mark.parametrize(
    "override, key, valid",
    [
        ("model.name=foo", "model.name", "cgan"),
        ("data.kind=foo", "data.kind", "mnist"),
    ],
)
def test_unknown_choice_names_key_value_and_the_choices(compose_config, override, key, valid):
    with pytest.raises(ConfigError) as err:
        validate_train(compose_config("train", override))
    _one_line(err, key, override.split("=")[1], valid)


@pytest.mark.parametrize(
    "override, key, valid",
    [
        ("model.gan_mode=foo", "model.gan_mode", "vanilla"),
        ("device.accelerator=tpu", "device.accelerator", "cpu"),
        ("device.amp=fp8", "device.amp", "bf16"),
        ("trainer.lr_policy=exponential", "trainer.lr_policy", "cosine"),
        ("model.generator.init_type=uniform", "model.generator.init_type", "xavier"),
    ],
)
def test_unknown_enum_value_on_the_command_line_names_key_value_and_the_choices(override, key, valid):
    with pytest.raises(ConfigError) as err:
        check_command_line("train", [override])
    _one_line(err, key, override.split("=")[1], valid)


@pytest.mark.parametrize(
    "override, valid, nearest", [("device=tpu", "cpu", None), ("model=pix2pixx", "cgan", "pix2pix"), ("data=nope", "mnist", None)]
)
def test_unknown_group_option_lists_the_options(override, valid, nearest):
    with pytest.raises(ConfigError) as err:
        check_command_line("train", [override])
    _one_line(err, override, valid)
    assert nearest is None or f"did you mean {nearest}?" in str(err.value)


def test_sweeps_are_checked_by_their_first_value_and_pass_when_valid():
    check_command_line("train", ["-m", "model.optim.lr=1e-4,2e-4", "model=cgan,pix2pix"])
    with pytest.raises(ConfigError, match="trainer.batchsize"):
        check_command_line("train", ["-m", "trainer.batchsize=1,2"])


def test_model_and_data_that_do_not_fit_are_refused(compose_config):
    with pytest.raises(ConfigError) as err:
        validate_train(compose_config("train", "model=pix2pix", "data=mnist"))
    _one_line(err, "pix2pix", "mnist", "aligned")


# --- one source for every default -------------------------------------------------------------------------


def _leaves(node, prefix=""):
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


def _parent_values(path: Path) -> dict:
    """What the config a YAML file extends (the first entry of its defaults list: a schema in Hydra's
    ConfigStore, or another file of its group) gives each key, before the file's own values."""
    parent = OmegaConf.load(path).get("defaults", [None])[0]
    if not isinstance(parent, str):
        return {}
    if parent.startswith("/"):
        node = ConfigStore.instance().load(parent[1:].split("@")[0] + ".yaml").node
        return dict(_leaves(OmegaConf.to_container(node, enum_to_str=True)))
    sibling = path.parent / f"{parent}.yaml"
    return {**_parent_values(sibling), **_own_values(sibling)}


def _own_values(path: Path) -> dict:
    raw = OmegaConf.to_container(OmegaConf.load(path))
    raw.pop("defaults", None)
    return dict(_leaves(raw))


EXTENDING = sorted(
    path for group in GROUPS for path in (CONF / group).glob("*.yaml") if isinstance(OmegaConf.load(path).get("defaults", [None])[0], str)
)


def test_the_schemas_hold_the_defaults_and_each_yaml_file_extends_one():
    """The base option of every group extends its schema, so a key has one default, in the schema."""
    bases = {CONF / "trainer/default.yaml", CONF / "device/auto.yaml", CONF / "logger/tensorboard.yaml", CONF / "paths/default.yaml"}
    bases |= {CONF / f"model/{name}.yaml" for name in MODELS} | {CONF / "data/mnist.yaml", CONF / "data/aligned.yaml"}
    for path in bases:
        assert OmegaConf.load(path).defaults[0].startswith("/schema_"), path
    assert OmegaConf.load(CONF / "train.yaml").defaults[0] == "train_schema"


@pytest.mark.parametrize("path", EXTENDING, ids=[f"{p.parent.name}/{p.stem}" for p in EXTENDING])
def test_no_yaml_file_restates_a_default_it_inherits(path):
    """A value copied from the schema (or the file extended) is a second default that drifts apart from the
    first one day; every key a file sets must change what it inherits."""
    parent = _parent_values(path)
    restated = [key for key, value in _own_values(path).items() if key in parent and str(parent[key]) == str(value)]
    assert not restated, f"{path.relative_to(CONF)} restates inherited defaults: {restated}"


def test_data_workers_default_to_what_the_machine_has(compose_config, monkeypatch):
    cores = len(os.sched_getaffinity(0))
    assert validate_train(compose_config("train", "model=pix2pix", "data=facades")).data.num_workers == min(4, cores)
    assert validate_train(compose_config("train", "data=mnist")).data.num_workers == min(2, cores)
    # a 1-core machine gets one worker, so PyTorch has no "too many workers" warning to give
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert ImageDataConfig().num_workers == 1 and MNISTDataConfig().num_workers == 1
    assert validate_train(compose_config("train", "data=mnist", "data.num_workers=3")).data.num_workers == 3
