"""submit-suite's options for what a suite runs in and must meet (environment, gates, stages,
quarantine), read into the model's values; a bad one is a UsageError naming it."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path

from farm.errors import UsageError
from farm.model import Stage
from farm.suite_env import SuiteEnv

STAGE_NAME = re.compile(r"[A-Za-z][\w-]*\Z")
#: A requirement file bigger than this is not a requirement file (it travels in the suite's spec).
MAX_REQUIREMENTS_BYTES = 256 * 1024


def suite_env(requirements: tuple[Path, ...], install: tuple[str, ...], install_mode: str) -> SuiteEnv:
    """The environment from --requirements files (read here, the files their `-r` lines name
    inlined) and --install specs."""
    files = []
    for path in requirements:
        text = _read_requirements(path, str(path))
        files.append((str(path), expand_requirements(text, str(path), _read_requirements)))
    for spec in install:
        if not spec.strip():
            raise UsageError("--install: an empty spec")
    return SuiteEnv(requirements=tuple(files), install=tuple(s.strip() for s in install), install_mode=install_mode)


#: A requirement-file line naming another file: `-r FILE`, `--requirement FILE`, `-c FILE`, `--constraint=FILE`.
_INCLUDE = re.compile(r"(--requirement|--constraint|-r|-c)(?:\s*=\s*|\s+|(?<=-[rc]))(\S+)\s*(?:#.*)?\Z")


def expand_requirements(text: str, origin: str, read: Callable[[Path, str], str],
                        chain: tuple[str, ...] = ()) -> str:
    """`text` (of the requirement file at `origin`) with each `-r FILE` line replaced by that
    file's text, expanded in turn (`read(path, where)`: FILE relative to the file naming it, as
    pip reads it): the worker gets only the text, not the files beside it. URLs are left to pip.
    A `-c FILE` (constraints) line naming a file is a UsageError: constraints cannot be inlined,
    and the worker would not have the file. Text without such lines is returned as it is; the
    text made says each line it replaced as written, never where the file was (the environment's
    key counts the text: the same files in another checkout give the same key)."""
    chain = (*chain, os.path.normpath(origin))
    out, included = [], False
    for number, line in enumerate(text.splitlines(), 1):
        match = _INCLUDE.match(line.strip())
        if match is None or "://" in match.group(2):
            out.append(line)
            continue
        option, name = match.groups()
        where = f"{origin}, line {number}"
        if option in ("-c", "--constraint"):
            raise UsageError(f"--requirements {where}: `{line.strip()}`: constraint files are not followed "
                             "(the worker gets requirement text only): put the pins in a requirement file")
        path = Path(origin).parent / name
        if os.path.normpath(path) in chain:
            raise UsageError(f"--requirements {where}: `{line.strip()}`: {path} includes itself")
        if len(chain) > 8:
            raise UsageError(f"--requirements {where}: `-r` lines nest deeper than 8 files")
        included = True
        out.append(f"# farm: {line.strip()}")
        out.append(expand_requirements(read(path, where), str(path), read, chain).rstrip("\n"))
    made = "\n".join(out) + "\n" if included else text
    if len(made.encode()) > MAX_REQUIREMENTS_BYTES:
        raise UsageError(f"--requirements {origin}: {len(made.encode())} bytes with the files its `-r` lines "
                         f"name, more than a requirement file holds ({MAX_REQUIREMENTS_BYTES})")
    return made


def _read_requirements(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        it = "it" if what == str(path) else str(path)
        raise UsageError(f"--requirements {what}: cannot read {it}: {exc.strerror or exc}") from None
    if len(data) > MAX_REQUIREMENTS_BYTES:
        raise UsageError(f"--requirements {what}: {len(data)} bytes, more than a requirement file holds "
                         f"({MAX_REQUIREMENTS_BYTES})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--requirements {what}: not UTF-8 text") from None


def stages(values: tuple[str, ...]) -> tuple[Stage, ...]:
    """--stage NAME=PYTEST_ARGS values, in order."""
    out: list[Stage] = []
    for value in values:
        name, sep, args = value.partition("=")
        name = name.strip()
        if not sep or not STAGE_NAME.match(name):
            raise UsageError(f"--stage {value!r}: expected NAME=PYTEST_ARGS, NAME a word (e.g. smoke='-m smoke')")
        if any(s.name == name for s in out):
            raise UsageError(f"--stage {name}: given twice")
        try:
            argv = tuple(shlex.split(args))
        except ValueError as exc:
            raise UsageError(f"--stage {name}: {exc}") from None
        out.append(Stage(name, argv))
    return tuple(out)
