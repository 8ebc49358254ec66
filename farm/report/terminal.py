"""The pytest-like text of a suite: the session header, and the end-of-run summary of its report."""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from farm.model import SessionInfo
from farm.outcomes import SUMMARY_ORDER, Outcome
from farm.pytest_options import parse, report_chars
from farm.report.schema import counted_run

#: Width of separator lines, as pytest's on an 80-column terminal.
WIDTH = 80

#: Word for an outcome in the short test summary (pytest's words; "NOT RUN" is farm's).
_SHORT_WORD = {
    Outcome.PASSED: "PASSED",
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
            parts.append(_plural(counts[o.value], o))
        if o is Outcome.SKIPPED and deselected:
            parts.append(f"{deselected} deselected")
    if not parts:
        return f"no tests ran in {duration}"
    return f"{', '.join(parts)} in {duration}"


def _plural(count: int, outcome: Outcome) -> str:
    if outcome is Outcome.ERROR:
        return f"{count} error" if count == 1 else f"{count} errors"
    if outcome is Outcome.NOT_RUN:
        return f"{count} not run"
    return f"{count} {outcome.value}"


def render_header(session: SessionInfo, *, collected: int, errors: int = 0, skipped: int = 0,
                  rootdir: str = "", workers: Sequence[tuple[str, int]] = (), collector: str = "") -> str:
    """pytest's session header, farm's way: the collecting worker's versions, the farm's size.

    `collected` counts the runnable tests (after deselection); `workers` are (name, slots) of the
    pool's live workers. Ends with a newline; "" below verbosity 0, as pytest -q prints none.
    """
    if session.verbose < 0:
        return ""
    lines = [separator("=", "test session starts")]
    if session.python:
        where = f" (on {collector})" if collector else ""
        lines.append(f"platform {session.platform} -- Python {session.python}, pytest-{session.pytest}"
                     f"{', pluggy-' + session.pluggy if session.pluggy else ''}{where}")
    if _major(session.pytest) < 8:  # pytest 7 puts them on one line
        lines.append(", ".join(x for x in (f"rootdir: {rootdir}" if rootdir else "",
                                          f"configfile: {session.configfile}" if session.configfile else "") if x))
        lines = [line for line in lines if line]
    else:
        if rootdir:
            lines.append(f"rootdir: {rootdir}")
        if session.configfile:
            lines.append(f"configfile: {session.configfile}")
    if session.plugins:
        lines.append(f"plugins: {session.plugins}")
    if workers:
        slots = {n for _, n in workers}
        size = f"{len(workers)} worker{'s' if len(workers) != 1 else ''}"
        lines.append(f"farm: {size} x {slots.pop()} slots" if len(slots) == 1 else
                     f"farm: {size}, {sum(n for _, n in workers)} slots")
    total = collected + session.deselected
    line = f"collected {total} item{'' if total == 1 else 's'}"
    if errors:
        line += f" / {errors} error{'s' if errors != 1 else ''}"
    if session.deselected:
        line += f" / {session.deselected} deselected"
    if skipped:
        line += f" / {skipped} skipped"
    if session.deselected:
        line += f" / {collected} selected"
    lines.append(line)
    return "\n".join(lines) + "\n"


def render_summary(report: Mapping[str, Any], *, verbose: bool = False, session: SessionInfo | None = None,
                   on_ci: bool | None = None) -> str:
    """The end-of-run text for a suite, as pytest prints it after the progress dots.

    `session` holds the pytest options that shape it (-r, --tb, --durations, -q, the deselected
    count), as the collecting worker reported them; read from the report's pytest args when None.
    `verbose` (farm's own -v) also lists skipped, xfailed, xpassed and not-run tests. `on_ci`
    (default: $CI or $BUILD_NUMBER set, as pytest decides) or -vv: the short summary carries each
    message whole, as pytest's does there; otherwise its first line.
    Sections in pytest's order: ERRORS, FAILURES (none under --tb=no), slowest durations, short
    test summary info, then the stop or interruption banner and the final `=` line. Ends with a
    newline (or is empty under -qq with nothing to say).
    """
    options = session or parse(report.get("pytest_args") or ())
    tests: Sequence[Mapping[str, Any]] = report.get("tests") or ()
    lines: list[str] = []
    chars = report_chars(options.reportchars) + ("sxX" if verbose else "")
    if options.tbstyle != "no":
        lines.extend(_failure_sections(tests, options.tbstyle, options.pytest))
        lines.extend(_passes(tests, report_chars(options.reportchars), options.pytest))
    lines.extend(renamed_warnings(tests))
    lines.extend(_durations(report, options))
    whole = (running_on_ci() if on_ci is None else on_ci) or options.verbose >= 2
    short = _short_summary(tests, chars, not_run=verbose or "a" in options.reportchars or "A" in options.reportchars,
                           xpass_dash=_major(options.pytest) >= 8, whole_messages=whole)
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
    stopped = str(report.get("stopped") or "")
    if stopped:  # pytest's words: "stopping after 1 failures"
        lines.append(separator("!", stopped.replace("stopped after", "stopping after", 1)))
    if report.get("status") == "canceled":
        lines.append(separator("!", "Interrupted: suite canceled"))
    if report.get("status") == "deadline":
        lines.append(separator("!", "Interrupted: suite deadline reached"))
    final = summary_line(report, options.deselected)
    if options.verbose >= 0:
        lines.append(separator("=", final))
    elif options.verbose == -1:
        lines.append(final)
    return "\n".join(lines) + "\n" if lines else ""


def _major(version: str) -> int:
    """The major version of the pytest that ran the suite (the newest rendering when unknown)."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 1_000


def _failure_sections(tests: Sequence[Mapping[str, Any]], tbstyle: str, pytest_version: str = "") -> list[str]:
    """ERRORS, FAILURES and farm's TIMEOUTS AND CRASHES; under --tb=line a failure is its lines, no banner."""
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
            if tbstyle == "line":
                block = _line_block(test)
                # Before pytest 9, --tb=line printed the crash line alone.
                lines.extend(block if _major(pytest_version) >= 9 else block[_crash_at(block):])
            else:
                lines.extend(_test_block(head_line(str(test.get("id", ""))) + run_note(test), test))
    stopped = [t for t in tests if t.get("outcome") in (Outcome.TIMEOUT.value, Outcome.CRASHED.value)]
    if stopped:
        lines.append(separator("=", "TIMEOUTS AND CRASHES"))
        for test in stopped:
            lines.extend(_test_block(f"{str(test['outcome']).upper()} {head_line(str(test.get('id', '')))}", test))
    return lines


def _passes(tests: Sequence[Mapping[str, Any]], chars: str, pytest_version: str) -> list[str]:
    """PASSES (-rP) and, from pytest 8 on, XPASSES (-rX): a test's block where it has captured output."""
    lines: list[str] = []
    major = pytest_version.split(".", 1)[0]
    wanted = [("P", Outcome.PASSED, "PASSES")]
    if not major.isdigit() or int(major) >= 8:
        wanted.append(("X", Outcome.XPASSED, "XPASSES"))
    for char, outcome, title in wanted:
        chosen = [t for t in tests if t.get("outcome") == outcome.value]
        if char not in chars or not chosen:
            continue
        lines.append(separator("=", title))
        for test in chosen:
            if test.get("sections"):
                lines.append(separator("_", head_line(str(test.get("id", "")))))
                lines.extend(_captured(test))
    return lines


def _durations(report: Mapping[str, Any], options: SessionInfo) -> list[str]:
    """`--durations=N`: the slowest phases, as pytest lists them (the short ones hidden below -vv)."""
    entries = report.get("durations")
    if options.durations < 0 or entries is None:
        return []
    if not entries:
        return []
    title = f"slowest {options.durations} durations" if options.durations else "slowest durations"
    lines = [separator("=", title)]
    given = options.durations_min >= 0
    least = options.durations_min if given else 0.005 if options.verbose < 2 else 0.0
    old = _major(options.pytest) < 9  # before pytest 9: a default of 0.005s that -vv lifts, and always the hint
    for i, (seconds, when, nodeid) in enumerate(entries):
        if float(seconds) < least and not (old and options.verbose >= 2):
            lines.append("")
            hint = "" if given and not old else "  Use -vv to show these durations."
            lines.append(f"({len(entries) - i} durations < {least:g}s hidden.{hint})")
            break
        lines.append(f"{float(seconds):02.2f}s {when:<8} {nodeid}")
    return lines


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
    lines.extend(_captured(test))
    return lines


def _line_block(test: Mapping[str, Any]) -> list[str]:
    """A failure under --tb=line: the short report, its captured output, then `path:line: message`
    (the runner appended that line to the report)."""
    lines = (str(test.get("longrepr") or "") or str(test.get("message") or "")).rstrip("\n").splitlines()
    at = _crash_at(lines)
    return [*lines[:at], *_captured(test), *lines[at:]]


def _crash_at(lines: Sequence[str]) -> int:
    return next((i for i in range(len(lines) - 1, -1, -1) if _CRASH_LINE.match(lines[i])), max(len(lines) - 1, 0))


#: The start of `--tb=line`'s crash line: `path:lineno: ` (its message may span more lines).
_CRASH_LINE = re.compile(r"^[^\s:][^:]*:\d+: ")


def _captured(test: Mapping[str, Any]) -> list[str]:
    lines = []
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


#: Which outcomes each -r char lists; farm's own failures come with f and E (see _short_summary).
_CHAR_OUTCOMES = {
    "f": Outcome.FAILED, "E": Outcome.ERROR, "s": Outcome.SKIPPED, "x": Outcome.XFAILED, "X": Outcome.XPASSED,
    "p": Outcome.PASSED,
}
_FARM_FAILURES = (Outcome.TIMEOUT, Outcome.CRASHED, Outcome.FLAKY)


def _short_summary(tests: Sequence[Mapping[str, Any]], chars: str, *, not_run: bool = False,
                   xpass_dash: bool = True, whole_messages: bool = False) -> list[str]:
    """The short test summary in -r order: `WORD id - message` lines, skips (and not-run tests)
    folded by reason as pytest folds skips; farm's timeouts, crashes and flaky tests after them
    when f or E is asked for."""
    outcomes: list[Outcome] = []
    for char in chars:
        outcome = _CHAR_OUTCOMES.get(char)
        if outcome is not None and outcome not in outcomes:
            outcomes.append(outcome)
    if "f" in chars or "E" in chars:
        outcomes.extend(_FARM_FAILURES)
    if not_run:
        outcomes.append(Outcome.NOT_RUN)
    lines: list[str] = []
    for outcome in outcomes:
        chosen = [t for t in tests if t.get("outcome") == outcome.value]
        if outcome in (Outcome.SKIPPED, Outcome.NOT_RUN):
            lines.extend(_folded(chosen, _SHORT_WORD[outcome]))
            continue
        for test in chosen:
            line = f"{_SHORT_WORD[outcome]} {test.get('id', '')}"
            message = str(test.get("message") or "").strip()
            if message and outcome is not Outcome.PASSED:
                dash = " - " if xpass_dash or outcome is not Outcome.XPASSED else " "  # pytest 7: `XPASS id reason`
                line += dash + (message if whole_messages else message.splitlines()[0])
            lines.extend((line + run_note(test)).splitlines())
    return lines


def running_on_ci() -> bool:
    """Whether this runs on a CI system, as pytest tells (its short summary keeps whole messages there)."""
    return any(os.environ.get(var) for var in ("CI", "BUILD_NUMBER"))


def _folded(tests: Sequence[Mapping[str, Any]], word: str) -> list[str]:
    """`SKIPPED [2] tests/t.py:7: reason`: one line per place and reason, as pytest folds skips.

    A skip's report is `path:line: reason` (the runner writes it so); a test without one (a
    not-run test) is folded by its message alone."""
    folds: dict[str, int] = {}
    for test in tests:
        longrepr = str(test.get("longrepr") or "").strip()
        message = str(test.get("message") or "").strip().splitlines()
        key = longrepr.splitlines()[0] if longrepr else (message[0] if message else str(test.get("id", "")))
        place, sep, reason = key.partition(": ")
        if sep and reason.startswith("Skipped: "):  # pytest shows a skip's reason without it
            key = f"{place}: {reason.removeprefix('Skipped: ')}"
        folds[key] = folds.get(key, 0) + 1
    return [f"{word} [{n}] {key}" for key, n in folds.items()]
