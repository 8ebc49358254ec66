"""Staged suites (--stage) driven through the coordinator's Planner: run over the stub store
(tests/unit/test_stage_machine.py) and over a real redis-server (tests/integration/test_suite_scenarios.py)."""

from __future__ import annotations

from typing import Any

from farm import keys
from farm.gates import Gates
from farm.model import Assignment, Collection, SessionInfo, Stage, TestRecord
from farm.outcomes import Outcome
from support.scenarios import CANCEL_GRACE_S, COMPLETION_GRACE_S, LEASE_S, World

SMOKE = ("t.py::smoke_a", "t.py::smoke_b")
REST = ("t.py::c", "t.py::d", "t.py::e")
STAGES = (Stage("smoke", ("-m", "smoke")), Stage("rest", ()))


def _staged(w: World, sid: str, session: SessionInfo | None = None, **spec: Any) -> list[Assignment]:
    """A suite of SMOKE then REST, collected (as the worker says each test's stage): the first
    stage's assignments as published."""
    w.add_worker("w1@h")
    w.submit(sid, stages=STAGES, **spec)
    ids = (REST[0], *SMOKE, *REST[1:])  # collection order mixes the stages
    stage_of = tuple(0 if t in SMOKE else 1 for t in ids)
    w.planner.collected(Collection(sid, "w1@h", 0, ids, session=session or SessionInfo(), stage_of=stage_of))
    return [a for a in w.published if a.suite_id == sid]


def _of(w: World, sid: str, stage: str) -> list[Assignment]:
    return [a for a in w.published if a.suite_id == sid and a.stage == stage]


def _by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in report["tests"]}


def _fail(*failing: str) -> Any:
    return lambda t: Outcome.FAILED if t in failing else Outcome.PASSED


def the_next_stage_starts_only_when_the_first_passed(w: World) -> None:
    first = _staged(w, "st-ok")
    assert {t for a in first for t in a.test_ids} == set(SMOKE), "only the first stage is published"
    assert {a.stage for a in first} == {"smoke"}
    for a in first:
        w.run(a, "w1@h")
    rest = _of(w, "st-ok", "rest")
    assert sorted(t for a in rest for t in a.test_ids) == sorted(REST)
    assert all(a.assignment_id.startswith("st-ok-s1a") for a in rest)
    assert w.stored_report("st-ok") is None
    for a in rest:
        w.run(a, "w1@h")
    report = w.report("st-ok")
    assert report["exit_code"] == 0 and report["summary"]["passed"] == 5 and report["summary"]["total"] == 5
    rows = [(s["name"], s["status"], s["tests"], s["counts"]) for s in report["stages"]]
    assert rows == [("smoke", "passed", 2, {"passed": 2}), ("rest", "passed", 3, {"passed": 3})]


def a_failed_stage_leaves_the_later_ones_not_run(w: World) -> None:
    (a,) = _staged(w, "st-fail")
    w.run(a, "w1@h", _fail("t.py::smoke_b"))
    assert _of(w, "st-fail", "rest") == [], "the rest started after a failed stage"
    report = w.report("st-fail")
    assert report["status"] == "finished" and report["exit_code"] == 1
    assert report["message"] == "stage smoke had failures"
    tests = _by_id(report)
    assert [(tests[t]["outcome"], tests[t]["message"]) for t in REST] == [
        ("not_run", "stage smoke had failures")] * 3
    assert [(s["name"], s["status"]) for s in report["stages"]] == [("smoke", "failed"), ("rest", "not_started")]
    # Not run on purpose: no infrastructure class in the failure analysis.
    assert [c["class"] for c in report["analysis"]["classes"]] == ["failed"]


def max_failures_lets_the_next_stage_start_despite_a_failure(w: World) -> None:
    (a,) = _staged(w, "st-tolerant", gates=Gates(max_failures=1))
    w.run(a, "w1@h", _fail("t.py::smoke_b"))
    (rest,) = _of(w, "st-tolerant", "rest")
    w.run(rest, "w1@h")
    report = w.report("st-tolerant")
    assert [(s["name"], s["status"]) for s in report["stages"]] == [("smoke", "passed"), ("rest", "passed")]
    assert report["stages"][0]["gates"][0]["gate"] == "max-failures"
    assert report["summary"]["failed"] == 1 and report["summary"]["passed"] == 4


def min_pass_rate_fails_the_stage(w: World) -> None:
    (a,) = _staged(w, "st-rate", gates=Gates(min_pass_rate=100.0))
    w.run(a, "w1@h", _fail("t.py::smoke_a"))
    assert _of(w, "st-rate", "rest") == []
    report = w.report("st-rate")
    assert report["exit_code"] == 1 and report["message"] == "stage smoke failed its gates"
    (verdict,) = report["stages"][0]["gates"]
    assert (verdict["gate"], verdict["verdict"], verdict["value"]) == ("min-pass-rate", "failed", 50.0)
    assert {_by_id(report)[t]["message"] for t in REST} == {"stage smoke failed its gates"}


def a_repeated_end_starts_the_next_stage_once(w: World) -> None:
    (a,) = _staged(w, "st-dup")
    w.take(a, "w1@h")
    w.send(a, "w1@h", *(TestRecord(t, Outcome.PASSED, 0.1) for t in a.test_ids))
    w.complete(a, "w1@h")
    w.complete(a, "w1@h")  # redelivered
    w.tick(1)
    w.start_coordinator().finish_if_complete("st-dup")  # another coordinator looks at the same suite
    (rest,) = _of(w, "st-dup", "rest")
    w.tick(1)
    assert len(_of(w, "st-dup", "rest")) == 1, "the next stage was published twice"
    w.run(rest, "w1@h")
    report = w.report("st-dup")
    assert report["summary"]["total"] == 5 and report["summary"]["passed"] == 5


def a_worker_lost_in_the_first_stage_runs_each_test_once(w: World) -> None:
    (a,) = _staged(w, "st-lost")
    w.take(a, "w1@h")
    w.send(a, "w1@h", TestRecord(SMOKE[0], Outcome.PASSED, 0.1))
    w.tick(1)
    w.hold_lease("st-lost", keys.attempt_key(a.assignment_id, 1), None)  # the worker died
    w.tick(LEASE_S)
    again = w.published[-1]
    assert (again.attempt, again.test_ids, again.stage) == (2, (SMOKE[1],), "smoke")
    assert _of(w, "st-lost", "rest") == [], "the rest started while the first stage's test was lost"
    w.run(again, "w2@h")
    (rest,) = _of(w, "st-lost", "rest")
    w.run(rest, "w2@h")
    report = w.report("st-lost")
    assert report["exit_code"] == 0 and report["summary"]["passed"] == 5 and len(report["tests"]) == 5


def the_deadline_in_the_first_stage_leaves_the_rest_not_run(w: World) -> None:
    (a,) = _staged(w, "st-late", deadline_s=30.0)
    w.take(a, "w1@h")
    w.send(a, "w1@h", TestRecord(SMOKE[0], Outcome.PASSED))
    w.tick(31 + LEASE_S + COMPLETION_GRACE_S)
    assert _of(w, "st-late", "rest") == []
    report = w.report("st-late")
    assert report["status"] == "deadline" and report["exit_code"] == 2
    assert {_by_id(report)[t]["outcome"] for t in (SMOKE[1], *REST)} == {"not_run"}
    assert [s["status"] for s in report["stages"]] == ["failed", "not_started"]


def a_restarted_coordinator_publishes_the_stage_a_dead_one_started(w: World) -> None:
    (a,) = _staged(w, "st-restart")
    w.broker_down = True
    try:
        w.run(a, "w1@h")  # the first stage ends; the coordinator dies publishing the next
    except ConnectionError:
        pass
    assert _of(w, "st-restart", "rest") == []
    w.broker_down = False
    w.planner = w.start_coordinator()
    w.tick(3 * LEASE_S + 1)  # the sweep publishes what was planned and never published
    (rest,) = _of(w, "st-restart", "rest")
    w.run(rest, "w1@h")
    report = w.report("st-restart")
    assert report["exit_code"] == 0 and report["summary"]["passed"] == 5


def maxfail_in_the_first_stage_leaves_the_rest_not_run(w: World) -> None:
    (a,) = _staged(w, "st-x", session=SessionInfo(maxfail=1, python="3.11.2"))
    w.take(a, "w1@h")
    w.send(a, "w1@h", TestRecord(SMOKE[0], Outcome.FAILED))
    w.complete(a, "w1@h", "stopped", reported=1, message="stopped after 1 failures")
    assert _of(w, "st-x", "rest") == []
    report = w.report("st-x")
    assert report["exit_code"] == 1 and report["stopped"] == "stopped after 1 failures"
    assert {_by_id(report)[t]["message"] for t in REST} == {"stopped after 1 failures"}
    assert [s["status"] for s in report["stages"]] == ["failed", "not_started"]


def a_cancel_in_the_first_stage_leaves_the_rest_not_run(w: World) -> None:
    (a,) = _staged(w, "st-cancel")
    w.take(a, "w1@h")
    w.send(a, "w1@h", TestRecord(SMOKE[0], Outcome.PASSED))
    w.cancel("st-cancel")
    w.tick(CANCEL_GRACE_S + 1)  # its worker hangs: what did not run, did not run
    w.tick(COMPLETION_GRACE_S + 1)  # and the grace for its completion ends
    assert _of(w, "st-cancel", "rest") == []
    report = w.report("st-cancel")
    assert report["status"] == "canceled" and report["exit_code"] == 2
    assert {_by_id(report)[t]["outcome"] for t in (SMOKE[1], *REST)} == {"not_run"}
    assert [s["status"] for s in report["stages"]] == ["failed", "not_started"]


def a_quarantined_failure_does_not_fail_its_stage(w: World) -> None:
    (a,) = _staged(w, "st-held", quarantine=("t.py::smoke_b",))
    w.run(a, "w1@h", _fail("t.py::smoke_b"))
    rest = _of(w, "st-held", "rest")
    assert rest, "a quarantined failure stopped the next stage"
    for r in rest:
        w.run(r, "w1@h")
    report = w.report("st-held")
    assert report["exit_code"] == 0
    assert _by_id(report)["t.py::smoke_b"]["outcome"] == "failed"  # its real outcome is kept
    assert [(s["name"], s["status"], s["counts"]) for s in report["stages"]] == [
        ("smoke", "passed", {"passed": 1}), ("rest", "passed", {"passed": 3})]
    assert [q["test_id"] for q in report["quarantined"]] == ["t.py::smoke_b"]


STAGE_SCENARIOS = [
    a_quarantined_failure_does_not_fail_its_stage,
    maxfail_in_the_first_stage_leaves_the_rest_not_run,
    a_cancel_in_the_first_stage_leaves_the_rest_not_run,
    the_next_stage_starts_only_when_the_first_passed,
    a_failed_stage_leaves_the_later_ones_not_run,
    max_failures_lets_the_next_stage_start_despite_a_failure,
    min_pass_rate_fails_the_stage,
    a_repeated_end_starts_the_next_stage_once,
    a_worker_lost_in_the_first_stage_runs_each_test_once,
    the_deadline_in_the_first_stage_leaves_the_rest_not_run,
    a_restarted_coordinator_publishes_the_stage_a_dead_one_started,
]
