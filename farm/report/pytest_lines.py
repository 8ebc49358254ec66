"""The lines pytest draws: separators, banner titles, durations, the final counts line."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from farm.outcomes import SUMMARY_ORDER, Outcome
from farm.report.schema import counted_run

#: Width of separator lines, as pytest's on an 80-column terminal.
WIDTH = 80


def format_duration(seconds: float) -> str:
    """Format a session duration as pytest's final line does: `3.20s`, `75.00s (0:01:15)`."""
    if seconds < 60:
        return f"{seconds:.2f}s"
    return f"{seconds:.2f}s ({datetime.timedelta(seconds=int(seconds))})"


def separator(char: str, title: str | None = None, width: int = WIDTH) -> str:
    """A line of `char` with `title` centred in it, as pytest's TerminalWriter.sep draws it."""
    if title is None:
        line = char * (width // len(char))
    else:
        fill = char * max((width - len(title) - 2) // (2 * len(char)), 1)
        line = f"{fill} {title} {fill}"
    if len(line) + len(char.rstrip()) <= width:
        line += char.rstrip()
    return line


def head_line(nodeid: str) -> str:
    """The banner title pytest gives a test: `tests/t.py::TestC::test_m[1]` -> `TestC.test_m[1]`.

    Parsed as pytest's NodeId does: the path ends at the first `::` (a path may hold `[`), and
    the parameters are peeled off before the names are split, so `::` inside them is kept.
    A collector's id (no `::`) is its own head line.
    """
    _path, sep, tail = nodeid.partition("::")
    if not sep:
        return nodeid
    names, bracket, params = tail.partition("[")
    return names.replace("::", ".") + bracket + params


def run_note(test: Mapping[str, Any]) -> str:
    """` (run N of M)` for a test that ran more than once (reruns, retries), else ``."""
    run = counted_run(test)
    return f" (run {run[0]} of {run[1]})" if run else ""


def counts_of(report: Mapping[str, Any]) -> dict[str, int]:
    """Count per outcome: the report's `summary` when present, else counted from its tests."""
    summary = report.get("summary")
    if isinstance(summary, Mapping):
        return {o.value: int(summary.get(o.value, 0) or 0) for o in Outcome}
    counts = {o.value: 0 for o in Outcome}
    for test in report.get("tests") or ():
        outcome = str(test.get("outcome", ""))
        if outcome in counts:
            counts[outcome] += 1
    return counts


def summary_line(report: Mapping[str, Any], deselected: int = 0) -> str:
    """The text of the final line, e.g. `1 failed, 2 passed, 2 errors in 1.50s`.

    Counts follow pytest's order (failed, passed, skipped, deselected, xfailed, xpassed, errors),
    then farm's own (flaky, timeout, crashed, not run); zero counts are left out; "no tests ran"
    when the suite has no tests (and nothing was deselected).
    """
    counts = counts_of(report)
    duration = format_duration(float(report.get("duration_s") or 0.0))
    parts = []
    for o in SUMMARY_ORDER:
        if counts[o.value]:
            parts.append(plural(counts[o.value], o))
        if o is Outcome.SKIPPED and deselected:
            parts.append(f"{deselected} deselected")
    if not parts:
        return f"no tests ran in {duration}"
    return f"{', '.join(parts)} in {duration}"


def plural(count: int, outcome: Outcome) -> str:
    """`3 passed`, `1 error`, `2 not run`: a count as the summary line words it."""
    if outcome is Outcome.ERROR:
        return f"{count} error" if count == 1 else f"{count} errors"
    if outcome is Outcome.NOT_RUN:
        return f"{count} not run"
    return f"{count} {outcome.value}"


def pytest_major(version: str) -> int:
    """The major version of the pytest that ran the suite (the newest rendering when unknown)."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 1_000
