"""Failure analysis: each class's rule over hand-built full views, its place in the JSON, its
lines in the terminal summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from report_samples import make_report, make_test, mixed_report, rerun_report

from coordinator import machine
from farm.attempts import Attempt
from farm.config import Settings
from farm.report.analysis import analyse
from farm.report.jsonfile import write_json
from farm.report.schema import compact, expand, load_report
from farm.report.terminal import render_summary
from farm.states import AttemptState


def _classes(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["class"]: c for c in analyse(expand(report))["classes"]}


def _assignment(aid: str, state: str, tests: list[str], *, worker: str = "w2@host", attempt: int = 1,
                message: str = "") -> dict[str, Any]:
    return {"id": aid, "attempt": attempt, "worker": worker, "node": "local:host", "state": state, "tests": tests,
            "started_at": None, "finished_at": None, "message": message}


def test_a_clean_run_has_an_empty_analysis_and_no_failure_analysis_block() -> None:
    report = make_report([make_test("t.py::a"), make_test("t.py::b", "skipped"), make_test("t.py::c", "xfailed")])
    full = expand(report)
    assert full["analysis"] == {"classes": []}
    assert "failure analysis" not in render_summary(full) and "failures:" not in render_summary(full, verbose=True)


def test_failures_and_setup_teardown_and_collection_errors_are_classes_of_their_own() -> None:
    classes = _classes(mixed_report())
    assert list(classes) == ["failed", "setup_teardown_error"]
    assert classes["failed"]["tests"] == ["tests/sub/test_a.py::test_fail"] and classes["failed"]["count"] == 1
    errors = classes["setup_teardown_error"]
    assert errors["tests"] == ["tests/test_broken.py", "tests/sub/test_a.py::test_seterr",
                               "tests/sub/test_a.py::test_tderr"]
    assert errors["count"] == 3 and errors["detail"] == {"phases": {"collect": 1, "setup": 1, "teardown": 1}}


def test_timeouts_say_which_limit_stopped_them() -> None:
    report = make_report([
        make_test("t.py::slow", "timeout", message="Timeout: ran past --test-timeout 2s"),
        make_test("t.py::late", "timeout", message="stopped at the suite deadline"),
        make_test("t.py::long", "timeout",
                  message="stopped at the assignment's deadline (30s after its runner started)"),
    ])
    timeout = _classes(report)["timeout"]
    assert timeout["tests"] == ["t.py::slow", "t.py::late", "t.py::long"]
    assert timeout["detail"] == {"kinds": {"test_timeout": 1, "suite_deadline": 1, "assignment_deadline": 1}}


def test_crashes_carry_their_blame_and_a_crash_a_worker_is_blamed_for_is_flaky() -> None:
    by_test = make_test("t.py::exits", "crashed")
    by_test["blame"] = "test"
    alone = make_test("t.py::alone", "crashed")
    alone["blame"] = "unknown"
    report = rerun_report()
    report["tests"][2]["blame"] = "worker"  # crashed on w1, passed on w2
    report["suspect_workers"] = [{"worker": "w1@host", "tests": ["tests/t.py::test_crash_once"]}]
    report["tests"] += [by_test, alone]
    classes = _classes(report)
    assert list(classes) == ["failed", "crashed", "infrastructure", "flaky"]
    assert classes["crashed"]["tests"] == ["t.py::exits", "t.py::alone"]
    assert classes["crashed"]["detail"] == {"blame": {"test": 1, "unknown": 1}}
    assert classes["flaky"]["tests"] == ["tests/t.py::test_flaky", "tests/t.py::test_crash_once"]
    assert classes["flaky"]["detail"] == {"kinds": {"rerun": 1, "worker_crash": 1}}
    infrastructure = classes["infrastructure"]  # the suspect worker is the environment's event
    assert infrastructure["count"] == 1 and infrastructure["tests"] == ["tests/t.py::test_crash_once"]
    assert infrastructure["detail"]["events"] == [
        {"cause": "suspect_worker", "worker": "w1@host", "tests": ["tests/t.py::test_crash_once"]}]


def test_lost_handed_back_and_failed_attempts_are_infrastructure_events_with_their_cause() -> None:
    tests = [make_test(f"t.py::t{i}") for i in range(6)]
    report = make_report(tests)
    report["assignments"] = [
        _assignment("s-1-a000", "lost", ["t.py::t0", "t.py::t1"],
                    message="attempt 1 lost: w2@host stopped renewing its lease for 10s"),
        _assignment("s-1-a000", "done", ["t.py::t0", "t.py::t1"], worker="w1@host", attempt=2),
        _assignment("s-1-a001", "handback", ["t.py::t2"], message="assignment deadline of 30s reached: "
                    "unstarted tests handed back"),
        _assignment("s-1-a002", "handback", ["t.py::t3"], message="worker error on w2@host: bundle cannot be "
                    "unpacked: disk full"),
        _assignment("s-1-a003", "failed", ["t.py::t4"], message="runner exited with code 4\nERROR: usage"),
        _assignment("s-1-a004", "handback", ["t.py::t5"], message="vm-1: connection lost: kernel panic or oops on "
                    "the VM's console:\n[ 1.2] Kernel panic - not syncing"),
    ]
    infrastructure = _classes(report)["infrastructure"]
    assert infrastructure["count"] == 5
    assert infrastructure["tests"] == [f"t.py::t{i}" for i in range(6)]
    events = infrastructure["detail"]["events"]
    assert [(e["assignment"], e["state"], e["cause"]) for e in events] == [
        ("s-1-a000", "lost", "lost"), ("s-1-a001", "handback", "assignment_deadline"),
        ("s-1-a002", "handback", "worker_error"), ("s-1-a003", "failed", "runner_failed"),
        ("s-1-a004", "handback", "vm_panic")]
    assert events[3]["message"] == "runner exited with code 4"  # the first line only
    assert events[0]["worker"] == "w2@host" and events[0]["attempt"] == 1


def test_tests_farm_gave_up_on_are_infrastructure_but_not_those_a_cancel_or_deadline_left() -> None:
    settings = Settings()
    new = Attempt("s-1-a000", 4, AttemptState.QUEUED, ("t.py::a",))
    lost = [Attempt("s-1-a000", n, AttemptState.LOST, ("t.py::a",)) for n in (1, 2, 3)]
    gave_up = machine.give_up(new, lost, settings=settings, canceled=False, stop="", too_late=False)
    canceled = machine.give_up(new, (), settings=settings, canceled=True, stop="", too_late=False)
    too_late = machine.give_up(new, (), settings=settings, canceled=False, stop="", too_late=True)
    for message, infrastructure in ((gave_up, True), (canceled, False), (too_late, False)):
        test = make_test("t.py::a", "not_run", message=message)
        test["attempts"][0].update(assignment="s-1-a000", attempt=4)
        report = make_report([test])
        report["assignments"] = [_assignment("s-1-a000", "failed", ["t.py::a"], attempt=4, message=message)]
        classes = _classes(report)
        assert ("infrastructure" in classes) is infrastructure, message
        if infrastructure:
            assert classes["infrastructure"]["detail"]["events"][0]["cause"] == "lost_too_often"
            assert classes["infrastructure"]["count"] == 1  # the test is the event's, not counted twice
    swept = make_test("t.py::b", "not_run", message="suite canceled before this test ran")
    swept["attempts"][0].update(assignment="cancel", attempt=0)
    assert _classes(make_report([swept])) == {}
    at_deadline = make_test("t.py::c", "not_run", message="not run: the suite deadline came first")
    assert _classes(make_report([at_deadline], status="deadline")) == {}
    ended = make_test("t.py::d", "not_run", message="the runner ended before running this test")
    ended["attempts"][0].update(assignment="s-1-a009")
    report = make_report([ended])
    report["assignments"] = [_assignment("s-1-a009", "done", ["t.py::d"])]
    assert _classes(report)["infrastructure"] == {
        "class": "infrastructure", "count": 1, "tests": ["t.py::d"], "detail": {"events": [], "gave_up": ["t.py::d"]}}


def test_classes_come_in_their_fixed_order_and_only_when_not_empty() -> None:
    crashed = make_test("t.py::c", "crashed")
    crashed["blame"] = "test"
    report = make_report([make_test("t.py::f", "flaky"), crashed, make_test("t.py::t", "timeout"),
                          make_test("t.py::x", "failed")])
    assert [c["class"] for c in analyse(expand(report))["classes"]] == ["failed", "timeout", "crashed", "flaky"]


def test_expand_adds_the_analysis_and_the_lean_document_never_stores_it(tmp_path: Path) -> None:
    report = mixed_report()
    full = expand(report)
    assert full["analysis"] == analyse(full)
    assert "analysis" not in compact(full)
    assert expand(compact(full)) == full
    path = tmp_path / "r.json"
    write_json(report, path)
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written["analysis"] == full["analysis"]  # in the file, for its readers
    assert load_report(path) == full


def test_the_summary_has_a_failure_analysis_line_and_the_tests_under_v() -> None:
    crashed = make_test("t.py::c", "crashed")
    crashed["blame"] = "test"
    tests = [make_test("t.py::f1", "failed"), make_test("t.py::f2", "failed"),
             make_test("t.py::s", "error", phase="setup"), make_test("t.py::t", "timeout"), crashed,
             make_test("t.py::l"), make_test("t.py::k", "flaky")]
    report = make_report(tests)
    report["assignments"] = [_assignment("s-1-a000", "lost", ["t.py::l"], worker="w2@h")]
    full = expand(report)
    text = render_summary(full).splitlines()
    banner = next(i for i, line in enumerate(text) if line.startswith("=") and " failure analysis " in line)
    assert text[banner + 1] == ("failures: 2 test failures, 1 setup/teardown error, 1 timeout, 1 crash (blame: test), "
                                "1 infrastructure (worker w2@h lost), 1 flaky")
    assert text[banner + 2].startswith("=")  # the final line: no tests listed without -v
    verbose = render_summary(full, verbose=True).splitlines()
    start = verbose.index(text[banner + 1])
    assert verbose[start + 1:start + 7] == [
        "  test failures: t.py::f1, t.py::f2", "  setup/teardown errors: t.py::s", "  timeouts: t.py::t",
        "  crashes: t.py::c", "  infrastructure: t.py::l", "  flaky: t.py::k"]
