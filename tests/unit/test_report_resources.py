"""Resources and leaks from a completion to the report: on the attempt, in the JSON (lean and full), from the
event log alone, in the terminal; a memory-limit crash is not retried elsewhere (over the stub store)."""

from __future__ import annotations

import json

from support.fault_schedules import check
from support.scenarios import MemoryWorld

from farm.model import Leak, TestRecord
from farm.outcomes import Outcome
from farm.report.schema import compact, expand
from farm.report.terminal import render_summary
from farm.resources import memory_limit_message

TESTS = ("t.py::test_big", "t.py::test_leaves_sleep", "t.py::test_plain")
MB = 1 << 20


def _run_suite(max_memory: int = 200 * MB, message: str = memory_limit_message(200 * MB, 301 * MB)) -> MemoryWorld:
    w = MemoryWorld()
    w.add_worker("w1@h", slots=1)
    w.add_worker("w2@h", slots=1)
    w.submit("s", max_memory_bytes=max_memory)
    w.collect("s", TESTS)
    planned = [a for a in w.published if a.suite_id == "s"]
    assert {a.max_memory_bytes for a in planned} == {max_memory}, "the suite's limit travels with each assignment"
    for a in planned:
        w.take(a, "w1@h")
        w.send(a, "w1@h", *(TestRecord(t, Outcome.CRASHED, 1.0, message=message) if t == TESTS[0]
                            else TestRecord(t, Outcome.PASSED, 0.1) for t in a.test_ids))
        w.complete(a, "w1@h", peak_rss_bytes=301 * MB if TESTS[0] in a.test_ids else 40 * MB, cpu_s=2.5,
                   leaks=(Leak(TESTS[1], "process", "sleep 1000"),) if TESTS[1] in a.test_ids else ())
    for _ in range(3):  # whatever is published again (a crash retry) runs, and passes
        for again in [x for x in w.published if x.suite_id == "s" and x not in planned]:
            w.run(again, "w2@h")
        w.tick(11)
    return w


def test_the_report_shows_each_attempts_resources_and_the_leaks_and_the_log_gives_them_too() -> None:
    w = _run_suite()
    report = check(w, "s", TESTS)  # the report rebuilt from the event log alone is the stored one
    (big,) = [x for x in report["assignments"] if TESTS[0] in x["tests"]]
    assert big["resources"] == {"peak_rss_bytes": 301 * MB, "cpu_s": 2.5}
    (leaky,) = [x["id"] for x in report["assignments"] if TESTS[1] in x["tests"]]
    assert report["leaks"] == [{"test": TESTS[1], "kind": "process", "detail": "sleep 1000",
                                "assignment": leaky, "attempt": 1}]


def test_a_test_stopped_at_the_memory_limit_is_not_retried_on_another_worker() -> None:
    report = check(_run_suite(), "s", TESTS)
    assert not any("-c" in x["id"] for x in report["assignments"])
    (big,) = [t for t in report["tests"] if t["id"] == TESTS[0]]
    assert (big["outcome"], big["message"]) == ("crashed", "memory limit 200M exceeded (peak 301M)")


def test_another_crash_is_still_retried_on_another_worker() -> None:
    report = check(_run_suite(message="the runner died while this test ran (killed by SIGSEGV)"), "s", TESTS)
    (retry,) = [x for x in report["assignments"] if "-c" in x["id"]]
    assert retry["tests"] == [TESTS[0]] and retry["worker"] == "w2@h"


def test_the_lean_document_leaves_out_unmeasured_resources_and_no_leaks_and_the_full_view_has_them() -> None:
    w = MemoryWorld()
    w.add_worker("w1@h")
    w.submit("q")
    w.collect("q", TESTS[2:])
    (a,) = w.published
    w.run(a, "w1@h")  # a worker that does not measure (an older one, or an SSH host)
    stored = w.stored_report("q")
    assert stored is not None
    lean = json.loads(stored)
    assert "leaks" not in lean and "resources" not in lean["assignments"][0]
    full = expand(lean)
    assert full["leaks"] == [] and full["assignments"][0]["resources"] is None
    assert compact(full) == lean


def test_the_summary_names_what_a_test_left_and_minus_v_lists_the_assignments_by_peak() -> None:
    report = check(_run_suite(), "s", TESTS)
    plain = render_summary(report)
    assert f"leaks: 1 process left by {TESTS[1]} (sleep 1000, killed)" in plain.splitlines()
    assert "resources per assignment" not in plain
    verbose = render_summary(report, verbose=True)
    (big,) = [x["id"] for x in report["assignments"] if TESTS[0] in x["tests"]]
    lines = verbose.splitlines()
    assert f"{big}#1 peak RSS 301M, CPU 2.50s on w1@h" in lines
