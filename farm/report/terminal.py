"""The pytest-like end-of-run text summary of a suite report."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from farm.outcomes import SUMMARY_ORDER, Outcome
from farm.report.schema import counted_run

#: Width of separator lines, as pytest's on an 80-column terminal.
WIDTH = 80

#: Word for an outcome in the short test summary (pytest's words; "NOT RUN" is farm's).
_SHORT_WORD = {
    Outcome.FAILED: "FAILED",
    Outcome.ERROR: "ERROR",
    Outcome.SKIPPED: "SKIPPED",
    Outcome.XFAILED: "XFAIL",
    Outcome.XPASSED: "XPASS",
    Outcome.NOT_RUN: "NOT RUN",
    Outcome.TIMEOUT: "TIMEOUT",
    Outcome.CRASHED: "CRASHED",
    Outcome.FLAKY: "FLAKY",
}
#: Outcomes listed in the short test summary: pytest's default `-r fE` (with farm's own failures),
#: and more when verbose.
_SHORT_DEFAULT = (Outcome.FAILED, Outcome.ERROR, Outcome.TIMEOUT, Outcome.CRASHED, Outcome.FLAKY)
_SHORT_VERBOSE = _SHORT_DEFAULT + (Outcome.SKIPPED, Outcome.XFAILED, Outcome.XPASSED, Outcome.NOT_RUN)


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


def summary_line(report: Mapping[str, Any]) -> str:
    """The text of the final line, e.g. `1 failed, 2 passed, 2 errors in 1.50s`.

    Counts follow pytest's order (failed, passed, skipped, xfailed, xpassed, errors), then
    farm's `not run`; zero counts are left out; "no tests ran" when the suite has no tests.
    """
    counts = counts_of(report)
    duration = format_duration(float(report.get("duration_s") or 0.0))
    summary = report.get("summary")
    total = summary.get("total") if isinstance(summary, Mapping) else None
    if total is None:
        total = sum(counts.values())
    parts = [_plural(counts[o.value], o) for o in SUMMARY_ORDER if counts[o.value]]
    if not total or not parts:
        return f"no tests ran in {duration}"
    return f"{', '.join(parts)} in {duration}"


def _plural(count: int, outcome: Outcome) -> str:
    if outcome is Outcome.ERROR:
        return f"{count} error" if count == 1 else f"{count} errors"
    if outcome is Outcome.NOT_RUN:
        return f"{count} not run"
    return f"{count} {outcome.value}"


def render_summary(report: Mapping[str, Any], *, verbose: bool = False) -> str:
    """The end-of-run text for a suite, as pytest prints it after the progress dots.

    Sections in pytest's order: ERRORS, FAILURES, short test summary info, then the
    interruption banner and the final `=` line. Ends with a newline.
    """
    tests: Sequence[Mapping[str, Any]] = report.get("tests") or ()
    lines: list[str] = []
    errors = [t for t in tests if t.get("outcome") == Outcome.ERROR.value]
    failures = [t for t in tests if t.get("outcome") == Outcome.FAILED.value]
    if errors:
        lines.append(separator("=", "ERRORS"))
        for test in errors:
            lines.extend(_test_block(_error_title(test), test))
    if failures:
        lines.append(separator("=", "FAILURES"))
        for test in failures:
            lines.extend(_test_block(head_line(str(test.get("id", ""))) + run_note(test), test))
    stopped = [t for t in tests if t.get("outcome") in (Outcome.TIMEOUT.value, Outcome.CRASHED.value)]
    if stopped:
        lines.append(separator("=", "TIMEOUTS AND CRASHES"))
        for test in stopped:
            lines.extend(_test_block(f"{str(test['outcome']).upper()} {head_line(str(test.get('id', '')))}", test))
    lines.extend(renamed_warnings(tests))
    short = _short_summary(tests, _SHORT_VERBOSE if verbose else _SHORT_DEFAULT)
    for suspect in report.get("suspect_workers") or ():
        names = list(suspect.get("tests") or ())
        short.append(f"SUSPECT WORKER {suspect.get('worker')} - {len(names)} test{'s' if len(names) != 1 else ''} "
                     f"crashed its runner there and did not crash elsewhere: {', '.join(names[:3])}"
                     f"{' ...' if len(names) > 3 else ''}")
    if short:
        lines.append(separator("=", "short test summary info"))
        lines.extend(short)
    message = str(report.get("message") or "").rstrip("\n")
    if message:
        lines.extend(message.splitlines())
    if report.get("status") == "canceled":
        lines.append(separator("!", "Interrupted: suite canceled"))
    if report.get("status") == "deadline":
        lines.append(separator("!", "Interrupted: suite deadline reached"))
    lines.append(separator("=", summary_line(report)))
    return "\n".join(lines) + "\n"


def _error_title(test: Mapping[str, Any]) -> str:
    nodeid = str(test.get("id", ""))
    phase = str(test.get("phase") or "setup")
    if phase == "collect":
        return f"ERROR collecting {nodeid}"
    return f"ERROR at {phase} of {head_line(nodeid)}"


def _test_block(title: str, test: Mapping[str, Any]) -> list[str]:
    """Banner, longrepr (or the message when there is none), then each captured section."""
    lines = [separator("_", title)]
    body = str(test.get("longrepr") or "") or str(test.get("message") or "")
    if body:
        lines.append(body.removesuffix("\n"))
    for section in test.get("sections") or ():
        name, content = str(section[0]), str(section[1])
        lines.append(separator("-", name))
        lines.append(content.removesuffix("\n"))
    return lines


#: Renamed tests listed by name in the warnings summary; the rest are counted.
RENAMED_LISTED = 10


def renamed_warnings(tests: Sequence[Mapping[str, Any]]) -> list[str]:
    """A warnings summary for tests the runners collected under another id than the plan's."""
    renamed = [t for t in tests if t.get("ran_as")]
    if not renamed:
        return []
    n = len(renamed)
    lines = [separator("=", "warnings summary"),
             f"farm: {n} test{'s' if n != 1 else ''} ran under another id than planned (the parameter ids changed "
             "between collections); reported under the planned id:"]
    lines.extend(f"  {t.get('id')} ran as {t.get('ran_as')}" for t in renamed[:RENAMED_LISTED])
    if n > RENAMED_LISTED:
        lines.append(f"  ... and {n - RENAMED_LISTED} more (the JSON report's `ran_as`)")
    return lines


def run_note(test: Mapping[str, Any]) -> str:
    """` (run N of M)` for a test that ran more than once (reruns, retries), else ``."""
    run = counted_run(test)
    return f" (run {run[0]} of {run[1]})" if run else ""


def _short_summary(tests: Sequence[Mapping[str, Any]], outcomes: Sequence[Outcome]) -> list[str]:
    """`WORD id - message` lines, grouped by outcome in `outcomes` order, tests in report order."""
    lines = []
    for outcome in outcomes:
        word = _SHORT_WORD[outcome]
        for test in tests:
            if test.get("outcome") != outcome.value:
                continue
            line = f"{word} {test.get('id', '')}"
            message = str(test.get("message") or "").strip()
            if message:
                line += " - " + message.splitlines()[0]
            lines.append(line + run_note(test))
    return lines
