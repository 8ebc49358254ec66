"""Each test's block in the end-of-run text: ERRORS, FAILURES, TIMEOUTS AND CRASHES, PASSES."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from farm.outcomes import Outcome
from farm.report.pytest_lines import head_line, pytest_major, run_note, separator

#: What a quarantined test's banner (and short-summary line) says after its id: it does not fail the suite.
QUARANTINED_MARK = " [quarantined]"


def failure_sections(tests: Sequence[Mapping[str, Any]], tbstyle: str, pytest_version: str = "",
                     quarantined: Collection[str] = ()) -> list[str]:
    """ERRORS, FAILURES and farm's TIMEOUTS AND CRASHES; under --tb=line a failure is its lines, no banner.

    A test in `quarantined` (ids) has ` [quarantined]` at the end of its banner's title: it ran and
    failed, but does not fail the suite."""
    lines: list[str] = []

    def mark(test: Mapping[str, Any]) -> str:
        return QUARANTINED_MARK if str(test.get("id", "")) in quarantined else ""

    errors = [t for t in tests if t.get("outcome") == Outcome.ERROR.value]
    failures = [t for t in tests if t.get("outcome") == Outcome.FAILED.value]
    if errors:
        lines.append(separator("=", "ERRORS"))
        for test in errors:
            lines.extend(_test_block(_error_title(test) + mark(test), test))
    if failures:
        lines.append(separator("=", "FAILURES"))
        for test in failures:
            if tbstyle == "line":
                block = _line_block(test)
                # Before pytest 9, --tb=line printed the crash line alone.
                block = block if pytest_major(pytest_version) >= 9 else block[_crash_at(block):]
                if mark(test) and block:  # no banner to mark: the crash line says it
                    block[-1] += mark(test)
                lines.extend(block)
            else:
                lines.extend(_test_block(head_line(str(test.get("id", ""))) + run_note(test) + mark(test), test))
    stopped = [t for t in tests if t.get("outcome") in (Outcome.TIMEOUT.value, Outcome.CRASHED.value)]
    if stopped:
        lines.append(separator("=", "TIMEOUTS AND CRASHES"))
        for test in stopped:
            title = f"{str(test['outcome']).upper()} {head_line(str(test.get('id', '')))}{mark(test)}"
            lines.extend(_test_block(title, test))
    return lines


def passes(tests: Sequence[Mapping[str, Any]], chars: str, pytest_version: str) -> list[str]:
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
