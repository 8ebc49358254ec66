"""A hand-made full-view report for the HTML report's tests: two workers, a lost attempt with a fenced
run, a rerun, a failure whose output tries to close the page's script; and the fields other parts
of the report add (resources, leaks, analysis, gates, stages)."""

from __future__ import annotations

import copy
from typing import Any

from farm.events import Event, Kind

T0 = 1_800_000_000.0  # the suite's start, epoch seconds
EVIL = "E   assert '</script><b>bold</b>' == ''"


def at(s: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(T0 + s, UTC).isoformat()


def _run(assignment: str, attempt: int, worker: str, outcome: str, start: float, duration: float,
         **extra: Any) -> dict[str, Any]:
    return {"assignment": assignment, "attempt": attempt, "worker": worker, "node": f"local:{worker}",
            "outcome": outcome, "duration_s": duration, "started_at": at(start), "fenced": False, **extra}


def _test(test_id: str, outcome: str, runs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    for n, r in enumerate(runs, start=1):
        r.setdefault("run", n)
        r.setdefault("runs", len(runs))
    return {"id": test_id, "outcome": outcome, "phase": "call", "duration_s": runs[-1]["duration_s"] if runs else 0.0,
            "message": extra.pop("message", ""), "crashed_on": [], "blame": None, "ran_as": None,
            "longrepr": extra.pop("longrepr", ""), "sections": extra.pop("sections", []), "attempts": runs, **extra}


def _assignment(aid: str, attempt: int, worker: str, state: str, start: float, end: float | None,
                tests: list[str]) -> dict[str, Any]:
    return {"id": aid, "attempt": attempt, "worker": worker, "node": f"local:{worker}", "state": state,
            "tests": tests, "started_at": at(start), "finished_at": at(end) if end is not None else "",
            "message": ""}


def page_report() -> dict[str, Any]:
    a, b, c = "tests/t.py::test_a", "tests/t.py::test_fail", "tests/t.py::test_flaky"
    d, e = "tests/t.py::test_lost", "tests/t.py::test_skip"
    tests = [
        _test(a, "passed", [_run("s-1-a000", 1, "w1@h", "passed", 1.0, 0.5)]),
        _test(b, "failed", [_run("s-1-a000", 1, "w1@h", "failed", 1.5, 1.0)], message="AssertionError",
              longrepr=EVIL, sections=[["Captured stdout call", "</script><b>out</b>\n"]]),
        _test(c, "flaky", [_run("s-1-a001", 1, "w2@h", "failed", 1.0, 0.2),
                           _run("s-1-r01", 1, "w1@h", "passed", 6.0, 0.2)], message="failed, then passed"),
        _test(d, "passed", [_run("s-1-a001", 1, "w2@h", "passed", 1.2, 0.3, fenced=True),
                            _run("s-1-a001", 2, "w1@h", "passed", 3.0, 0.3)]),
        _test(e, "skipped", [_run("s-1-a001", 2, "w1@h", "skipped", 3.3, 0.0)], message="nope"),
    ]
    summary = {"total": 5, "passed": 2, "failed": 1, "error": 0, "skipped": 1, "xfailed": 0, "xpassed": 0,
               "timeout": 0, "crashed": 0, "flaky": 1, "not_run": 0}
    return {
        "schema": 2, "suite_id": "s-1", "project": "sample", "pool": "default", "status": "finished",
        "exit_code": 1, "message": "", "pytest_args": [], "summary": summary,
        "started_at": at(0), "finished_at": at(8), "duration_s": 8.0,
        "collection": {"worker": "w1@h", "exit_code": 0, "duration_s": 0.4, "output": ""},
        "tests": tests,
        "assignments": [
            _assignment("s-1-a000", 1, "w1@h", "done", 0.8, 2.8, [a, b]),
            _assignment("s-1-a001", 1, "w2@h", "lost", 0.9, None, [c, d, e]),
            _assignment("s-1-a001", 2, "w1@h", "done", 2.9, 3.6, [d, e]),
            _assignment("s-1-r01", 1, "w1@h", "done", 5.8, 6.5, [c]),
        ],
        "workers": [{"name": "w1@h", "host": "h", "slots": 2}, {"name": "w2@h", "host": "h", "slots": 1}],
        "stopped": "", "durations": None,
    }


def page_events() -> list[Event]:
    """The events that mark the sample's timeline: w2's lease lost at 2.5 s, its fenced records, the rerun."""
    return [Event(Kind.LEASE_LOST, T0 + 2.5, "s-1-a001", 1, "w2@h", "local:w2@h", "lost"),
            Event(Kind.FENCED, T0 + 2.6, "s-1-a001", 1, "w2@h", "local:w2@h", "1 record"),
            Event(Kind.RERUN, T0 + 5.0, "s-1-r01", 1, "", "", "1 test")]


def with_everything(report: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(report)
    for i, a in enumerate(out["assignments"]):
        a["resources"] = {"peak_rss_bytes": 512 * 2**20 if i == 0 else 64 * 2**20, "cpu_s": 1.25}
    out["leaks"] = [{"test": "tests/t.py::test_leaky", "kind": "process", "detail": "sleep 1000 (pid 42)",
                     "assignment": "s-1-a000", "attempt": 1}]
    out["analysis"] = {"classes": [{"class": "failed", "count": 1, "tests": ["tests/t.py::test_fail"]},
                                   {"class": "flaky", "count": 1, "tests": ["tests/t.py::test_flaky"]}]}
    out["gates"] = [{"gate": "max-failures", "limit": 0, "value": 1, "verdict": "failed", "detail": "1 failing > 0"},
                    {"gate": "max-duration-regression", "limit": 15.0, "value": None, "verdict": "skipped",
                     "detail": "1 earlier comparable run, 3 needed (wall 8.00s)"}]
    out["quarantined"] = [{"test_id": "tests/t.py::test_fail", "outcome": "failed", "reason": "listed"}]
    out["quarantine_unknown"] = ["tests/t.py::test_gone"]
    out["stages"] = [{"name": "unit", "status": "finished", "duration_s": 8.0}]
    return out
