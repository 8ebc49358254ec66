"""docs/configuration.md's command reference held against what `--help` says, command by command."""

from __future__ import annotations

import re
import subprocess

import pytest
from support.helpers import FARM, ROOT

DOC = ROOT / "docs" / "configuration.md"
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
#: click shows choices as [a|b], argparse as {a,b}.
CHOICES = re.compile(r"\[([\w-]+(?:\|[\w-]+)+)\]|\{([\w-]+(?:,[\w-]+)+)\}")


def _help(*command: str) -> str:
    done = subprocess.run([FARM, *command, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"farm {' '.join(command)} --help exited {done.returncode}: {done.stderr}"
    return done.stdout


def _help_options(text: str) -> dict[str, set[str]]:
    """Each option --help lists (its aliases folded into one entry), with its choices if any."""
    options: dict[str, set[str]] = {}
    for line in text.splitlines():
        stripped = line.lstrip()
        if not stripped.startswith("-") or len(line) - len(stripped) not in (2, 3, 4):
            continue
        head = re.split(r"\s{2,}", stripped, maxsplit=1)[0]
        names = [n for n in OPTION.findall(head) if n not in ("-h", "--help")]
        choices: set[str] = set()
        for a, b in CHOICES.findall(head):
            choices |= set(re.split(r"[|,]", a or b))
        for name in names:
            options[name] = choices
    return options


def _commands() -> list[str]:
    """The commands `farm --help` lists."""
    text = _help()
    listed = text.split("Commands:", 1)[1]
    return [m.group(1) for m in re.finditer(r"^\s{2}([a-z][\w-]*)\s", listed, re.M)]


def _sections() -> dict[str, str]:
    """The text of each `### ` section of the reference, by its heading."""
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^### (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1].split("\n## ", 1)[0] for i in range(1, len(parts), 2)}


def _section_of(command: str) -> str:
    for heading, body in _sections().items():
        if re.search(rf"`farm {re.escape(command)}\b", heading):
            return body
    raise AssertionError(f"docs/configuration.md has no section for `farm {command}`")


def _table_rows(body: str) -> dict[str, str]:
    """The options of a section's table: each option named in a row's first cell, with its row."""
    rows: dict[str, str] = {}
    for line in body.splitlines():
        if not line.startswith("| `-"):
            continue
        first = line.split(" | ", 1)[0]
        for name in OPTION.findall(first.replace("`", " ")):
            rows[name] = line
    return rows


def test_every_command_has_a_section() -> None:
    commands = _commands()
    assert {"submit-suite", "status", "results", "events", "cancel", "up", "worker", "coordinator"} <= set(commands)
    for command in commands:
        _section_of(command)


@pytest.mark.parametrize("command", ["submit-suite", "status", "results", "events", "cancel", "history", "up", "worker",
                                     "coordinator", "config show"])
def test_the_options_table_matches_help(command: str) -> None:
    listed = _help_options(_help(*command.split()))
    rows = _table_rows(_section_of(command))
    assert listed, f"found no options in `farm {command} --help`"
    missing = sorted(set(listed) - set(rows))
    stale = sorted(set(rows) - set(listed))
    assert not missing, f"`farm {command}` options missing from docs/configuration.md: {missing}"
    assert not stale, f"docs/configuration.md lists options `farm {command}` does not have: {stale}"
    for name, choices in listed.items():
        undocumented = sorted(c for c in choices if c not in rows[name])
        assert not undocumented, f"`farm {command} {name}`: choices {undocumented} missing from its row"


def test_the_exit_code_of_a_bad_option_is_the_documented_one() -> None:
    documented = re.findall(r"a bad option exits (\d)", DOC.read_text(encoding="utf-8"))
    assert documented, "docs/configuration.md does not say what a bad option exits with"
    for command in ("submit-suite", "up", "worker", "coordinator"):
        done = subprocess.run([FARM, command, "--no-such-option"], capture_output=True, text=True, timeout=60)
        assert {int(d) for d in documented} == {done.returncode}, (command, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr
