"""The commands and links of README.md and docs/*.md work as written.

Every ``translate-train``, ``translate-test``, ``translate-export``, ``translate-apply``, ``translate-bundle`` and
``translate-demo`` command in a fenced code block is
composed against the configs in this process, as the command composes it before it runs. A command that the
docs show failing (the line right after it is ``translate-<x>: error: <message>``) must fail with that very
message. Every relative link must point to a file that exists (and to a heading of it, for ``#anchors``).
"""

from __future__ import annotations

import re
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from helpers import compose_config
from translate.cli.app import runs_nothing
from translate.cli.compose import check_command_line, overrides_of
from translate.errors import TranslateError
from translate.settings.validate import validate_apply, validate_bundle, validate_demo, validate_export, validate_test, validate_train

PROGRAMS = {
    "translate-train": "train",
    "translate-test": "test",
    "translate-export": "export",
    "translate-apply": "apply",
    "translate-bundle": "bundle",
    "translate-demo": "demo",
}


def check_command(program: str, args: List[str]) -> None:
    """Compose ``program``'s config with ``args`` as the command does before it runs; raise TranslateError
    with its one-line message where it would stop. (The one place that calls translate.cli.)"""
    config_name = PROGRAMS[program]
    check_command_line(config_name, args)
    if runs_nothing(args) or "-m" in args or any(a.startswith("resume=") for a in args):
        # --help and --cfg describe; a sweep's jobs check their own configs; a resume composes the run's first
        return
    # what the command checks next, before it reads any data
    VALIDATE[config_name](compose_config(config_name, *overrides_of(args)))


VALIDATE = {
    "train": validate_train,
    "test": validate_test,
    "export": validate_export,
    "apply": validate_apply,
    "bundle": validate_bundle,
    "demo": validate_demo,
}


ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: What a ``<...>`` placeholder becomes when it is a whole value (``run=<run dir>``); inside a longer value
#: (``outputs/pix2pix/facades/<timestamp>``) it becomes a plain word. Composition never opens these paths.
PLACEHOLDER_PATH = str(Path(tempfile.gettempdir()) / "translate-docs-placeholder")
PLACEHOLDER_WORD = "placeholder"

#: The output line of a command that fails, right after it in the same block.
ERROR_LINE = re.compile(r"^(translate-(?:train|test|export|apply|bundle|demo)): error: (.*)$")
#: A line that may hold a command (log lines and prose are left alone).
MENTION = re.compile(r"(?:^|[\s/\"'])translate-(?:train|test|export|apply|bundle|demo)(?=[\s\"']|$)")
#: Shell syntax that ends a command's arguments.
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1", "&>"}


@dataclass
class Command:
    where: str  # page:line
    program: str
    args: List[str]
    error: Optional[str] = None  # the message the docs show it failing with

    def __str__(self) -> str:
        return f"{self.where}: {self.program} {' '.join(self.args)}"


def fenced_blocks(page: Path) -> Iterator[tuple[int, List[str]]]:
    """(line number of the first line, lines) of each fenced code block of ``page``."""
    fence, start, lines = None, 0, []
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        marker = re.match(r"^\s*(```+|~~~+)", line)
        if fence is None and marker:
            fence, start, lines = marker.group(1), number + 1, []
        elif fence is not None and line.strip().startswith(fence):
            yield start, lines
            fence = None
        elif fence is not None:
            lines.append(line)


def logical_lines(start: int, lines: List[str]) -> Iterator[tuple[int, str]]:
    """The block's lines with ``\\`` continuations joined, each with its first line's number."""
    pending, first = "", start
    for number, line in enumerate(lines, start=start):
        if not pending:
            first = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield first, pending + line
        pending = ""
    if pending:
        yield first, pending


def _substitute(line: str) -> str:
    line = re.sub(r"\$\([^()]*\)", PLACEHOLDER_PATH, line)  # $(ls -td ... | head -n 1)
    line = re.sub(r"\$\{?\w+\}?", PLACEHOLDER_WORD, line)  # $OUT, ${TORCH_HOME}
    line = re.sub(r"(?<==)<[^<>\s][^<>]*>(?=[\s\"']|$)", PLACEHOLDER_PATH, line)  # run=<run dir>
    return re.sub(r"<[^<>\s][^<>]*>", PLACEHOLDER_WORD, line)  # outputs/pix2pix/facades/<timestamp>


def _find_command(tokens: List[str]) -> Optional[tuple[str, List[str]]]:
    for i, token in enumerate(tokens):
        if Path(token).name in PROGRAMS:
            args = []
            for arg in tokens[i + 1 :]:
                if arg in SHELL_OPERATORS or arg.startswith((">", "2>")):
                    break
                args.append(arg)
            return Path(token).name, args
        if " " in token and any(name in token for name in PROGRAMS):  # sbatch --wrap "srun translate-train ..."
            found = _find_command(shlex.split(token))
            if found:
                return found
    return None


def commands(page: Path) -> Iterator[Command]:
    """Every translate-train/-test/-export/-apply command in the fenced blocks of ``page``."""
    name = page.relative_to(ROOT)
    for start, lines in fenced_blocks(page):
        previous: Optional[Command] = None
        for number, line in logical_lines(start, lines):
            text = re.sub(r"^\s*\$\s+", "", line)  # a shell prompt
            error = ERROR_LINE.match(text.strip())
            if error:
                if previous is not None:
                    assert error.group(1) == previous.program, f"{name}:{number}: {error.group(1)}'s error after {previous}"
                    previous.error = error.group(2)
                    yield previous
                previous = None
                continue
            found = None
            if MENTION.search(text):
                try:
                    found = _find_command(shlex.split(_substitute(text), comments=True))
                except ValueError as err:  # an unclosed quote: the shell would not run it either
                    raise AssertionError(f"{name}:{number}: {err}: {text}") from None
            if previous is not None:
                yield previous
            previous = Command(f"{name}:{number}", *found) if found else None
        if previous is not None:
            yield previous


ALL_COMMANDS = [command for page in PAGES for command in commands(page)]


def _unique(found: List[Command]) -> List[Command]:
    """One of each command (composing costs a tenth of a second); its ``where`` names every place it appears."""
    first: dict = {}
    for command in found:
        key = (command.program, tuple(command.args), command.error)
        if key in first:
            first[key].where += f", {command.where}"
        else:
            first[key] = Command(command.where, command.program, command.args, command.error)
    return list(first.values())


UNIQUE_COMMANDS = _unique(ALL_COMMANDS)


def test_the_docs_hold_commands_of_every_kind():
    """A parser that found nothing would pass every check below."""
    programs = {c.program for c in ALL_COMMANDS}
    assert programs == set(PROGRAMS), programs
    assert sum(c.error is not None for c in ALL_COMMANDS) >= 5
    assert len(ALL_COMMANDS) >= 60, len(ALL_COMMANDS)


@pytest.mark.parametrize("command", [c for c in UNIQUE_COMMANDS if c.error is None], ids=str)
def test_documented_command_composes(command):
    try:
        check_command(command.program, command.args)
        refused = None
    except TranslateError as err:
        refused = f"{command}\n  {command.program}: error: {err}"
    assert refused is None, refused


@pytest.mark.parametrize("command", [c for c in UNIQUE_COMMANDS if c.error is not None], ids=str)
def test_documented_error_is_what_the_command_prints(command):
    with pytest.raises(TranslateError) as caught:
        check_command(command.program, command.args)
    assert str(caught.value) == command.error


# --- links -----------------------------------------------------------------------------------------------


def _without_blocks(page: Path) -> str:
    return re.sub(r"^\s*(```+|~~~+).*?^\s*\1\s*$", "", page.read_text(), flags=re.M | re.S)


def _prose(page: Path) -> str:
    """``page`` without its fenced blocks and code spans, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", _without_blocks(page))


def _anchors(page: Path) -> set[str]:
    """The ``#anchors`` GitHub gives the headings of ``page``: lower case, punctuation dropped, spaces to hyphens."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", _without_blocks(page), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, n = slug, 1
        while anchor in anchors:
            anchor, n = f"{slug}-{n}", n + 1
        anchors.add(anchor)
    return anchors


def links(page: Path) -> Iterator[str]:
    for target in re.findall(r"\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)", _prose(page)):
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_and_headings(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, broken


def test_the_readme_links_every_docs_page():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(ROOT / "README.md")}
    assert not [p.name for p in PAGES[1:] if p not in linked]
