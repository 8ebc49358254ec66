"""The keys of the configuration file, derived from submit-suite's click parameters, and how a
value written in the file or in the environment is read through the option's own click type.

Pure: no file or environment is read here; a path value is joined to the directory given.
"""

from __future__ import annotations

import datetime
import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from farm.errors import UsageError

#: submit-suite's options that are no key of the file: `--no-wait` turns a submission into a
#: fire-and-forget one (a choice of the moment, which also needs a broker), `--profile` chooses
#: the file's layers (FARM_PROFILE is its environment variable), `--help` is none.
EXCLUDED = frozenset({"no-wait", "profile", "help"})
#: A key's environment variable is FARM_<KEY> (upper case, `-` as `_`), or the option's own
#: `envvar` (`--pool`: FARM_POOL, `--broker`: FARM_BROKER_URL), except where that name means
#: something else already: FARM_TEST_TIMEOUT is the runner plugin's (workers/backends/base.py
#: sets it in every test's environment, `0.0` without a limit), so a `farm submit-suite` run by
#: a test under farm would read it.
ENV_NAMES = {"test-timeout": "FARM_SUITE_TEST_TIMEOUT"}


if TYPE_CHECKING:  # generic from click 8.2 on, not in 8.1
    _Type = click.ParamType[object]
else:
    _Type = click.ParamType


class ParsedText(_Type):
    """An option's text that the command reads later with `parse` (a duration, a size), so that its
    usage error names the option as before: passed through as given on the command line, and
    checked with `parse` when it comes from the file or the environment."""

    def __init__(self, name: str, parse: Callable[[str], object], description: str) -> None:
        self.name = name
        self.parse = parse
        self.description = description

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> object:
        return value


@dataclass(frozen=True)
class Key:
    """One key of the file: a submit-suite option (or its trailing pytest arguments)."""

    name: str  # as written in the file: the long option without its dashes ("max-failures")
    param: str  # the click parameter's name ("max_failures")
    type: click.ParamType[Any]
    multiple: bool  # a TOML array (a repeatable option, pytest-args)
    flag: bool
    envvar: str
    default: object  # what the command has when nothing sets it

    @property
    def is_path(self) -> bool:
        """A path value written in the file is relative to the file's directory."""
        return isinstance(self.type, click.Path)


def keys_of(command: click.Command) -> dict[str, Key]:
    """The file's keys, in the order of the command's parameters: every option by its long name
    (but EXCLUDED), and a variadic argument (submit-suite's PYTEST_ARGS: `pytest-args`)."""
    keys: dict[str, Key] = {}
    ctx = click.Context(command)
    options_first = sorted(command.params, key=lambda p: isinstance(p, click.Argument))
    for param in options_first:
        if isinstance(param, click.Option):
            longs = [o for o in param.opts if o.startswith("--")]
            if not longs or param.name is None:
                continue
            name = longs[0][2:]
            flag = param.is_flag
        elif isinstance(param, click.Argument) and param.nargs == -1 and param.name:
            name, flag = param.name.replace("_", "-"), False
        else:
            continue
        if name in EXCLUDED:
            continue
        multiple = param.multiple or param.nargs == -1
        default = param.get_default(ctx)
        if not isinstance(default, (str, int, float, tuple, list, Path)):
            default = None  # none given (click 8.3 says so with a sentinel of its own, 8.1 with None)
        if isinstance(default, list):
            default = tuple(default)
        if default is None and multiple:
            default = ()
        elif default is None and flag:
            default = False
        own = param.envvar if isinstance(param.envvar, str) else None
        envvar = ENV_NAMES.get(name) or own or "FARM_" + name.replace("-", "_").upper()
        keys[name] = Key(name, param.name, param.type, multiple, flag, envvar, default)
    return keys


# --- reading a value ----------------------------------------------------------------------


def from_file(key: Key, raw: object, where: str, directory: Path) -> object:
    """A value written in the file (TOML), as the command takes it; `where` names it in errors
    (`pyproject.toml: [tool.farm] max-failures`)."""
    if not key.multiple:
        return _one(key, raw, where, directory)
    if not isinstance(raw, list):
        raise UsageError(f"{where}: expected an array, each {describe(key)}, got {shown(raw)}")
    return tuple(_one(key, item, f"{where}[{i}]", directory) for i, item in enumerate(raw))


def from_env(key: Key, raw: str, where: str) -> object:
    """A value from an environment variable: shell words for an array, else the option's text."""
    if not key.multiple:
        return _converted(key, raw, where, raw)
    try:
        words = shlex.split(raw)
    except ValueError as exc:
        raise UsageError(f"{where}: expected shell words, one per value ({exc}), got {shown(raw)}") from None
    return tuple(_converted(key, w, where, w) for w in words)


def _one(key: Key, raw: object, where: str, directory: Path) -> object:
    """One TOML value: its own type (an integer for an integer option...) or the text the command
    line takes; a path relative to `directory`."""
    text: object = raw
    if isinstance(raw, str):
        if key.is_path and raw:
            text = str(directory / Path(raw).expanduser())
    elif not _natural(key.type, key.flag, raw):
        raise UsageError(f"{where}: expected {describe(key)}, got {shown(raw)}")
    elif isinstance(key.type, ParsedText):
        text = str(raw)  # a number of seconds or bytes, read as the command line reads it
    return _converted(key, text, where, raw)


def _natural(kind: click.ParamType[Any], flag: bool, raw: object) -> bool:
    """Whether a TOML value that is no string is of the type the option takes."""
    if flag or isinstance(kind, click.types.BoolParamType):
        return isinstance(raw, bool)
    if isinstance(raw, bool):
        return False
    if isinstance(kind, click.types.IntParamType):
        return isinstance(raw, int)
    if isinstance(kind, (click.types.FloatParamType, ParsedText)):
        return isinstance(raw, (int, float))
    return False


def _converted(key: Key, value: object, where: str, raw: object) -> object:
    kind = click.BOOL if key.flag else key.type
    try:
        out = kind.convert(value, None, None)
        if isinstance(kind, ParsedText):
            kind.parse(str(out))
    except (click.BadParameter, ValueError) as exc:
        reason = exc.format_message() if isinstance(exc, click.BadParameter) else ""
        extra = f" ({reason})" if isinstance(kind, click.Path) and reason else ""
        raise UsageError(f"{where}: expected {describe(key)}, got {shown(raw)}{extra}") from None
    return out


def describe(key: Key) -> str:
    """What a value of the key must be, as an error says it: `an integer >= 0`."""
    return _describe(click.BOOL if key.flag else key.type)


def _describe(kind: click.ParamType[Any]) -> str:
    if isinstance(kind, ParsedText):
        return kind.description
    if isinstance(kind, click.types.BoolParamType):
        return "true or false"
    if isinstance(kind, click.Choice):
        return "one of " + ", ".join(str(c) for c in kind.choices)
    if isinstance(kind, click.Path):
        what = "file" if not kind.dir_okay else "directory" if not kind.file_okay else "path"
        return f"an existing {what}" if kind.exists else f"a {what} path"
    if isinstance(kind, (click.IntRange, click.FloatRange)):
        noun = "an integer" if isinstance(kind, click.IntRange) else "a number"
        return noun + _range(kind.min, kind.max, kind.min_open, kind.max_open)
    if isinstance(kind, click.types.IntParamType):
        return "an integer"
    if isinstance(kind, click.types.FloatParamType):
        return "a number"
    return "a string"


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None and not (low_open or high_open):
        return f" from {low:g} to {high:g}"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " " + " and ".join(parts) if parts else ""


def shown(value: object) -> str:
    """A value as the user wrote it, for an error: `"x"`, `3`, `true`, `["a"]`, `a table`."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def plain(value: object) -> object:
    """A value as JSON holds it (paths as strings, tuples as lists)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [plain(v) for v in value]
    return value
