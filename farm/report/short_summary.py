"""The short test summary info: a line per test the -r chars ask for, skips folded by reason."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from farm.outcomes import Outcome
from farm.report.blocks import QUARANTINED_MARK
from farm.report.pytest_lines import run_note

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


#: Which outcomes each -r char lists; farm's own failures come with f and E (see short_summary).
_CHAR_OUTCOMES = {
    "f": Outcome.FAILED, "E": Outcome.ERROR, "s": Outcome.SKIPPED, "x": Outcome.XFAILED, "X": Outcome.XPASSED,
    "p": Outcome.PASSED,
}
_FARM_FAILURES = (Outcome.TIMEOUT, Outcome.CRASHED, Outcome.FLAKY)


def short_summary(tests: Sequence[Mapping[str, Any]], chars: str, *, not_run: bool = False,
                   xpass_dash: bool = True, whole_messages: bool = False,
                   quarantined: Collection[str] = ()) -> list[str]:
    """The short test summary in -r order: `WORD id - message` lines, skips (and not-run tests)
    folded by reason as pytest folds skips; farm's timeouts, crashes and flaky tests after them
    when f or E is asked for. A test in `quarantined` (ids) is `WORD id [quarantined] - message`."""
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
            test_id = str(test.get("id", ""))
            line = f"{_SHORT_WORD[outcome]} {test_id}{QUARANTINED_MARK if test_id in quarantined else ''}"
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
