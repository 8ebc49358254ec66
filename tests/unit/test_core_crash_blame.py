"""coordinator.reporting.crash_blame: a crashing test told from a broken worker."""

from __future__ import annotations

from coordinator.reporting import crash_blame
from farm.model import TestRun
from farm.outcomes import Outcome


def _row(worker: str, outcome: Outcome, *, fenced: bool = False, attempt: int = 1) -> TestRun:
    return TestRun("t.py::t", "s-a000", attempt, worker, "local:h", outcome.value, 0.1, 0.0, fenced)


def test_a_test_that_never_crashed_blames_nobody() -> None:
    assert crash_blame(Outcome.FAILED, [_row("a", Outcome.FAILED)]) == ([], None)


def test_crashes_on_two_workers_blame_the_test() -> None:
    rows = [_row("a", Outcome.CRASHED), _row("b", Outcome.CRASHED, attempt=2)]
    assert crash_blame(Outcome.CRASHED, rows) == (["a", "b"], "test")


def test_a_crash_on_one_worker_and_a_pass_elsewhere_blames_the_worker() -> None:
    rows = [_row("a", Outcome.CRASHED), _row("b", Outcome.PASSED, attempt=2)]
    assert crash_blame(Outcome.PASSED, rows) == (["a"], "worker")


def test_crashes_on_one_worker_only_cannot_be_blamed() -> None:
    rows = [_row("a", Outcome.CRASHED), _row("a", Outcome.CRASHED, attempt=2)]
    assert crash_blame(Outcome.CRASHED, rows) == (["a"], "unknown")


def test_fenced_rows_do_not_count() -> None:
    rows = [_row("a", Outcome.CRASHED, fenced=True), _row("b", Outcome.CRASHED)]
    assert crash_blame(Outcome.CRASHED, rows) == (["b"], "unknown")


def test_a_pass_on_the_same_worker_after_a_crash_cannot_be_blamed() -> None:
    rows = [_row("a", Outcome.CRASHED), _row("a", Outcome.PASSED, attempt=2)]
    assert crash_blame(Outcome.PASSED, rows) == (["a"], "unknown")
