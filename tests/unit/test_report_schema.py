"""The JSON report's lean document (schema 2): its size per test, and a reader gets every field back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.reporting import build_report, iso
from farm.attempts import Attempt
from farm.model import Collection, SuiteSpec, TestRecord, TestRun, WorkerInfo
from farm.outcomes import Outcome
from farm.report.jsonfile import write_json
from farm.report.schema import compact, dumps, expand, load_report
from farm.states import AttemptState

T0 = 1_795_000_000.0
SID = "s-20261201-090925-50ab4bfd"
WORKER = "farm-default-0-24254@vm"

#: Every field of schema 1 (docs/report-schema.md before schema 2), per object.
OLD_TEST_FIELDS = {"id", "outcome", "phase", "duration_s", "message", "crashed_on", "blame", "longrepr", "sections",
                   "attempts"}
OLD_ATTEMPT_FIELDS = {"assignment", "attempt", "worker", "node", "outcome", "duration_s", "started_at", "fenced"}
OLD_ASSIGNMENT_FIELDS = {"id", "attempt", "worker", "node", "state", "tests", "started_at", "finished_at", "message"}


def passing_suite(n: int, *, slots: int = 8, id_of: Any = None) -> dict[str, Any]:
    """The report build_report makes for `n` tests that each passed in their only attempt."""
    id_of = id_of or (lambda i: f"tests/test_many.py::test_trivial[{i}]")
    order = [id_of(i) for i in range(n)]
    spec = SuiteSpec(SID, "demo", "0" * 64, "default", "load", ("tests",), T0)
    counted, rows, assignments = {}, [], []
    per = -(-n // slots) if n else 1
    for k in range(slots):
        aid = f"{SID}-a{k:03d}"
        ids = order[k * per:(k + 1) * per]
        assignments.append(Attempt(aid, 1, AttemptState.DONE, tuple(ids), worker=WORKER, node="local:vm",
                                   started_at=T0 + 1, finished_at=T0 + 9))
        for i, t in enumerate(ids):
            duration, started = 0.000375 + i * 1e-7, T0 + 1 + i * 0.000417
            counted[t] = TestRecord(t, Outcome.PASSED, duration, started_at=started)
            rows.append(TestRun(t, aid, 1, WORKER, "local:vm", "passed", duration, started))
    return build_report(
        spec=spec, status="finished", exit_code=0, message="", started_at=T0, finished_at=T0 + 10,
        collection=Collection(SID, WORKER, 0, tuple(order), duration_s=0.4), order=order, counted=counted,
        runs=rows, attempts=assignments, workers=[WorkerInfo(WORKER, "vm", 2, "default", "local")])


def size_of(report: dict[str, Any], tmp_path: Path, name: str) -> int:
    path = tmp_path / name
    write_json(report, path)
    return path.stat().st_size


def test_a_test_that_passed_in_its_only_attempt_costs_at_most_250_bytes(tmp_path: Path) -> None:
    small, large = size_of(passing_suite(1_000), tmp_path, "1k.json"), size_of(passing_suite(10_000), tmp_path,
                                                                                "10k.json")
    per_test = (large - small) / 9_000
    assert per_test <= 250, f"{per_test:.0f} bytes per passing test"
    assert large / 10_000 <= 250, f"{large / 10_000:.0f} bytes per test, fixed part included"


def test_the_bound_holds_for_long_node_ids_too(tmp_path: Path) -> None:
    """A 64,207-test real suite's ids average about 75 characters; give them 90."""
    def long_id(i: int) -> str:
        return f"tests/unit/storage/test_backends_{i % 97:02d}.py::TestBackendRoundTrip::test_write_then_read[{i}]"

    small = size_of(passing_suite(1_000, id_of=long_id), tmp_path, "1k.json")
    large = size_of(passing_suite(10_000, id_of=long_id), tmp_path, "10k.json")
    assert (large - small) / 9_000 <= 250


def test_the_written_report_reads_back_as_the_full_view_with_every_old_field(tmp_path: Path) -> None:
    report = passing_suite(30)
    path = tmp_path / "r.json"
    write_json(report, path)
    assert json.loads(path.read_text())["schema"] == 2
    full = load_report(path)
    (first, *_rest) = full["tests"]
    assert set(first) == OLD_TEST_FIELDS | {"ran_as", "stage"}
    (row,) = first["attempts"]
    assert set(row) == OLD_ATTEMPT_FIELDS | {"run", "runs"}
    assert row == {"assignment": f"{SID}-a000", "attempt": 1, "worker": WORKER, "node": "local:vm",
                   "outcome": "passed", "duration_s": 0.000375, "started_at": iso(T0 + 1), "fenced": False,
                   "run": 1, "runs": 1}
    assert [set(a) for a in full["assignments"]] == [OLD_ASSIGNMENT_FIELDS | {"resources"}] * 8
    assert full["assignments"][0]["tests"] == [f"tests/test_many.py::test_trivial[{i}]" for i in range(4)]
    assert expand(full) == full  # the full view is a fixed point
    written = json.loads(path.read_text())
    assert written.pop("analysis") == full["analysis"]  # the file adds the derived analysis for its readers
    assert compact(full) == written  # what build_report stored, exactly


def test_reruns_and_crash_retries_number_each_run_of_a_test() -> None:
    t = "tests/t.py::test_f"
    spec = SuiteSpec(SID, "demo", "0" * 64, "default", "load", (), T0, rerun_failures=2)
    rows = [TestRun(t, f"{SID}-a000", 1, "w1@h", "local:h", "failed", 0.1, T0 + 1),
            TestRun(t, f"{SID}-r01", 1, "w2@h", "local:h", "failed", 0.1, T0 + 2),
            TestRun(t, f"{SID}-r02", 1, "w1@h", "local:h", "passed", 0.1, T0 + 3)]
    assignments = [Attempt(r.assignment, 1, AttemptState.DONE, (t,), worker=r.worker, node=r.node,
                           started_at=r.started_at, finished_at=r.started_at + 1) for r in rows]
    lean = build_report(spec=spec, status="finished", exit_code=0, message="", started_at=T0, finished_at=T0 + 4,
                        collection=None, order=[t],
                        counted={t: TestRecord(t, Outcome.FLAKY, 0.1, message="failed, then passed when run again")},
                        runs=rows, attempts=assignments, workers=[])
    (test,) = expand(json.loads(json.dumps(lean)))["tests"]
    assert [(a["assignment"].rsplit("-", 1)[1], a["run"], a["runs"], a["outcome"]) for a in test["attempts"]] == [
        ("a000", 1, 3, "failed"), ("r01", 2, 3, "failed"), ("r02", 3, 3, "passed")]


def test_a_not_run_verdict_is_no_run_of_the_test() -> None:
    doc = {"tests": [{"id": "t.py::test_a", "outcome": "not_run", "attempts": [
        {"assignment": "s-a000", "attempt": 1, "worker": "w1", "node": "n", "outcome": "passed",
         "duration_s": 0.1, "started_at": None, "fenced": True},
        {"assignment": "cancel", "attempt": 0, "worker": "", "node": "", "outcome": "not_run",
         "duration_s": 0.0, "started_at": None, "fenced": False}]}]}
    (test,) = expand(doc)["tests"]
    assert [(a["run"], a["runs"]) for a in test["attempts"]] == [(1, 1), (None, 1)]


# Any report of schema 1, compacted, written and read back, is the report it was.

_TIME = st.sampled_from([None, "2026-11-22T10:00:01.500000+00:00", "2026-11-22T10:00:02+00:00"])
_WORKER = st.sampled_from([None, "", "w1@h", "w2@h"])
_NODE = st.sampled_from([None, "", "local:h", "vm:x", "collect"])
_TEXT = st.sampled_from(["", "boom", "é 日本\n\x00"])
_DURATION = st.sampled_from([0.0, 0.1, 0.000375, 2.5])
_OUTCOME = st.sampled_from([o.value for o in Outcome])


@st.composite
def old_reports(draw: Any) -> dict[str, Any]:
    n_assign = draw(st.integers(0, 4))
    assignments = []
    for i in range(n_assign):
        for attempt in range(1, draw(st.integers(1, 2)) + 1):
            assignments.append({"id": f"s-a{i:03d}", "attempt": attempt, "worker": draw(_WORKER),
                                "node": draw(_NODE), "state": draw(st.sampled_from(["done", "lost", "queued"])),
                                "tests": [], "started_at": draw(_TIME), "finished_at": draw(_TIME),
                                "message": draw(_TEXT)})
    ids = draw(st.lists(st.sampled_from([f"t.py::test_{k}[{p}]" for k in range(6) for p in "ab"] + ["t.py"]),
                        unique=True, max_size=8))
    tests = []
    for test_id in ids:
        duration = draw(_DURATION)
        outcome = draw(_OUTCOME)
        targets = [(a["id"], a["attempt"], a) for a in assignments] + [("cancel", 0, None), ("collection", 1, None)]
        chosen = draw(st.lists(st.sampled_from(targets), unique_by=lambda x: (x[0], x[1]), max_size=3)) \
            if targets else []
        rows = []
        for aid, attempt, a in chosen:
            same = a is not None and draw(st.booleans())
            rows.append({"assignment": aid, "attempt": attempt,
                         "worker": a["worker"] if same else draw(_WORKER),
                         "node": a["node"] if same else draw(_NODE),
                         "outcome": outcome if draw(st.booleans()) else draw(_OUTCOME),
                         "duration_s": duration if draw(st.booleans()) else draw(_DURATION),
                         "started_at": draw(_TIME), "fenced": draw(st.booleans())})
        tests.append({"id": test_id, "outcome": outcome,
                      "phase": draw(st.sampled_from(["call", "setup", "teardown", "collect", ""])),
                      "duration_s": duration, "message": draw(_TEXT),
                      "crashed_on": draw(st.lists(st.sampled_from(["w1@h", "w2@h"]), unique=True)),
                      "blame": draw(st.sampled_from([None, "test", "worker", "unknown"])),
                      "longrepr": draw(_TEXT), "sections": draw(st.lists(st.tuples(_TEXT, _TEXT).map(list),
                                                                         max_size=2)),
                      "attempts": rows})
    for a in assignments:
        derived = [t["id"] for t in tests if any((r["assignment"], r["attempt"]) == (a["id"], a["attempt"])
                                                 for r in t["attempts"])]
        a["tests"] = derived if draw(st.booleans()) else draw(st.lists(st.sampled_from(ids), unique=True)) \
            if ids else []
    return {"schema": 1, "suite_id": "s", "status": "finished", "exit_code": 0, "summary": {"total": len(tests)},
            "tests": tests, "assignments": assignments, "workers": [], "suspect_workers": []}


def old_view(full: dict[str, Any]) -> dict[str, Any]:
    """A full view as schema 1 had it: the fields schema 2 added left out."""
    tests = [{k: v for k, v in t.items() if k in OLD_TEST_FIELDS} for t in full["tests"]]
    for t in tests:
        t["attempts"] = [{k: v for k, v in a.items() if k in OLD_ATTEMPT_FIELDS} for a in t["attempts"]]
    assignments = [{k: v for k, v in a.items() if k != "resources"} for a in full["assignments"]]
    old = {k: v for k, v in full.items() if k not in ("leaks", "analysis", "stages")}
    return {**old, "schema": 1, "tests": tests, "assignments": assignments}


@settings(max_examples=200, deadline=None)
@given(old_reports())
def test_a_reader_reconstructs_every_field_the_old_schema_had(report: dict[str, Any]) -> None:
    written = json.loads(dumps(compact(report)))
    assert written["schema"] == 2
    assert old_view(expand(written)) == report
    assert compact(written) == written  # compacting twice changes nothing


@settings(max_examples=50, deadline=None)
@given(old_reports())
def test_the_lean_document_leaves_out_only_defaults_and_what_references_give(report: dict[str, Any]) -> None:
    lean = compact(report)
    for test, original in zip(lean["tests"], report["tests"], strict=True):
        if "assignment" in test:  # one run, exactly as its assignment and the test say
            (row,) = original["attempts"]
            a = lean["assignments"][test["assignment"]]
            assert (row["assignment"], row["attempt"], row["worker"], row["node"]) == (
                a["id"], a["attempt"], a["worker"], a["node"])
            assert not row["fenced"] and row["outcome"] == original["outcome"]


def test_fields_a_reader_or_writer_does_not_know_are_kept() -> None:
    report = passing_suite(2)
    report["tests"][0]["setup_s"] = 0.25  # say, a field a later farm adds
    report["stopped"] = "stopped after 1 failure"
    full = expand(json.loads(dumps(compact(report))))
    assert full["tests"][0]["setup_s"] == 0.25 and "setup_s" not in full["tests"][1]
    assert full["stopped"] == "stopped after 1 failure"
    assert compact(full)["tests"][0]["setup_s"] == 0.25
