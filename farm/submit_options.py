"""submit-suite's options for what a suite runs in and must meet (environment, gates, stages,
quarantine), read into the model's values; a bad one is a UsageError naming it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from farm.errors import UsageError
from farm.model import Stage
from farm.suite_env import SuiteEnv

STAGE_NAME = re.compile(r"[A-Za-z][\w-]*\Z")
#: A requirement file bigger than this is not a requirement file (it travels in the suite's spec).
MAX_REQUIREMENTS_BYTES = 256 * 1024


def suite_env(requirements: tuple[Path, ...], install: tuple[str, ...], install_mode: str) -> SuiteEnv:
    """The environment from --requirements files (read here) and --install specs."""
    files = []
    for path in requirements:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"--requirements {path}: cannot read it: {exc.strerror or exc}") from None
        if len(data) > MAX_REQUIREMENTS_BYTES:
            raise UsageError(f"--requirements {path}: {len(data)} bytes, more than a requirement file holds "
                             f"({MAX_REQUIREMENTS_BYTES})")
        try:
            files.append((str(path), data.decode("utf-8")))
        except UnicodeDecodeError:
            raise UsageError(f"--requirements {path}: not UTF-8 text") from None
    for spec in install:
        if not spec.strip():
            raise UsageError("--install: an empty spec")
    return SuiteEnv(requirements=tuple(files), install=tuple(s.strip() for s in install), install_mode=install_mode)


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
