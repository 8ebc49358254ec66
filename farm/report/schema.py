"""The JSON report's two forms: the lean document stored and written (schema 2), and its full view.

`compact` turns a full report (every field of every test, attempt and assignment) into the lean
document of docs/report-schema.md: fields equal to their documented default are left out, a
test that ran once refers to its assignment by index instead of repeating it, and an
assignment's test list is left out when its tests' references give it. `expand` gives back
the full view of any report (schema 1 or 2, lean or already full), adding each attempt's
`run` / `runs` and the report's failure `analysis` (farm.report.analysis, derived, never stored);
`expand(compact(full)) == expand(full)`. Both are pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from farm.report.analysis import analyse

SCHEMA = 2

#: A test's fields and the value each has when a lean test leaves it out.
TEST_DEFAULTS: dict[str, Any] = {
    "phase": "call",
    "duration_s": 0.0,
    "message": "",
    "longrepr": "",
    "sections": [],
    "crashed_on": [],
    "blame": None,
    "ran_as": None,
    "stage": None,
}
_DEFAULTS = tuple(TEST_DEFAULTS.items())
#: An attempt entry's fields left out of a lean test when they equal the test's or its assignment's.
ATTEMPT_FIELDS = ("assignment", "attempt", "worker", "node", "outcome", "duration_s", "started_at", "fenced")
#: Order of a test's fields in the full view.
TEST_FIELDS = ("id", "outcome", "phase", "duration_s", "message", "crashed_on", "blame", "ran_as", "stage",
               "longrepr", "sections", "attempts")
_FULL_TEST_KEYS = frozenset(TEST_FIELDS)
_LEAN_TEST_KEYS = _FULL_TEST_KEYS | {"assignment", "started_at"}


def load_report(path: Path | str) -> dict[str, Any]:
    """Read a JSON report file (any schema) and return its full view."""
    return expand(json.loads(Path(path).read_text(encoding="utf-8")))


def expand(report: Mapping[str, Any]) -> dict[str, Any]:
    """The full view of a report: every field present, references resolved, runs numbered."""
    doc = {**report, "schema": SCHEMA}  # the full view of schema 2, whatever schema was read
    assignments: list[dict[str, Any]] = list(doc.get("assignments") or [])
    tests: list[dict[str, Any]] = list(doc.get("tests") or [])
    by_attempt: dict[tuple[str, int], list[str]] = {}
    full_tests = []
    for test in tests:
        attempts = [_expand_attempt(test, row, assignments) for row in _rows_of(test)]
        _number_runs(attempts)
        for row in attempts:
            by_attempt.setdefault((row["assignment"], row["attempt"]), []).append(test["id"])
        get = test.get
        item = {  # TEST_FIELDS, in order, with TEST_DEFAULTS
            "id": test["id"], "outcome": get("outcome", "passed"), "phase": get("phase", "call"),
            "duration_s": get("duration_s", 0.0), "message": get("message", ""),
            "crashed_on": list(get("crashed_on", ())), "blame": get("blame"), "ran_as": get("ran_as"),
            "stage": get("stage"), "longrepr": get("longrepr", ""), "sections": [list(x) for x in get("sections", ())],
            "attempts": attempts,
        }
        for name in test.keys() - _LEAN_TEST_KEYS:  # a field this reader does not know: kept as is
            item[name] = test[name]
        full_tests.append(item)
    doc["tests"] = full_tests
    full_assignments = []
    for a in assignments:
        entry = dict(a)
        if "tests" not in entry:
            entry["tests"] = list(by_attempt.get((entry["id"], entry["attempt"]), []))
        entry.setdefault("message", "")
        entry.setdefault("worker", None)
        entry.setdefault("node", None)
        entry.setdefault("resources", None)
        full_assignments.append(entry)
    doc["assignments"] = full_assignments
    doc.setdefault("suspect_workers", [])
    doc.setdefault("leaks", [])
    doc.setdefault("stages", [])
    doc["analysis"] = analyse(doc)  # derived on read: never stored (compact drops it)
    return doc


def compact(report: Mapping[str, Any], *, expanded: bool = False) -> dict[str, Any]:
    """The lean document (schema 2) of a report in any form; see docs/report-schema.md.

    `expanded`: `report` is a full view already (every field of every object present, as
    build_report makes it), so it need not be expanded first."""
    full = report if expanded else expand(report)
    assignments: list[dict[str, Any]] = full["assignments"]
    index = assignment_index(assignments)
    referenced: dict[int, list[str]] = {}
    lean_tests = [lean_test(test, index, assignments, referenced) for test in full["tests"]]
    doc = {**full, "schema": SCHEMA, "tests": lean_tests,
           "assignments": lean_assignments(assignments, referenced)}
    drop_empty_lists(doc)
    doc.pop("analysis", None)  # derived from the rest by expand
    return doc


def quarantined_of(report: Mapping[str, Any]) -> dict[str, str]:
    """The report's quarantined tests (its `quarantined` list): id -> why."""
    return {str(q.get("test_id")): str(q.get("reason") or "") for q in report.get("quarantined") or ()
            if isinstance(q, Mapping)}


def drop_empty_lists(doc: dict[str, Any]) -> None:
    """Leave out the top-level lists the lean document omits when empty (`suspect_workers`, `leaks`,
    `gates`, `quarantined`, `quarantine_unknown`, `stages`)."""
    for name in ("suspect_workers", "leaks", "gates", "quarantined", "quarantine_unknown", "stages"):
        if not doc.get(name):
            doc.pop(name, None)


def assignment_index(assignments: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int], int]:
    """(assignment id, attempt) → its position in the report's assignments (a lean run refers to it)."""
    return {(a["id"], a["attempt"]): i for i, a in enumerate(assignments)}


def lean_test(test: Mapping[str, Any], index: Mapping[tuple[str, int], int],
              assignments: Sequence[Mapping[str, Any]], referenced: dict[int, list[str]]) -> dict[str, Any]:
    """One test's lean entry from its full view (`compact`, one test at a time); notes in
    `referenced` the assignments its runs refer to (`lean_assignments` reads it)."""
    lean: dict[str, Any] = {"id": test["id"], "outcome": test["outcome"]}
    for name, default in _DEFAULTS:
        if test[name] != default:
            lean[name] = test[name]
    for name in test.keys() - _FULL_TEST_KEYS:  # a field this writer does not know: kept as is
        lean[name] = test[name]
    rows = test["attempts"]
    refs = [index.get((r["assignment"], r["attempt"])) for r in rows]
    for ref in refs:
        if ref is not None:
            referenced.setdefault(ref, []).append(test["id"])
    if len(rows) == 1 and refs[0] is not None and _is_plain(test, rows[0], assignments[refs[0]]):
        lean["assignment"] = refs[0]
        if rows[0]["started_at"] is not None:
            lean["started_at"] = rows[0]["started_at"]
    elif rows:
        lean["attempts"] = [_compact_attempt(r, ref, assignments) for r, ref in zip(rows, refs, strict=True)]
    return lean


def lean_assignments(assignments: Sequence[Mapping[str, Any]],
                     referenced: Mapping[int, list[str]]) -> list[dict[str, Any]]:
    """The lean assignment entries, once every test's `lean_test` noted what it refers to."""
    out = []
    for i, a in enumerate(assignments):
        entry = dict(a)
        if list(entry["tests"]) == referenced.get(i, []):
            del entry["tests"]  # every one of its tests refers to it, in report order
        if not entry.get("message"):
            entry.pop("message", None)
        if entry.get("resources", 0) is None:
            del entry["resources"]
        out.append(entry)
    return out


def dumps(report: Mapping[str, Any]) -> str:
    """A report as JSON text: indented, with each test and assignment on a line of its own."""
    lines = []
    for key, value in report.items():
        if isinstance(value, list) and value and key in ("tests", "assignments", "workers", "suspect_workers", "leaks",
                                                            "gates", "quarantined"):
            items = ",\n".join("    " + json.dumps(item, ensure_ascii=False) for item in value)
            text = f"[\n{items}\n  ]"
        else:
            text = json.dumps(value, ensure_ascii=False)
        lines.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _rows_of(test: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """A test's attempt entries as written; a lean test's single run is its `assignment` reference."""
    if "attempts" in test:
        return list(test["attempts"] or ())
    if "assignment" in test:
        return [{"assignment": test["assignment"], "started_at": test.get("started_at")}]
    return []


_NO_ASSIGNMENT: Mapping[str, Any] = {}


def _expand_attempt(test: Mapping[str, Any], row: Mapping[str, Any],
                    assignments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ref = row.get("assignment")
    base: Mapping[str, Any] = _NO_ASSIGNMENT
    if type(ref) is int and 0 <= ref < len(assignments):
        base = assignments[ref]
        ref = base["id"]
    return {
        "assignment": ref,
        "attempt": row.get("attempt", base.get("attempt", 1)),
        "worker": row.get("worker", base.get("worker")),
        "node": row.get("node", base.get("node")),
        "outcome": row.get("outcome", test.get("outcome", "passed")),
        "duration_s": row.get("duration_s", test.get("duration_s", 0.0)),
        "started_at": row.get("started_at"),
        "fenced": bool(row.get("fenced", False)),
    }


def _number_runs(attempts: list[dict[str, Any]]) -> None:
    """Each attempt entry's `run` (1, 2, ... among the entries where the test ran; None for a
    `not_run` verdict) and `runs` (how many times the test ran)."""
    ran = [a for a in attempts if a["outcome"] != "not_run"]
    for a in attempts:
        a["run"] = None
        a["runs"] = len(ran)
    for n, a in enumerate(ran, start=1):
        a["run"] = n


def _is_plain(test: Mapping[str, Any], row: Mapping[str, Any], assignment: Mapping[str, Any]) -> bool:
    """Whether a test's only attempt entry is exactly what its assignment and the test say."""
    return (row["outcome"] == test["outcome"] and row["duration_s"] == test["duration_s"] and not row["fenced"]
            and row["worker"] == assignment.get("worker") and row["node"] == assignment.get("node"))


def _compact_attempt(row: Mapping[str, Any], ref: int | None,
                     assignments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An attempt entry with its assignment by index, and the worker and node only when they
    differ from that assignment's; entries of a pseudo-assignment (collection, cancel,
    deadline) are written whole."""
    if ref is None:
        out = {name: row[name] for name in ATTEMPT_FIELDS}
    else:
        a = assignments[ref]
        out = {"assignment": ref}
        for name in ("worker", "node"):
            if row[name] != a.get(name):
                out[name] = row[name]
        out.update(outcome=row["outcome"], duration_s=row["duration_s"], started_at=row["started_at"],
                   fenced=row["fenced"])
    if not out.get("fenced"):
        out.pop("fenced", None)
    return out


def counted_run(test: Mapping[str, Any]) -> tuple[int, int] | None:
    """(N, M) when a test (full view) ran M > 1 times and its outcome is that of run N; else None.

    The run that counts is the last one not fenced (a rerun or retry replaces what came before)."""
    attempts = list(test.get("attempts") or ())
    ran = [a for a in attempts if a.get("run") is not None]
    if len(ran) < 2:
        return None
    counted = [a for a in ran if not a.get("fenced")] or ran
    return int(counted[-1]["run"]), int(counted[-1]["runs"])
