"""Merging test records into a suite's state (pure: the outcomes that count now in, writes out).

The state store holds, per test, the outcome that counts now (or "pending"). A batch of records is
merged against it under the explicit precedence of `farm.outcomes.supersedes`: a record only
replaces the one that counts when it ranks higher, so replaying a batch, or delivering it twice, or
late, changes nothing. Every record is also kept as a test run keyed by (test, assignment,
attempt), which is idempotent by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field, replace

from farm.model import TestRecord, TestRun
from farm.outcomes import BY_VALUE, VALUE, Outcome, supersedes

PENDING = "pending"


@dataclass(frozen=True)
class After:
    """The suite as a merge left it, read in the merge's own atomic step: what a batch's handling
    checks next (its attempt's held completion, the suite's finish) without reading again."""

    total: int  # the suite's tests
    done: int  # of which have an outcome
    held: tuple[bytes, int] | None  # the attempt's held completion and its `received` count (`held_completion`)


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
    dropped: int = 0  # records for tests their attempt was not given (the stores' `given`): not written
    after: After | None = None  # set by the stores: the suite right after this merge
    repeated: bool = False  # the batch (by its number) was merged before: nothing written, counted or logged


def not_given(records: list[TestRecord], owners: Mapping[str, str], me: str,
              given: Callable[[], Container[str]] | None) -> list[TestRecord]:
    """The records a batch of attempt `me` may merge. Where the attempt owns every test, all of them
    (an attempt owns only tests it was given); else `given()` (its test ids, read only then) keeps
    those it was given: a record of a test it no longer owns is fenced later, of one never given dropped."""
    if given is None or all(owners.get(r.test_id) == me for r in records):
        return records
    allowed = given()
    return [r for r in records if r.test_id in allowed]


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
    suffix = f"\0{assignment}\0{attempt}"  # a run's key is test id + suffix (`TestRun.key`)
    runs, verdicts, counted, deltas = result.runs, result.verdicts, result.counted, result.deltas
    not_run, passed, value_of, by_value = Outcome.NOT_RUN, Outcome.PASSED, VALUE, BY_VALUE
    owner_of = owners.get if owners is not None else None
    for record in records:
        tid = record.test_id
        state = now_counted.get(tid)
        if state is None:
            result.unknown.append(tid)
            continue
        fenced = owner_of is not None and owner_of(tid) != me
        outcome = record.outcome
        run = TestRun(tid, assignment, attempt, worker, node, value_of[outcome], record.duration_s, record.started_at,
                      fenced)
        key = tid + suffix
        if fenced:
            runs[key] = run
            result.fenced += 1
            continue
        if outcome is not_run:
            # A not_run verdict never overwrites a run (it is written only where none exists):
            # a real result of the same attempt keeps its run whichever arrives first.
            if key not in runs:
                verdicts.setdefault(key, run)
        else:
            runs[key] = run
            if verdicts:
                verdicts.pop(key, None)
        old = None if state == PENDING else by_value.get(state) or Outcome(state)
        if not supersedes(outcome, old):
            continue
        if outcome is passed and tid in rerun:
            # It failed before and passes now.
            record = replace(record, outcome=Outcome.FLAKY, message="failed, then passed when run again")
        value = value_of[record.outcome]
        if old is None:
            result.newly_final += 1
        else:
            deltas[old.value] = deltas.get(old.value, 0) - 1
        deltas[value] = deltas.get(value, 0) + 1
        counted[tid] = record
        now_counted[tid] = value
    return result
