"""The pytest options farm itself acts on (-x/--maxfail, -v/-q, -r, --tb, --durations), read from pytest args (pure).

pytest parses the command line after the project's ini `addopts`; the collecting worker reports
those effective values (`farm.model.SessionInfo`). This parser reads the same options from the
arguments alone: the client's first guess before the collection is back, and the fallback when a
worker could not say. It follows pytest's argparse rules: short flags combine (`-vx`, `-ra`), a
value follows `=` or comes as the next argument, the last occurrence wins, and `-v`/`-q` count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from farm.model import SessionInfo

#: Short options of pytest that take a value (the rest of the cluster, or the next argument).
_SHORT_WITH_VALUE = set("rkmpcoW")
#: Long options of pytest (and common plugins) that take a value, so their value is skipped.
_LONG_WITH_VALUE = {
    "--maxfail", "--tb", "--durations", "--durations-min", "--verbosity", "--deselect", "--ignore", "--ignore-glob",
    "--rootdir", "--confcutdir", "--basetemp", "--junit-xml", "--junitxml", "--junit-prefix", "--log-level",
    "--log-file", "--log-cli-level", "--log-format", "--log-date-format", "--import-mode", "--capture",
    "--show-capture", "--override-ini", "--color", "--code-highlight", "--pythonwarnings", "--timeout",
    "--dist", "--numprocesses",
}
TB_STYLES = ("auto", "long", "short", "line", "native", "no")


def parse(args: Sequence[str], base: SessionInfo | None = None) -> SessionInfo:
    """The options `args` set, over `base` (pytest's defaults when None). Unknown options are skipped."""
    info = base or SessionInfo()
    verbose = info.verbose
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if not eq and name in _LONG_WITH_VALUE and i < len(items):
                value, i = items[i], i + 1
            if name == "--verbose":
                verbose += 1
            elif name == "--quiet":
                verbose -= 1
            elif name == "--verbosity":
                verbose = _int(value, verbose)
            elif name == "--exitfirst":
                info = replace(info, maxfail=1)
            elif name == "--maxfail":
                info = replace(info, maxfail=max(0, _int(value, info.maxfail)))
            elif name == "--tb" and value in TB_STYLES:
                info = replace(info, tbstyle=value)
            elif name == "--durations":
                info = replace(info, durations=max(0, _int(value, 0)))
            elif name == "--durations-min":
                info = replace(info, durations_min=_float(value, info.durations_min))
            continue
        if not arg.startswith("-") or arg == "-":
            continue  # a path or a node id
        cluster = arg[1:]
        for pos, char in enumerate(cluster):
            if char == "v":
                verbose += 1
            elif char == "q":
                verbose -= 1
            elif char == "x":
                info = replace(info, maxfail=1)
            elif char in _SHORT_WITH_VALUE:
                value = cluster[pos + 1:]
                if not value and i < len(items):
                    value, i = items[i], i + 1
                if char == "r":
                    info = replace(info, reportchars=value)
                break
    return replace(info, verbose=verbose)


def effective(session: SessionInfo, args: Sequence[str]) -> SessionInfo:
    """The session's options as its collecting worker reported them, or as read from `args` when it
    could not (a worker whose plugin predates the report, a collection that failed outright)."""
    return session if session.python else parse(args)


def report_chars(reportchars: str) -> str:
    """pytest's reading of `-r` chars (`getreportopt`): a, A and N reset, F and S are f and s."""
    opts = ""
    for char in reportchars:
        char = char.lower() if char in "FS" else char
        if char == "a":
            opts = "sxXEf"
        elif char == "A":
            opts = "PpsxXEf"
        elif char == "N":
            opts = ""
        elif char not in opts:
            opts += char
    return opts


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _float(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default
