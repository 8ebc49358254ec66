"""Builders of suite report dicts (docs/report-schema.md) for the report renderer tests."""

from __future__ import annotations

from typing import Any

from farm.outcomes import Outcome


def make_test(
    nodeid: str,
    outcome: str = "passed",
    *,
    phase: str = "call",
    duration_s: float = 0.01,
    message: str = "",
    longrepr: str = "",
    sections: list[list[str]] | None = None,
) -> dict[str, Any]:
    """One entry of a report's `tests` list."""
    return {
        "id": nodeid,
        "outcome": outcome,
        "phase": phase,
        "duration_s": duration_s,
        "message": message,
        "longrepr": longrepr,
        "sections": sections or [],
        "attempts": [
            {"assignment": "s-1-a001", "attempt": 1, "worker": "w1@host", "node": "local:host",
             "outcome": outcome, "duration_s": duration_s, "started_at": "2026-11-22T10:00:01.5+00:00"}
        ],
    }


def make_report(
    tests: list[dict[str, Any]],
    *,
    status: str = "finished",
    message: str = "",
    duration_s: float = 3.2,
) -> dict[str, Any]:
    """A whole report around `tests`, its summary counted from them."""
    summary = {o.value: 0 for o in Outcome}
    for test in tests:
        summary[test["outcome"]] += 1
    failing = summary["failed"] or summary["error"]
    return {
        "schema": 1,
        "suite_id": "s-20261122-0a1b2c3d",
        "project": "demo",
        "pool": "default",
        "status": status,
        "exit_code": 2 if status == "canceled" else (1 if failing else 0),
        "message": message,
        "pytest_args": ["tests/"],
        "summary": {"total": len(tests), **summary},
        "started_at": "2026-11-22T10:00:00.123456+00:00",
        "finished_at": "2026-11-22T10:00:03.323456+00:00",
        "duration_s": duration_s,
        "collection": {"worker": "w1@host", "exit_code": 0, "duration_s": 0.4, "output": ""},
        "tests": tests,
        "assignments": [],
        "workers": [{"name": "w1@host", "host": "host-a", "slots": 2},
                    {"name": "w2@host", "host": "host-b", "slots": 2}],
    }


FAIL_LONGREPR = """def test_fail():
        print("out here")
>       assert 1 == 2, "boom"
E       AssertionError: boom
E       assert 1 == 2

tests/sub/test_a.py:5: AssertionError"""

SETUP_LONGREPR = """@pytest.fixture
    def bad():
>       raise RuntimeError("setup bad")
E       RuntimeError: setup bad

tests/sub/test_a.py:12: RuntimeError"""

COLLECT_LONGREPR = """ImportError while importing test module '/tmp/rpt/tests/test_broken.py'.
tests/test_broken.py:1: in <module>
    import nonexistent_mod
E   ModuleNotFoundError: No module named 'nonexistent_mod'"""


def mixed_report(**kwargs: Any) -> dict[str, Any]:
    """The report of a real pytest run with one test of each kind (see the expected values in tests)."""
    tests = [
        make_test("tests/test_broken.py", "error", phase="collect", duration_s=0.0, longrepr=COLLECT_LONGREPR),
        make_test("tests/sub/test_a.py::test_pass"),
        make_test("tests/sub/test_a.py::test_fail", "failed", message="AssertionError: boom",
                  longrepr=FAIL_LONGREPR, sections=[["Captured stdout call", "out here\n"]]),
        make_test("tests/sub/test_a.py::TestC::test_m[1]"),
        make_test("tests/sub/test_a.py::TestC::test_m[a b]"),
        make_test("tests/sub/test_a.py::TestC::test_skip", "skipped", message="nope",
                  longrepr="tests/sub/test_a.py:9: nope"),
        make_test("tests/sub/test_a.py::test_seterr", "error", phase="setup",
                  message="RuntimeError: setup bad", longrepr=SETUP_LONGREPR),
        make_test("tests/sub/test_a.py::test_tderr", "error", phase="teardown",
                  message="RuntimeError: teardown bad", longrepr="E   RuntimeError: teardown bad"),
        make_test("tests/sub/test_a.py::test_xf", "xfailed", message="known"),
        make_test("tests/sub/test_a.py::test_xp", "xpassed", message="lucky"),
    ]
    return make_report(tests, **kwargs)


def rerun_report() -> dict[str, Any]:
    """A report of `--rerun-failures 2`: a test that failed then passed (flaky), one that failed
    all three runs, one that crashed and then passed on another worker, and one that passed."""
    def runs(*rows: tuple[str, str, str]) -> list[dict[str, Any]]:
        return [{"assignment": aid, "attempt": 1, "worker": worker, "node": "local:host", "outcome": outcome,
                 "duration_s": 0.01, "started_at": f"2026-11-22T10:00:0{i}+00:00", "fenced": False}
                for i, (aid, worker, outcome) in enumerate(rows, start=1)]

    flaky = make_test("tests/t.py::test_flaky", "flaky", message="failed, then passed when run again")
    flaky["attempts"] = runs(("s-1-a001", "w1@host", "failed"), ("s-1-r01", "w2@host", "passed"))
    failing = make_test("tests/t.py::test_fail", "failed", message="AssertionError: boom", longrepr=FAIL_LONGREPR)
    failing["attempts"] = runs(("s-1-a001", "w1@host", "failed"), ("s-1-r01", "w2@host", "failed"),
                               ("s-1-r02", "w1@host", "failed"))
    crashed = make_test("tests/t.py::test_crash_once", "passed")
    crashed["attempts"] = runs(("s-1-a001", "w1@host", "crashed"), ("s-1-c01", "w2@host", "passed"))
    return make_report([flaky, failing, crashed, make_test("tests/t.py::test_ok")])
