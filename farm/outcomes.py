"""Test outcomes, how pytest's per-phase results fold into one, and merge precedence.

A test has exactly one outcome in a farm report. Pytest may count a test twice (a test that
passes and then errors in teardown is "1 passed, 1 error"); farm reports it once, as pytest's
JUnit XML does, with the worse of the two.
"""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """Outcome of one test in a suite report."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"
    TIMEOUT = "timeout"  # ran past --test-timeout (or its assignment's deadline) and was stopped
    CRASHED = "crashed"  # its runner died while it ran (os._exit, a signal, the OOM killer)
    FLAKY = "flaky"  # failed, then passed when run again (--rerun-failures): passing unless --strict-flaky
    NOT_RUN = "not_run"  # never ran: canceled, past the deadline, or the farm could not run it

    @property
    def is_failure(self) -> bool:
        """Whether this outcome makes the suite fail (exit code 1)."""
        return self in FAILURES


#: Outcomes in the order the summary line lists them (pytest's order, farm's additions last).
SUMMARY_ORDER: tuple[Outcome, ...] = (
    Outcome.FAILED,
    Outcome.PASSED,
    Outcome.SKIPPED,
    Outcome.XFAILED,
    Outcome.XPASSED,
    Outcome.FLAKY,
    Outcome.ERROR,
    Outcome.TIMEOUT,
    Outcome.CRASHED,
    Outcome.NOT_RUN,
)

#: Each outcome's value, and back: per record of a batch, a dict lookup is cheaper than
#: `Enum.value` (a descriptor) or `Outcome(value)` (a call).
VALUE = {o: o.value for o in Outcome}
BY_VALUE = {o.value: o for o in Outcome}

#: Outcomes that fail a suite.
FAILURES = frozenset({Outcome.FAILED, Outcome.ERROR, Outcome.TIMEOUT, Outcome.CRASHED})
#: Outcomes whose duration is recorded for the next split and in the run history's rings (a
#: timeout's or a crash's is not how long the test takes; a flaky test's is two runs').
TIMED = frozenset({Outcome.PASSED, Outcome.FAILED, Outcome.ERROR, Outcome.XFAILED, Outcome.XPASSED,
                   Outcome.SKIPPED})

def maxfail_reached(counts: dict[str, int], maxfail: int) -> bool:
    """Whether a suite under -x/--maxfail=`maxfail` (0: none) must stop: failures, errors, timeouts and
    crashes together reached it."""
    return maxfail > 0 and sum(counts.get(o.value, 0) for o in FAILURES) >= maxfail


def supersedes(new: Outcome, held: Outcome | None) -> bool:
    """Whether a record with outcome `new` replaces the outcome the store holds for a test.

    The explicit precedence (like celery's states.PRECEDENCE): nothing held < NOT_RUN < any
    outcome a runner reported. A record replaces the held outcome only when it ranks strictly
    higher, so a late or duplicated record never downgrades a final outcome, and applying the
    same record twice changes nothing. NOT_RUN ranks lowest of the final outcomes so that a real
    result racing a cancel wins.
    """
    return _rank(new) > _rank(held)


def _rank(outcome: Outcome | None) -> int:
    if outcome is None:
        return 0
    if outcome is Outcome.NOT_RUN:
        return 1
    return 2


def fold_phases(setup: str, call: str, teardown: str) -> Outcome:
    """Fold pytest's per-phase report categories into one outcome.

    Each argument is the category pytest's `pytest_report_teststatus` gave that phase
    ("passed", "failed", "error", "skipped", "xfailed", "xpassed", or "" when the phase
    did not run or passed silently, as setup and teardown do).
    """
    if setup in ("error", "failed"):
        return Outcome.ERROR
    if setup in ("skipped", "xfailed"):  # xfail(run=False), or an xfail test whose fixture raised
        decided = Outcome.SKIPPED if setup == "skipped" else Outcome.XFAILED
        return Outcome.ERROR if teardown in ("error", "failed") else decided
    primary = _CATEGORY.get(call, Outcome.PASSED)
    if teardown in ("error", "failed") and not primary.is_failure:
        return Outcome.ERROR
    return primary


_CATEGORY = {
    "passed": Outcome.PASSED,
    "failed": Outcome.FAILED,
    "error": Outcome.ERROR,
    "skipped": Outcome.SKIPPED,
    "xfailed": Outcome.XFAILED,
    "xpassed": Outcome.XPASSED,
}


def exit_code_for(counts: dict[str, int], *, interrupted: bool, collected: int, strict_flaky: bool = False) -> int:
    """Pytest-compatible exit code of a finished suite.

    `collected` is how many runnable tests collection found (module-level skips and collection
    errors are not runnable tests). 2 interrupted (canceled, or the deadline came); 5 nothing collected, as pytest
    even when a module was skipped; 1 some test failed or errored; 3 some test never ran
    although nothing was canceled (the farm failed to run it); 0 otherwise.
    """
    if interrupted:
        return 2
    if collected == 0:
        return 5
    if any(counts.get(o.value, 0) for o in FAILURES) or (strict_flaky and counts.get(Outcome.FLAKY.value, 0)):
        return 1
    if counts.get(Outcome.NOT_RUN.value, 0):
        return 3
    return 0
