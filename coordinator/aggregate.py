"""Merging test records into a suite's state (pure: the outcomes that count now in, writes out).

The state store holds, per test, the outcome that counts now (or "pending"). A batch of records is
merged against it under the explicit precedence of `farm.outcomes.supersedes`: a record only
replaces the one that counts when it ranks higher, so replaying a batch, or delivering it twice, or
late, changes nothing. Every record is also kept as a test run keyed by (test, assignment,
attempt), which is idempotent by construction.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field, replace

from farm.model import TestRecord, TestRun
from farm.outcomes import Outcome, supersedes

PENDING = "pending"


@dataclass
class Merge:
    """What merging a batch decided: the records that now count, and the count changes."""

    counted: dict[str, TestRecord] = field(default_factory=dict)
    deltas: dict[str, int] = field(default_factory=dict)
    runs: dict[str, TestRun] = field(default_factory=dict)  # test runs to write (HSET)
    verdicts: dict[str, TestRun] = field(default_factory=dict)  # not_run runs, written only if absent
    newly_final: int = 0  # tests that went from pending to an outcome
    unknown: list[str] = field(default_factory=list)  # records for tests the suite does not have
    fenced: int = 0  # records from attempts that no longer own their test


def merge(
    current: Mapping[str, str | None],
    records: Iterable[TestRecord],
    *,
    assignment: str,
    attempt: int,
    worker: str,
    node: str,
    owners: Mapping[str, str] | None = None,
    rerun: Container[str] = (),
) -> Merge:
    """Merge records against `current` (test id → outcome value, "pending", or None if unknown).

    With `owners` (test id → "assignment#attempt"), a record counts only when it comes from the
    attempt that owns its test: records of an attempt that was given up on and run again are
    fenced, kept as test runs only.
    """
    result = Merge()
    now_counted: dict[str, str | None] = dict(current)
    me = f"{assignment}#{attempt}"
    for record in records:
        state = now_counted.get(record.test_id)
        if state is None:
            result.unknown.append(record.test_id)
            continue
        fenced = owners is not None and owners.get(record.test_id) != me
        run = TestRun(record.test_id, assignment, attempt, worker, node, record.outcome.value,
                         record.duration_s, record.started_at, fenced)
        if fenced:
            result.runs[run.key] = run
            result.fenced += 1
            continue
        if record.outcome is Outcome.NOT_RUN:
            # A not_run verdict never overwrites a run (it is written only where none exists):
            # a real result of the same attempt keeps its run whichever arrives first.
            if run.key not in result.runs:
                result.verdicts.setdefault(run.key, run)
        else:
            result.runs[run.key] = run
            result.verdicts.pop(run.key, None)
        old = None if state == PENDING else Outcome(state)
        if not supersedes(record.outcome, old):
            continue
        if record.outcome is Outcome.PASSED and record.test_id in rerun:
            # It failed before and passes now.
            record = replace(record, outcome=Outcome.FLAKY, message="failed, then passed when run again")
        if old is None:
            result.newly_final += 1
        else:
            result.deltas[old.value] = result.deltas.get(old.value, 0) - 1
        result.deltas[record.outcome.value] = result.deltas.get(record.outcome.value, 0) + 1
        result.counted[record.test_id] = record
        now_counted[record.test_id] = record.outcome.value
    return result
