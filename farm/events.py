"""A suite's event log: its typed events, their msgpack form (versioned), and the one XADD that appends one.

The stores append an event in the same transaction as the change it describes (coordinator/state.py,
coordinator/memory_store.py), so the log never disagrees with the state; `farm.report.rebuild` folds
a log back into the suite's report. docs/how-it-works.md ("The event log") lists what each kind carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from itertools import repeat
from typing import Any

import msgpack

from farm import keys
from farm.attempts import Attempt
from farm.errors import ProtocolError
from farm.model import Collection, SuiteSpec, TestRecord, TestRun, WorkerInfo, record_to_plain
from farm.outcomes import VALUE, Outcome
from farm.protocol import decode, encode
from farm.states import AttemptState
from farm.stored import record_row, run_row

#: The version of the stored form; a reader refuses a newer one (one line, never a traceback).
#: 2: `records` events carry compact rows (`c`) and name the runs derivable from them (`derived`);
#: version 1's events still read.
#: 3: `collected` carries the plan's ids once, in `order`: the collection without its test ids
#: (`collected`: they are the first that many of `order`) and each attempt's tests as indexes into
#: `order` (`tests`); versions 1 and 2 still read (`collected_data` reads every form).
VERSION = 3
#: The log keeps at most EVENTS_BASE + EVENTS_PER_TEST × (the suite's tests) entries (the oldest go first).
EVENTS_BASE = 1000
EVENTS_PER_TEST = 10


class Kind(StrEnum):
    """What happened (an event's `kind`)."""

    SUBMITTED = "submitted"  # the client stored the suite (data: its spec)
    COLLECTED = "collected"  # the collection came back and the suite was planned (data: collection, order, attempts)
    PUBLISHED = "published"  # an attempt was sent to its pool's queue (again, after a lost message)
    CLAIMED = "claimed"  # a worker holds an attempt's lease, no record came yet
    STARTED = "started"  # an attempt's first records came (its worker and node are known)
    RECORDS = "records"  # a batch merged (data: the records that count now, the test runs written)
    FENCED = "fenced"  # records of an attempt that no longer owned their tests (data: how many)
    ENDED = "ended"  # an attempt ended (its completion came, or it was given up on)
    LEASE_LOST = "lease-lost"  # its worker stopped renewing the lease (of an attempt, or "collect")
    HANDED_BACK = "handed-back"  # it stopped early and handed its unfinished tests back
    REQUEUED = "requeued"  # the next attempt, with the tests that moved to it
    RERUN = "rerun"  # failing tests moved to a new attempt (--rerun-failures)
    CRASH_RETRY = "crash-retry"  # crashed tests moved to a new attempt on another worker
    SPLIT = "split"  # a running attempt gave its unstarted tail to a new assignment (run-time balancing)
    DEADLINE = "deadline"  # the suite deadline passed: what had not run did not run
    CANCEL = "cancel"  # `farm cancel` was asked (or what had not run was marked not run after it)
    STAGE = "stage"  # a stage after the first started: one per attempt planned for it (data: attempt)
    GATE = "gate"  # a quality gate decided (reserved: nothing emits it yet)
    FINISHED = "finished"  # the report was stored (data: status, exit code, message, times, workers)


@dataclass(frozen=True)
class Event:
    """One entry of a suite's log: when, what, which attempt, where, a short detail, and the data
    the report is rebuilt from (plain msgpack-able values, per kind)."""

    kind: Kind
    at: float
    assignment: str = ""  # "" for the suite's own events
    attempt: int = 0
    worker: str = ""
    node: str = ""
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


def pack(e: Event) -> bytes:
    body = {"v": VERSION, "k": e.kind.value, "t": e.at, "a": e.assignment, "n": e.attempt, "w": e.worker,
            "o": e.node, "d": e.detail, "x": dict(e.data)}
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return data


def unpack(data: bytes) -> Event:
    """An event from its stored form; ProtocolError if it is not one (or of a newer farm)."""
    try:
        d = msgpack.unpackb(data, raw=False)
        if int(d["v"]) > VERSION:
            raise ProtocolError(f"an event of version {d['v']} (this farm reads up to {VERSION}): upgrade farm")
        return Event(Kind(d["k"]), float(d["t"]), str(d["a"]), int(d["n"]), str(d["w"]), str(d["o"]), str(d["d"]),
                     dict(d["x"]))
    except ProtocolError:
        raise
    except (ValueError, KeyError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolError(f"not a farm event: {exc}") from None


def cap(tests: int) -> int:
    """The most entries a suite of `tests` tests keeps in its log."""
    return EVENTS_BASE + EVENTS_PER_TEST * max(0, tests)


def append(pipe: Any, suite_id: str, event: Event, *, tests: int, ttl_s: float) -> None:
    """Queue the event's XADD (bounded by `cap(tests)`, trimmed exactly) and the log's expiry on a
    Redis pipeline: inside the transaction whose change it describes."""
    pipe.xadd(keys.events(suite_id), {"e": pack(event)}, maxlen=cap(tests), approximate=False)
    pipe.expire(keys.events(suite_id), int(ttl_s))


# --- the events, built the same way by every store ---------------------------------------

def _attempt_data(a: Attempt, *, with_tests: bool) -> dict[str, Any]:
    """An attempt's stored form without what the report never shows (its waiting completion;
    its tests unless it is new: they never change)."""
    d = a.to_stored()
    d.pop("held_completion", None)
    d.pop("held_since", None)
    if not with_tests:
        d.pop("test_ids")
    return d


def of_attempt(kind: Kind, a: Attempt, at: float, detail: str = "", *, with_tests: bool = False) -> Event:
    return Event(kind, at, a.assignment_id, a.number, a.worker, a.node, detail[:200],
                 {"attempt": _attempt_data(a, with_tests=with_tests)})


def submitted(spec: SuiteSpec) -> Event:
    return Event(Kind.SUBMITTED, spec.submitted_at, detail=f"pool {spec.pool}, {spec.dist}",
                 data={"spec": encode(spec)})


def collected(collection: Collection, order: Sequence[str], attempts: Sequence[Attempt], at: float) -> Event:
    """The suite planned: its collection, its order, its first attempts. The ids are carried once
    (in `order`): the collection's are the first `collected` of them, and each attempt's tests are
    indexes into it (`tests`), so a million tests cost one list of ids and a million small ints."""
    order = list(order)
    n = len(collection.test_ids)
    data: dict[str, Any] = {"order": order}
    if order[:n] == list(collection.test_ids):
        data["collection"], data["collected"] = encode(replace(collection, test_ids=())), n
    else:  # not this store's order (never, as planned): the collection whole
        data["collection"] = encode(collection)
    index = dict(zip(order, range(len(order)), strict=True))
    rows: list[dict[str, Any]] = []
    tests: list[list[int] | None] = []
    for a in attempts:
        try:
            tests.append(list(map(index.__getitem__, a.test_ids)))
            rows.append(_attempt_data(a, with_tests=False))
        except KeyError:  # a test outside the order (never, as planned): its ids themselves
            tests.append(None)
            rows.append(_attempt_data(a, with_tests=True))
    data["attempts"], data["tests"] = rows, tests
    return Event(Kind.COLLECTED, at, worker=collection.worker,
                 detail=f"{len(order)} tests in {len(attempts)} assignments", data=data)


def collected_data(data: Mapping[str, Any]) -> tuple[Collection, list[str], list[Attempt]]:
    """A `collected` event's collection, order and attempts, of any version (`collected`)."""
    order = list(data["order"])
    collection = decode(data["collection"], Collection)
    if "collected" in data:
        collection = replace(collection, test_ids=tuple(order[:int(data["collected"])]))
    tests = data.get("tests") or repeat(None)
    attempts = []
    for row, indexes in zip(data["attempts"], tests, strict=False):
        if indexes is not None:
            row = {**row, "test_ids": list(map(order.__getitem__, indexes))}
        attempts.append(Attempt.from_stored(row))
    return collection, order, attempts


def changed(old: Attempt, new: Attempt, at: float) -> Event | None:
    """The event of an attempt's change, or None if nothing the log shows changed."""
    if old.but(received=0, waiting_completion=None, waiting_since=0.0) == \
            new.but(received=0, waiting_completion=None, waiting_since=0.0):
        return None  # records counted, a completion waiting: the records' own events say so
    if new.published_at != old.published_at and new.published_at:
        return of_attempt(Kind.PUBLISHED, new, at, "again" if old.published_at else "")
    if new.state == AttemptState.RUNNING and (old.state == AttemptState.QUEUED or new.node != old.node):
        return of_attempt(Kind.STARTED if new.node else Kind.CLAIMED, new, at)
    if new.ended:
        return of_attempt(Kind.ENDED, new, at, f"{new.state.value}: {new.message}" if new.message else new.state.value)
    return of_attempt(Kind.CLAIMED, new, at)


def given_up_on(ended: Attempt, new: Attempt | None, at: float) -> list[Event]:
    """An attempt requeued: it was lost or handed back, and its unfinished tests moved to `new`."""
    kind = Kind.LEASE_LOST if ended.state == AttemptState.LOST else Kind.HANDED_BACK
    out = [of_attempt(kind, ended, at, ended.message.splitlines()[0] if ended.message else "")]
    if new is not None:
        out.append(of_attempt(Kind.REQUEUED, new, at, f"{len(new.test_ids)} tests", with_tests=True))
    return out


def run_again(new: Attempt, at: float, *, crash_retry: bool) -> Event:
    kind = Kind.CRASH_RETRY if crash_retry else Kind.RERUN
    return of_attempt(kind, new, at, f"{len(new.test_ids)} tests", with_tests=True)


def stage_started(stage: int, attempts: Sequence[Attempt], at: float) -> list[Event]:
    """A staged suite's next stage (its index) started with these first attempts."""
    return [of_attempt(Kind.STAGE, a, at, f"stage {stage}: {len(a.test_ids)} tests", with_tests=True)
            for a in attempts]


def split(head: Attempt, tail: Attempt, at: float) -> list[Event]:
    """A running attempt split: `head` keeps its tests but the tail, which `tail` (a new assignment) runs."""
    return [of_attempt(Kind.SPLIT, head, at, f"gave {len(tail.test_ids)} unstarted tests to {tail.assignment_id}",
                       with_tests=True),
            of_attempt(Kind.SPLIT, tail, at, f"{len(tail.test_ids)} tests from {head.key}", with_tests=True)]


def merged(counted: Mapping[str, TestRecord], runs: Mapping[str, TestRun], verdicts: Mapping[str, TestRun], *,
           assignment: str, attempt: int, worker: str, node: str, at: float, kind: Kind = Kind.RECORDS,
           fenced: int = 0, rows: Sequence[list[Any]] | None = None) -> list[Event]:
    """A merged batch: what it wrote (nothing if it changed nothing and is a plain batch), then the
    fenced records, if any.

    Its data, in the compact form (`farm.stored`): `c`, the records that count now as arrays;
    `derived`, the indexes into `c` of the records whose test run is the one `farm.stored.run_of`
    makes of them with this event's attempt (a plain batch: all of them), written as the store
    wrote it and not carried again; `runs`, the other test runs written; `verdicts`, the not-run
    runs written only if absent (both as arrays). Logs of older farms carry `counted` (maps) and
    every run in `runs`: `farm.report.rebuild` reads both. `rows`, if given, are `counted`'s
    records as `record_row` makes them (a store that made them already for its own write)."""
    out = []
    if counted or runs or verdicts or kind != Kind.RECORDS:
        outcomes: dict[str, int] = {}
        derived = []
        explicit = dict(runs)
        passed, flaky = Outcome.PASSED.value, Outcome.FLAKY
        for i, r in enumerate(counted.values()):
            value = VALUE[r.outcome]
            outcomes[value] = outcomes.get(value, 0) + 1
            key = f"{r.test_id}\0{assignment}\0{attempt}"
            run = explicit.get(key)
            # `run == run_of(r, ...)`, field by field as a dataclass compares, without making it.
            if run is not None and (run.test_id, run.assignment, run.attempt, run.worker, run.node, run.outcome,
                                    run.duration_s, run.started_at, run.fenced) == (
                    r.test_id, assignment, attempt, worker, node, passed if r.outcome is flaky else value,
                    r.duration_s, r.started_at, False):
                del explicit[key]
                derived.append(i)
        detail = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "nothing new"
        out.append(Event(kind, at, assignment, attempt, worker, node, detail, {
            "c": [record_row(r) for r in counted.values()] if rows is None else list(rows), "derived": derived,
            "runs": [run_row(r) for r in explicit.values()],
            "verdicts": [run_row(r) for r in verdicts.values()]}))
    if fenced:
        out.append(Event(Kind.FENCED, at, assignment, attempt, worker, node, f"{fenced} records",
                         {"fenced": fenced}))
    return out


def finished(*, status: str, exit_code: int, message: str, started_at: float, finished_at: float, stopped: str,
             workers: Iterable[WorkerInfo], decided: Sequence[TestRecord] = (),
             collection: Collection | None = None, gates: Sequence[Mapping[str, Any]] = (),
             quarantine: Mapping[str, str] | None = None, quarantine_unknown: Sequence[str] = (),
             stages: Sequence[Mapping[str, Any]] = ()) -> Event:
    """The suite finished: what its report says beyond its other events (the workers as the
    registry knew them, the outcomes decided at collection of a suite never planned, its gates'
    verdicts and its quarantine, each only when it has one)."""
    data: dict[str, Any] = {
        "status": status, "exit_code": exit_code, "message": message, "started_at": started_at,
        "finished_at": finished_at, "stopped": stopped,
        "workers": [[w.name, w.host, w.slots] for w in workers],
        "decided": [record_to_plain(r) for r in decided]}
    if collection is not None:
        data["collection"] = encode(collection)
    if gates:
        data["gates"] = [dict(v) for v in gates]
    if quarantine:
        data["quarantine"] = [[t, why] for t, why in quarantine.items()]
    if quarantine_unknown:
        data["quarantine_unknown"] = list(quarantine_unknown)
    if stages:  # a staged suite's stages as its report shows them (farm.stages.row)
        data["stages"] = [dict(row) for row in stages]
    detail = f"{status}, exit code {exit_code}" + (f": {message}" if message else "")
    return Event(Kind.FINISHED, finished_at, detail=detail[:200], data=data)
