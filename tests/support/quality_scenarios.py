"""Scenarios of quality gates and quarantine through the coordinator's Planner, several suites of one
project in a row so that the run history (wall times, flaky tests) is real: the stepped clock makes
each suite's wall time. They run over both stores, as `support.scenarios` do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coordinator.deadlines import CANCEL_GRACE_S, COMPLETION_GRACE_S
from farm.gates import Gates
from farm.model import TestRecord
from farm.outcomes import Outcome
from support.scenarios import World, _outcomes, _planned


def _suite(w: World, sid: str, wall_s: float, outcome: Callable[[str], Outcome] = lambda t: Outcome.PASSED,
           **spec: Any) -> dict[str, Any]:
    """A suite of the project that runs `wall_s` (submitted now, finished `wall_s` later): its report."""
    (a,) = _planned(w, sid, **spec)
    w.clock.advance(wall_s)
    w.run(a, "w1@h", outcome)
    return w.report(sid)  # the stored report; the one rebuilt from the log alone is the same


def _flaky_b(w: World, sid: str, wall_s: float, **spec: Any) -> dict[str, Any]:
    """A suite whose t.py::b fails, then passes when run again (--rerun-failures 1): flaky."""
    (a,) = _planned(w, sid, rerun_failures=1, **spec)
    w.clock.advance(wall_s)
    w.run(a, "w1@h", lambda t: Outcome.FAILED if t.endswith("b") else Outcome.PASSED)
    rerun = w.published[-1]
    assert rerun.test_ids == ("t.py::b",)
    w.run(rerun, "w1@h")
    return w.report(sid)


def _gates(report: dict[str, Any]) -> list[tuple[str, float | None, str]]:
    return [(g["gate"], g["value"], g["verdict"]) for g in report.get("gates") or ()]


def the_regression_gate_compares_with_the_median_of_earlier_runs(w: World) -> None:
    gate = Gates(max_duration_regression=50.0)
    first = _suite(w, "r1", 10.0, gates=gate)  # no history yet: skipped, not failed
    assert _gates(first) == [("max-duration-regression", None, "skipped")] and first["exit_code"] == 0
    assert "no earlier runs to compare with" in first["gates"][0]["detail"]
    second = _suite(w, "r2", 12.0, gates=gate)  # one earlier run: too few
    assert second["gates"][0]["detail"] == "1 earlier comparable run, 3 needed (wall 12.00s)"
    _suite(w, "r3", 8.0)
    # Three earlier runs (10, 12, 8 s): median 10 s. 14 s is +40%: passes.
    ok = _suite(w, "r4", 14.0, gates=gate)
    assert _gates(ok) == [("max-duration-regression", 40.0, "passed")] and ok["exit_code"] == 0
    assert "against the median 10.00s of 3 runs (<= +50%)" in ok["gates"][0]["detail"]
    # Four earlier (10, 12, 8, 14): median 11 s. 30 s is +172.7%: fails, and every test passed.
    slow = _suite(w, "r5", 30.0, gates=gate)
    assert _gates(slow) == [("max-duration-regression", 172.7, "failed")]
    assert slow["exit_code"] == 1 and set(_outcomes(slow).values()) == {"passed"}


def each_count_gate_passes_at_its_limit_and_fails_past_it(w: World) -> None:
    b_fails = lambda t: Outcome.FAILED if t.endswith("b") else Outcome.PASSED  # noqa: E731
    ok = _suite(w, "ok", 1.0, b_fails, gates=Gates(min_pass_rate=66.0, max_failures=1))
    assert _gates(ok) == [("min-pass-rate", 66.67, "passed"), ("max-failures", 1, "passed")]
    assert ok["exit_code"] == 1  # its failing test, as without gates
    bad = _suite(w, "bad", 1.0, b_fails, gates=Gates(min_pass_rate=70.0, max_failures=0))
    assert _gates(bad) == [("min-pass-rate", 66.67, "failed"), ("max-failures", 1, "failed")]
    assert bad["exit_code"] == 1
    flaky = _flaky_b(w, "flaky", 1.0, gates=Gates(max_flaky=0, max_failures=0))
    assert _gates(flaky) == [("max-failures", 0, "passed"), ("max-flaky", 1, "failed")]
    assert flaky["exit_code"] == 1  # every test passed (one flaky): the gate alone fails it
    allowed = _flaky_b(w, "allowed", 1.0, gates=Gates(max_flaky=1))
    assert _gates(allowed) == [("max-flaky", 1, "passed")] and allowed["exit_code"] == 0


def a_canceled_suite_keeps_its_exit_code_whatever_its_gates_say(w: World) -> None:
    (a,) = _planned(w, "c", gates=Gates(max_failures=0))
    w.take(a, "w1@h")
    w.send(a, "w1@h", TestRecord("t.py::a", Outcome.FAILED))
    w.cancel("c")
    w.tick(CANCEL_GRACE_S * 1.5)
    w.tick(COMPLETION_GRACE_S + 1)
    report = w.report("c")
    assert report["status"] == "canceled" and report["exit_code"] == 2  # not 1: interrupted says more
    assert _gates(report) == [("max-failures", 1, "failed")]


def a_quarantined_test_runs_and_does_not_fail_the_suite(w: World) -> None:
    report = _suite(w, "q", 1.0, lambda t: Outcome.FAILED if t.endswith("b") else Outcome.PASSED,
                    quarantine=("t.py::b", "t.py::gone"), gates=Gates(max_failures=0, min_pass_rate=100.0))
    assert _outcomes(report)["t.py::b"] == "failed"  # its real outcome, in the records
    assert report["quarantined"] == [{"test_id": "t.py::b", "outcome": "failed", "reason": "listed"}]
    assert report["quarantine_unknown"] == ["t.py::gone"]
    assert report["exit_code"] == 0 and report["summary"]["failed"] == 1
    assert _gates(report) == [("min-pass-rate", 100.0, "passed"), ("max-failures", 0, "passed")]
    # The same test, not quarantined: the suite fails.
    plain = _suite(w, "plain", 1.0, lambda t: Outcome.FAILED if t.endswith("b") else Outcome.PASSED)
    assert plain["exit_code"] == 1 and "quarantined" not in plain


def a_test_flaky_in_the_history_is_quarantined_by_its_flake_rate(w: World) -> None:
    _flaky_b(w, "f1", 1.0)
    _flaky_b(w, "f2", 1.0)
    _suite(w, "p3", 1.0)
    # b: flaky in 2 of the 3 runs that ran it: 66.7%, above 50%; a and c never flaked.
    strict = _flaky_b(w, "f4", 1.0, quarantine_flake_rate=50.0, strict_flaky=True, gates=Gates(max_flaky=0))
    assert strict["quarantined"] == [{"test_id": "t.py::b", "outcome": "flaky", "reason": "flake rate 66.7% > 50%"}]
    assert strict["exit_code"] == 0  # --strict-flaky and the gate leave it out
    assert _gates(strict) == [("max-flaky", 0, "passed")]
    # Above the test's rate, nothing is quarantined: --strict-flaky fails the suite.
    high = _flaky_b(w, "f5", 1.0, quarantine_flake_rate=80.0, strict_flaky=True)
    assert "quarantined" not in high and high["exit_code"] == 1


QUALITY_SCENARIOS = [
    the_regression_gate_compares_with_the_median_of_earlier_runs,
    each_count_gate_passes_at_its_limit_and_fails_past_it,
    a_canceled_suite_keeps_its_exit_code_whatever_its_gates_say,
    a_quarantined_test_runs_and_does_not_fail_the_suite,
    a_test_flaky_in_the_history_is_quarantined_by_its_flake_rate,
]
