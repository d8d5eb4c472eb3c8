"""The command line against the configs, before Hydra runs it: each ``key=value`` and ``group=option`` checked
on a composed config, so that a misspelled key, an unknown option or a value of the wrong type stops with
one line naming it (and the nearest real key or option) instead of Hydra's advice and traceback.

Only public interfaces are used: Hydra's override parser and compose API, its config loader's group
listing, and OmegaConf's select and update (whose exceptions carry the key and the reason as attributes).
Nothing here reads the text of an error message.
"""

from __future__ import annotations

import contextlib
import difflib
from typing import Any, Iterator, List, Optional, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from translate.cli.app import config_dir
from translate.errors import ConfigError

#: Hydra's flags whose value is the next argument (``--cfg job``), not an override.
_FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--info",
    "-i",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
}
_SWEEPER_PARAMS = "hydra.sweeper.params."
_ABSENT = object()


def overrides_of(args: Sequence[str]) -> List[str]:
    """The overrides among a command line's arguments (Hydra's flags and their values left out)."""
    kept = []
    for previous, arg in zip([None, *args], args):
        if not arg.startswith("-") and previous not in _FLAGS_WITH_VALUE:
            kept.append(arg)
    return kept


def parse(overrides: Sequence[str]) -> Optional[List[Override]]:
    """``overrides`` parsed by Hydra's grammar; None when they do not parse (Hydra then says why)."""
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException:
        return None


@contextlib.contextmanager
def hydra_context() -> Iterator[None]:
    """Hydra initialised on translate's configs for the duration (for :func:`compose_config`)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name="train"):
            yield
    finally:
        GlobalHydra.instance().clear()


def compose_config(config_name: str, overrides: Sequence[str], return_hydra_config: bool = False) -> DictConfig:
    """The config Hydra composes for ``translate-<config_name> <overrides>`` (its compose API)."""
    with hydra_context():
        return compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


def _line(override: Override) -> str:
    """The override as it was typed (``key=value``)."""
    return override.input_line or f"{override.get_key_element()}={override.get_value_string()}"


def _nearest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _is_group(loader: Any, key: str, top: Sequence[str]) -> bool:
    """Whether ``key`` names a config group (``model``, ``hydra/sweeper``): a dotted key never does."""
    if "." in key:
        return False
    parent, _, name = key.rpartition("/")
    return name in (top if not parent else loader.list_groups(parent))


def _first_value(override: Override) -> Any:
    """The value to check: a sweep's first (``a=1,2``: 1), None for a range with no first value (Optuna's
    ``interval(...)``), which the sweeper checks itself."""
    if not override.is_sweep_override():
        return override.value()
    try:
        return next(iter(override.sweep_iterator()))
    except (ValueError, StopIteration, HydraException):
        return _ABSENT


def _check_no_sweep(parsed: Sequence[Override], multirun: bool) -> None:
    """Without -m a comma value (``model.diffaugment=color,cutout``) is a sweep Hydra refuses over several
    lines; say in one how to pass it as one string, or to sweep."""
    if multirun:
        return
    for override in parsed:
        if not override.is_hydra_override() and override.is_sweep_override():
            key, value = _line(override).split("=", 1)
            raise ConfigError(
                f"{_line(override)}: a comma separates the values of a sweep on the command line; for one value, "
                f"quote it: \"{key}='{value}'\" (or add -m to run one job per value)"
            )


def _check_sweeper_params(parsed: Sequence[Override]) -> None:
    """Hydra takes no ranges in its own keys: an Optuna search space on the command line is the override of the
    key itself (the sweeper reads ``key=interval(...)`` as the space to search)."""
    for override in parsed:
        if _line(override).startswith(_SWEEPER_PARAMS):
            line = _line(override)[len(_SWEEPER_PARAMS) :]
            raise ConfigError(f"{_line(override)}: Hydra takes no ranges in its own keys; give the search space as {line}")


def check_command_line(config_name: str, args: Sequence[str]) -> None:
    """Check the overrides among ``args`` against ``translate-<config_name>``'s configs (a sweep by its first
    values); raise ConfigError with one line naming a key, value or group option that does not fit. Overrides
    that do not parse are left to Hydra, which says why."""
    parsed = parse(overrides_of(args))
    if parsed is None:
        return
    _check_no_sweep(parsed, multirun="-m" in args or "--multirun" in args)
    _check_sweeper_params(parsed)
    own = [o for o in parsed if not o.is_hydra_override()]
    with hydra_context():
        loader = GlobalHydra.instance().config_loader()
        top = loader.list_groups("")
        choices = [o for o in own if _is_group(loader, o.key_or_group, top)]
        for override in choices:
            value = _first_value(override)
            options = loader.get_group_options(override.key_or_group)
            # A list (logger=[tensorboard,csv]) picks several options, merged in order.
            for one in value if isinstance(value, list) else [value]:
                if override.type != OverrideType.DEL and one is not _ABSENT and one is not None and str(one) not in options:
                    group = override.key_or_group
                    raise ConfigError(
                        f"{group}={one} is not an option of {group}{_nearest(str(one), options)} (options: {', '.join(options)})"
                    )
        first = [_line(o) if o.type == OverrideType.DEL else f"{o.get_key_element()}={_as_value(_first_value(o))}" for o in choices]
        cfg = compose(config_name, overrides=first, return_hydra_config=False)
    for override in own:
        if override in choices or override.type in (OverrideType.ADD, OverrideType.FORCE_ADD):
            continue  # +key adds what is not there yet; Hydra refuses a key that already is
        _check_value(cfg, override)


def _as_value(value: Any) -> str:
    """A group's choice as an override's value: ``a``, or ``[a,b]`` for a list of options."""
    return f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)


def _check_value(cfg: DictConfig, override: Override) -> None:
    key = override.key_or_group
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None, throw_on_resolution_failure=False) if parent else cfg
    siblings = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
    if name not in siblings:
        hint = _nearest(name, siblings).replace("mean ", f"mean {parent}." if parent else "mean ")
        raise ConfigError(f"{_line(override)}: {key} is not a key of this config{hint} (--cfg job lists every key)")
    value = _first_value(override)
    if override.type == OverrideType.DEL or value is _ABSENT:
        return
    try:
        OmegaConf.update(cfg, key, value, merge=True)
    except OmegaConfBaseException as err:
        reason = str(getattr(err, "msg", err)).splitlines()[0]
        raise ConfigError(f"{key}: {reason} (from {_line(override)})") from None
