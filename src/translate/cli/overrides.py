"""Checking a command line's ``key=value`` overrides before Hydra runs them.

Hydra reports a misspelled key with its advice to append it with ``+``, and a bad value over several lines
of its internals. Composing once here first turns each into one line that names the key and value, and
suggests the nearest real key or option.
"""

from __future__ import annotations

import difflib
import re
from typing import Iterator, List, Optional

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException, OverrideParseException
from omegaconf import DictConfig

from translate.cli.app import config_dir
from translate.errors import ConfigError


def _keys(node: DictConfig, prefix: str = "") -> Iterator[str]:
    for key in node:
        child = node._get_node(key)
        path = f"{prefix}{key}"
        yield path
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            yield from _keys(child, f"{path}.")


def _nearest(word: str, choices: List[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


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


def _without_flags(args: List[str]) -> List[str]:
    kept = []
    for previous, arg in zip([None, *args], args):
        if not arg.startswith("-") and previous not in _FLAGS_WITH_VALUE:
            kept.append(arg)
    return kept


def _checkable(args: List[str]) -> Optional[List[str]]:
    """The overrides among ``args`` as Hydra's compose API takes them: Hydra's flags and settings left to
    Hydra, each sweep (``a=1,2``) replaced by its first value. None when they do not parse (Hydra says why)."""
    try:
        parsed = OverridesParser.create().parse_overrides(_without_flags(args))
    except OverrideParseException:
        return None
    checked = []
    for override in parsed:
        if override.is_hydra_override():
            continue
        if override.is_sweep_override():
            try:
                checked.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
            except (ValueError, StopIteration, HydraException):  # interval sweeps have no first value; Hydra checks them
                continue
        else:
            checked.append(override.input_line)
    return checked


def _compose(config_name: str, overrides: List[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name="check"):
            return compose(config_name, overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


def _message(err: ConfigCompositionException, config_name: str, overrides: List[str]) -> str:
    """One line for a composition error of ``overrides``."""
    text = str(err)
    cause = str(err.__cause__ or "")
    unknown_key = re.match(r"Could not (?:override|delete from config)\. '?([\w./@-]+)'?|Could not override '([\w./@-]+)'", text)
    if unknown_key:
        key = unknown_key.group(1) or unknown_key.group(2)
        rest = [o for o in overrides if o.lstrip("~+").split("=", 1)[0] != key]
        try:
            known = list(_keys(_compose(config_name, rest)))
        except ConfigCompositionException:
            known = []
        parent, _, name = key.rpartition(".")
        siblings = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent]
        hint = _nearest(name, siblings).replace("mean ", f"mean {parent}." if parent else "mean ")
        given = next((o for o in overrides if o.lstrip("~+").split("=", 1)[0] == key), key)
        return f"{given}: {key} is not a key of this config{hint} (--cfg job lists every key)"
    missing_option = re.match(r"In '[^']*': Could not find '([\w/]+)/([\w.-]+)'|Could not find '([\w/]+)/([\w.-]+)'", text)
    if missing_option:
        group, option = (missing_option.group(1), missing_option.group(2)) if missing_option.group(1) else missing_option.group(3, 4)
        available = re.findall(r"^\t(\S+)$", text, re.M)
        return f"{group}={option} is not an option of {group}{_nearest(option, available)} (options: {', '.join(available)})"
    merging = re.match(r"Error merging override (.+)", text)
    if merging and cause:
        full_key = re.search(r"full_key: (\S+)", cause)
        detail = cause.splitlines()[0]
        key = full_key.group(1) if full_key else merging.group(1).split("=", 1)[0]
        return f"{key}: {detail} (from {merging.group(1)})"
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _check_no_sweep(args: List[str]) -> None:
    """Without -m a comma value (``model.diffaugment=color,cutout``) is a sweep Hydra refuses over several
    lines; say in one how to pass it as one string, or to sweep."""
    if "-m" in args or "--multirun" in args:
        return
    try:
        parsed = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except OverrideParseException:
        return
    for override in parsed:
        if not override.is_hydra_override() and override.is_sweep_override():
            key, value = override.input_line.split("=", 1)
            raise ConfigError(
                f"{override.input_line}: a comma separates the values of a sweep on the command line; for one value, "
                f"quote it: \"{key}='{value}'\" (or add -m to run one job per value)"
            )


def check_overrides(config_name: str, args: List[str]) -> Optional[DictConfig]:
    """Compose ``config_name`` with the overrides among ``args`` and return it (a sweep with its first
    values); raise ConfigError with one line naming a key, value or group option that does not fit.
    None when the overrides do not parse: Hydra says why."""
    _check_no_sweep(args)
    overrides = _checkable(args)
    if overrides is None:
        return None
    try:
        return _compose(config_name, overrides)
    except ConfigCompositionException as err:
        raise ConfigError(_message(err, config_name, overrides)) from None
