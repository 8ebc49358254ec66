"""The compact stored forms of test records and test runs: msgpack arrays in a fixed field order.

The `records` and `attempts` hashes and the `records` events of the log keep one per test (100,000
in a large suite): an array spares the field names a map repeats in every value (about half its
bytes for a passing test). The readers intern the strings a suite repeats (test ids, which the
report's order and runs hold again; assignments, workers, nodes, outcomes, phases), so a finish
holding every test once holds each string once. Readers take the older map form too (`farm.model.record_to_plain`,
`dataclasses.asdict` of a `TestRun`), so suites stored by an older farm still read.
"""

from __future__ import annotations

from sys import intern
from typing import Any

from farm.model import TestRecord, TestRun, record_from_plain
from farm.outcomes import VALUE, Outcome


def record_row(r: TestRecord) -> list[Any]:
    """A record as an array: test id, outcome, duration, phase, message, longrepr, sections,
    started_at, setup_s, call_s, teardown_s, ran_as."""
    sections = r.sections
    return [r.test_id, VALUE[r.outcome], r.duration_s, r.phase, r.message, r.longrepr,
            [list(s) for s in sections] if sections else [], r.started_at, r.setup_s, r.call_s, r.teardown_s, r.ran_as]


def record_from_row(v: Any) -> TestRecord:
    """A record from `record_row`'s array, or from the older map form."""
    if isinstance(v, dict):
        return record_from_plain(v)
    tid, outcome, duration, phase, message, longrepr, sections, started, setup, call, teardown, ran_as = v
    return TestRecord(intern(tid), Outcome(outcome), duration, intern(phase), message, longrepr,
                      tuple((n, t) for n, t in sections), started, setup, call, teardown, ran_as)


def run_row(run: TestRun) -> list[Any]:
    """A test run as an array, in `TestRun`'s field order."""
    return [run.test_id, run.assignment, run.attempt, run.worker, run.node, run.outcome, run.duration_s,
            run.started_at, run.fenced]


def run_from_row(v: Any) -> TestRun:
    """A test run from `run_row`'s array, or from the older map form (a map of its fields)."""
    if isinstance(v, dict):
        return TestRun(**v)
    test_id, assignment, attempt, worker, node, outcome, duration, started, fenced = v
    return TestRun(intern(test_id), intern(assignment), attempt, intern(worker), intern(node), intern(outcome),
                   duration, started, fenced)


def run_of(r: TestRecord, *, assignment: str, attempt: int, worker: str, node: str) -> TestRun:
    """The (unfenced) test run a counted record of this attempt makes: what a `records` event need
    not carry (`derived`). A flaky record was a pass: its run says so."""
    outcome = Outcome.PASSED.value if r.outcome is Outcome.FLAKY else r.outcome.value
    return TestRun(r.test_id, assignment, attempt, worker, node, outcome, r.duration_s, r.started_at, False)
