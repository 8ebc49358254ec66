"""The coordinator's store over Redis: suites, attempts, merges, history (the only Redis I/O it does).

Every change that depends on what is stored goes through `transact`: WATCH the keys, read,
let a pure function decide, write in MULTI, retry if a watched key changed meanwhile. So
concurrent coordinator threads (and redelivered messages) apply atomically, and the decisions
(`coordinator.aggregate.merge`, `coordinator.transitions`) are the same as the memory store's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgpack
import redis

from coordinator import transitions
from coordinator.aggregate import PENDING, Merge, TestRun, merge
from coordinator.machine import SuiteView
from farm import keys, registry
from farm.attempts import Attempt
from farm.config import Settings
from farm.errors import ProtocolError, SuiteNotFound
from farm.model import Collection, SuiteSpec, TestRecord, WorkerInfo
from farm.outcomes import FAILURES, Outcome
from farm.protocol import decode, encode
from farm.states import AttemptState, SuiteStatus

#: The owner of outcomes decided at collection (module-level skips, collection errors).
COLLECTION_OWNER = "collection#1"
#: Entries (one per merged batch) the finished-tests stream keeps; a client reading it with -v
#: that falls further behind misses the oldest lines, never the report.
FINISHED_STREAM_LEN = 10_000
#: Outcomes whose one-line message the finished-tests stream carries (pytest -v shows the reason).
WITH_REASON = frozenset({Outcome.SKIPPED, Outcome.XFAILED, Outcome.XPASSED, Outcome.NOT_RUN})

R = TypeVar("R")
T = TypeVar("T")
#: What a decision asks to write, given the transaction's pipeline (None: nothing to write).
Write = Callable[[Any], None] | None


def _pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


def _text(values: Iterable[bytes | None]) -> list[str | None]:
    return [None if v is None else v.decode() for v in values]


def _record_to_plain(r: TestRecord) -> dict[str, Any]:
    return {"test_id": r.test_id, "outcome": r.outcome.value, "duration_s": r.duration_s, "phase": r.phase,
            "message": r.message, "longrepr": r.longrepr, "sections": [list(s) for s in r.sections],
            "started_at": r.started_at, "setup_s": r.setup_s, "call_s": r.call_s, "teardown_s": r.teardown_s,
            "ran_as": r.ran_as}


def _record_from_plain(d: dict[str, Any]) -> TestRecord:
    return TestRecord(d["test_id"], Outcome(d["outcome"]), d["duration_s"], d["phase"], d["message"],
                      d["longrepr"], tuple((n, t) for n, t in d["sections"]), d["started_at"],
                      d.get("setup_s", 0.0), d.get("call_s", 0.0), d.get("teardown_s", 0.0), d.get("ran_as", ""))


class SuiteState:
    """Reads and writes one Redis state store (satisfies `coordinator.store.SuiteStore`)."""

    def __init__(self, store: redis.Redis, settings: Settings) -> None:
        # redis-py types every reply as a union of its sync and async shapes; this class only
        # uses the synchronous client, whose replies are bytes, ints and lists of them.
        self.r: Any = store
        self.settings = settings

    # --- the one read-decide-write primitive ----------------------------------------------

    def transact(self, watch: Sequence[str], read: Callable[[Any], R],
                 decide: Callable[[R], tuple[T, Write]]) -> T:
        """WATCH `watch`, `read` through the pipeline, let `decide` (pure) say what to return and
        what to write; the write happens in MULTI, and all of it again if a watched key changed."""
        with self.r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(*watch)
                    result, write = decide(read(pipe))
                    if write is None:
                        pipe.unwatch()
                        return result
                    pipe.multi()
                    write(pipe)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue

    # --- suites --------------------------------------------------------------------------

    def spec(self, suite_id: str) -> SuiteSpec:
        data = self.r.hget(keys.suite(suite_id), "spec")
        if data is None:
            raise SuiteNotFound(f"no suite {suite_id!r}")
        return decode(data, SuiteSpec)

    def field(self, suite_id: str, name: str) -> str | None:
        value = self.r.hget(keys.suite(suite_id), name)
        return None if value is None else keys.text(value)

    def view(self, suite_id: str) -> SuiteView:
        """The suite's fields the machine decides on, in one read."""
        status, cancel, stop, complete_at, started, published, since = self.r.hmget(
            keys.suite(suite_id), ["status", "cancel", "stop", "complete_at", "collect_started", "collect_published",
                                   "collecting_since"])
        if status is None:
            raise SuiteNotFound(f"no suite {suite_id!r}")
        return SuiteView(SuiteStatus(status.decode()), float(cancel or 0), keys.text(stop or b""),
                         float(complete_at or 0), bool(started), float(published or 0), float(since or 0))

    def set_fields(self, suite_id: str, **fields: Any) -> None:
        self.r.hset(keys.suite(suite_id), mapping=dict(fields))

    def _transition(self, suite_id: str, from_status: SuiteStatus, to_status: SuiteStatus, *,
                    also: Callable[[Any], None] = lambda pipe: None, **fields: Any) -> bool:
        """Move the suite to `to_status` only if it is in `from_status`, setting `fields` and
        whatever `also` adds to the same transaction; True if moved."""
        key = keys.suite(suite_id)

        def decide(status: bytes | None) -> tuple[bool, Write]:
            if status is None or status.decode() != from_status:
                return False, None

            def write(pipe: Any) -> None:
                pipe.hset(key, mapping={"status": to_status.value, **fields})
                also(pipe)
            return True, write

        return self.transact([key], lambda pipe: pipe.hget(key, "status"), decide)

    def start_collecting(self, suite_id: str, now: float) -> bool:
        """submitted → collecting, and active (the sweep watches it) in the same transaction;
        True if moved. Either way the suite is no longer waiting to be taken up."""
        def also(pipe: Any) -> None:
            pipe.sadd(keys.ACTIVE, suite_id)
            pipe.zrem(keys.SUBMITTED, suite_id)

        moved = self._transition(suite_id, SuiteStatus.SUBMITTED, SuiteStatus.COLLECTING, also=also,
                                 collecting_since=now)
        if not moved:
            self.forget_submitted(suite_id)
        return moved

    def forget_submitted(self, suite_id: str) -> None:
        self.r.zrem(keys.SUBMITTED, suite_id)

    def submitted_before(self, before: float) -> list[str]:
        """Suites submitted before `before` that no coordinator has taken up yet."""
        return [keys.text(s) for s in self.r.zrangebyscore(keys.SUBMITTED, 0, before)]

    def request_cancel(self, suite_id: str, now: float) -> None:
        """Flag the suite canceled (workers check the flag); the first request's time is kept."""
        self.r.hsetnx(keys.suite(suite_id), "cancel", now)

    def request_stop(self, suite_id: str, reason: str) -> bool:
        """Flag the suite stopped (-x/--maxfail reached; workers check the flag); True the first time."""
        return bool(self.r.hsetnx(keys.suite(suite_id), "stop", reason))

    def canceled(self, suite_id: str) -> bool:
        return self.r.hget(keys.suite(suite_id), "cancel") is not None

    def stop_reason(self, suite_id: str) -> str:
        """Why the suite stopped running tests, or "" while it runs on."""
        return self.field(suite_id, "stop") or ""

    def maxfail(self, suite_id: str) -> int:
        """The suite's effective -x/--maxfail, as planned (0: no limit)."""
        return int(self.field(suite_id, "maxfail") or 0)

    def active_suites(self) -> list[str]:
        return [s.decode() for s in self.r.smembers(keys.ACTIVE)]

    # --- planning ------------------------------------------------------------------------

    def plan(self, collection: Collection, test_ids: list[str], attempts: list[Attempt], *, now: float,
             maxfail: int = 0) -> bool:
        """Record the collection, the planned attempts and the suite's effective --maxfail (0:
        none); False if the suite moved on already."""
        sid = collection.suite_id
        runnable = set(test_ids)
        decided_ids = [d.test_id for d in collection.decided if d.test_id not in runnable]
        all_ids = test_ids + decided_ids

        def also(pipe: Any) -> None:
            for chunk in _chunks(all_ids, 5000):
                pipe.hset(keys.outcomes(sid), mapping={t: PENDING for t in chunk})
            for a in attempts:
                pipe.hset(keys.assignments(sid), a.key, a.pack())
                pipe.hset(keys.current(sid), a.assignment_id, a.number)
                for chunk in _chunks(list(a.test_ids), 5000):
                    pipe.hset(keys.owners(sid), mapping={t: a.key for t in chunk})
            if decided_ids:
                pipe.hset(keys.owners(sid), mapping={t: COLLECTION_OWNER for t in decided_ids})
            for key in keys.suite_keys(sid):  # nothing lives forever, finished or not
                pipe.expire(key, self.settings.suite_ttl_s)

        return self._transition(sid, SuiteStatus.COLLECTING, SuiteStatus.RUNNING, also=also,
                                collection=encode(collection), order=_pack(all_ids), total=len(all_ids), done=0,
                                started_at=now, maxfail=maxfail)

    def total_and_done(self, suite_id: str) -> tuple[int, int]:
        total, done = self.r.hmget(keys.suite(suite_id), ["total", "done"])
        return int(total or 0), int(done or 0)

    # --- merging -------------------------------------------------------------------------

    def merge(self, suite_id: str, records: list[TestRecord], *, assignment: str, attempt: int, worker: str,
              node: str, fence: bool = True) -> Merge:
        """Merge records into the suite atomically; returns what changed."""
        okey, wkey = keys.outcomes(suite_id), keys.owners(suite_id)
        ids = list(dict.fromkeys(r.test_id for r in records))

        def read(pipe: Any) -> tuple[list[str | None], list[str | None], list[bytes | None]]:
            if not ids:
                return [], [], []
            return (_text(pipe.hmget(okey, ids)), _text(pipe.hmget(wkey, ids)),
                    pipe.hmget(keys.reruns(suite_id), ids))

        def decide(seen: tuple[list[str | None], list[str | None], list[bytes | None]]) -> tuple[Merge, Write]:
            values, owned, reruns = seen
            owners = {t: o for t, o in zip(ids, owned, strict=True) if o is not None}
            result = merge(dict(zip(ids, values, strict=True)), records, assignment=assignment, attempt=attempt,
                           worker=worker, node=node, owners=owners if fence else None,
                           rerun={t for t, n in zip(ids, reruns, strict=True) if n is not None})
            return result, lambda pipe: self._write_merge(pipe, suite_id, result, worker)

        return self.transact([okey, wkey], read, decide)

    def _write_merge(self, pipe: Any, suite_id: str, result: Merge, worker: str) -> None:
        if result.counted:
            pipe.hset(keys.outcomes(suite_id), mapping={t: r.outcome.value for t, r in result.counted.items()})
            pipe.hset(keys.records(suite_id),
                      mapping={t: _pack(_record_to_plain(r)) for t, r in result.counted.items()})
        if result.runs:
            pipe.hset(keys.attempts(suite_id), mapping={k: _pack(vars(run)) for k, run in result.runs.items()})
        for k, run in result.verdicts.items():
            pipe.hsetnx(keys.attempts(suite_id), k, _pack(vars(run)))
        for outcome, delta in result.deltas.items():
            if delta:
                pipe.hincrby(keys.counts(suite_id), outcome, delta)
        if result.newly_final:
            pipe.hincrby(keys.suite(suite_id), "done", result.newly_final)
        if result.counted:
            finished = [[t, r.outcome.value, r.message if r.outcome in WITH_REASON else ""]
                        for t, r in result.counted.items()]
            pipe.xadd(keys.finished(suite_id), {"w": worker, "r": _pack(finished)},
                      maxlen=FINISHED_STREAM_LEN, approximate=True)
        for key in (keys.records(suite_id), keys.attempts(suite_id), keys.counts(suite_id), keys.finished(suite_id)):
            pipe.expire(key, self.settings.suite_ttl_s)

    def pending_in(self, suite_id: str, test_ids: Sequence[str], owner: str | None = None) -> list[str]:
        """The tests among `test_ids` without an outcome (and owned by `owner`, if given)."""
        if not test_ids:
            return []
        values = self.r.hmget(keys.outcomes(suite_id), list(test_ids))
        pending = [t for t, v in zip(test_ids, values, strict=True) if v == PENDING.encode()]
        if owner is None or not pending:
            return pending
        owned = self.r.hmget(keys.owners(suite_id), pending)
        return [t for t, o in zip(pending, owned, strict=True) if o is not None and o.decode() == owner]

    def all_pending(self, suite_id: str) -> list[str]:
        return [k.decode() for k, v in self.r.hscan_iter(keys.outcomes(suite_id)) if v == PENDING.encode()]

    # --- attempts ------------------------------------------------------------------------

    def attempt(self, suite_id: str, assignment_id: str, number: int) -> Attempt | None:
        data = self.r.hget(keys.assignments(suite_id), keys.attempt_key(assignment_id, number))
        return None if data is None else Attempt.unpack(data)

    def attempts(self, suite_id: str) -> list[Attempt]:
        """Every attempt of the suite's assignments, by assignment and number."""
        found = [Attempt.unpack(v) for v in self.r.hvals(keys.assignments(suite_id))]
        return sorted(found, key=lambda a: (a.assignment_id, a.number))

    def change_attempt(self, suite_id: str, assignment_id: str, number: int,
                       change: Callable[[Attempt], Attempt]) -> Attempt | None:
        """Apply `change` (pure, e.g. from `coordinator.transitions`) to one attempt atomically;
        returns it changed (None if there is no such attempt)."""
        akey, name = keys.assignments(suite_id), keys.attempt_key(assignment_id, number)

        def decide(data: bytes | None) -> tuple[Attempt | None, Write]:
            if data is None:
                return None, None
            new = change(Attempt.unpack(data))
            return new, lambda pipe: pipe.hset(akey, name, new.pack())

        return self.transact([akey], lambda pipe: pipe.hget(akey, name), decide)

    def requeue(self, suite_id: str, old: Attempt, why: str, *, now: float, state: AttemptState = AttemptState.LOST,
                avoid: str = "") -> list[str]:
        """Give up on an attempt: its tests without an outcome move to the next attempt (queued).

        The old attempt takes `state` (lost: its worker stopped renewing the lease; handback: it
        stopped early and handed its tests back). Atomic with merges (same WATCHed keys): a
        record of the old attempt is either counted before this, and its test stays put, or
        fenced after it. Happens once per attempt. Returns the moved tests.
        """
        okey, wkey, akey = keys.outcomes(suite_id), keys.owners(suite_id), keys.assignments(suite_id)
        tests = list(old.test_ids)

        def read(pipe: Any) -> tuple[list[str | None], list[str | None], bytes | None]:
            if not tests:
                return [], [], pipe.hget(akey, old.key)
            return _text(pipe.hmget(okey, tests)), _text(pipe.hmget(wkey, tests)), pipe.hget(akey, old.key)

        def decide(seen: tuple[list[str | None], list[str | None], bytes | None]) -> tuple[list[str], Write]:
            values, owned, data = seen
            if data is None:
                return [], None
            change = transitions.requeue(Attempt.unpack(data), dict(zip(tests, values, strict=True)),
                                         dict(zip(tests, owned, strict=True)), state=state, why=why, avoid=avoid,
                                         now=now)
            if change is None:
                return [], None
            ended, new = change

            def write(pipe: Any) -> None:
                pipe.hset(akey, ended.key, ended.pack())
                if new is not None:
                    pipe.hset(akey, new.key, new.pack())
                    pipe.hset(wkey, mapping={t: new.key for t in new.test_ids})
                    pipe.hset(keys.current(suite_id), new.assignment_id, new.number)
            return (list(new.test_ids) if new else []), write

        return self.transact([okey, wkey, akey], read, decide)

    def failing_for_rerun(self, suite_id: str, limit: int) -> list[str]:
        """Tests whose outcome fails the suite and that were run again fewer than `limit` times.

        Crashed tests are not among them: they get their one retry elsewhere (crashed_for_retry)."""
        failing = {o.value.encode() for o in FAILURES if o is not Outcome.CRASHED}
        done = {k.decode(): int(v) for k, v in self.r.hgetall(keys.reruns(suite_id)).items()}
        return [k.decode() for k, v in self.r.hscan_iter(keys.outcomes(suite_id), count=5000)
                if v in failing and done.get(k.decode(), 0) < limit]

    def crashed_for_retry(self, suite_id: str) -> list[str]:
        """Crashed tests not yet run again after their crash."""
        done = {k.decode() for k in self.r.hkeys(keys.crash_retries(suite_id))}
        crashed = Outcome.CRASHED.value.encode()
        return [k.decode() for k, v in self.r.hscan_iter(keys.outcomes(suite_id), count=5000)
                if v == crashed and k.decode() not in done]

    def start_rerun(self, suite_id: str, new: Attempt, *, crash_retry: bool = False) -> list[str]:
        """Hand failing tests to a new (rerun) attempt: their outcomes go back to pending.

        Counted in `reruns` (a pass then is flaky), or with `crash_retry` in `crash_retries` (a
        pass then is a pass: the crash was the worker's). Atomic with merges; a test that no
        longer fails, or moved already, is left alone. Returns the tests moved.
        """
        counter = keys.crash_retries(suite_id) if crash_retry else keys.reruns(suite_id)
        okey, wkey = keys.outcomes(suite_id), keys.owners(suite_id)
        failing = {o.value for o in FAILURES}
        tests = list(new.test_ids)

        def decide(values: list[str | None]) -> tuple[list[str], Write]:
            moving = [(t, v) for t, v in zip(tests, values, strict=True) if v in failing]
            if not moving:
                return [], None
            names = [t for t, _ in moving]

            def write(pipe: Any) -> None:
                pipe.hset(okey, mapping={t: PENDING for t in names})
                pipe.hset(wkey, mapping={t: new.key for t in names})
                for t, outcome in moving:
                    pipe.hincrby(keys.counts(suite_id), outcome, -1)
                    pipe.hincrby(counter, t, 1)
                pipe.hincrby(keys.suite(suite_id), "done", -len(names))
                pipe.hset(keys.assignments(suite_id), new.key, new.but(test_ids=tuple(names)).pack())
                pipe.hset(keys.current(suite_id), new.assignment_id, new.number)
                pipe.hdel(keys.suite(suite_id), "complete_at")
            return names, write

        return self.transact([okey, wkey], lambda pipe: _text(pipe.hmget(okey, tests)) if tests else [], decide)

    def mark_ended(self, suite_id: str, assignment_id: str, number: int) -> None:
        """Workers drop any further delivery of an attempt that ended ("N!" in the current map).

        Only while N is still the current attempt: a newer attempt's mark is never overwritten."""
        ckey = keys.current(suite_id)

        def decide(current: bytes | None) -> tuple[None, Write]:
            if current != str(number).encode():
                return None, None
            return None, lambda pipe: pipe.hset(ckey, assignment_id, f"{number}!")

        self.transact([ckey], lambda pipe: pipe.hget(ckey, assignment_id), decide)

    def lease_alive(self, suite_id: str, name: str) -> bool:
        """Whether a worker holds the lease `name` (an attempt's key, or "collect")."""
        return bool(self.r.exists(keys.lease(suite_id, name)))

    def lease_holders(self, suite_id: str, attempts: Sequence[Attempt]) -> dict[str, str]:
        """Attempt key → the worker holding its lease, for those of `attempts` whose lease is
        held, in one round trip."""
        names = [a.key for a in attempts]
        values = self.r.mget([keys.lease(suite_id, n) for n in names]) if names else []
        return {n: keys.text(v) for n, v in zip(names, values, strict=True) if v is not None}

    def collection_retry(self, suite_id: str) -> int:
        """Count a lost collection and clear its start mark; returns how many were lost."""
        with self.r.pipeline() as pipe:
            pipe.hincrby(keys.suite(suite_id), "collect_lost", 1)
            pipe.hdel(keys.suite(suite_id), "collect_started")
            lost, _ = pipe.execute()
        return int(lost)

    # --- reading for the report ----------------------------------------------------------

    def collection(self, suite_id: str) -> Collection | None:
        data = self.r.hget(keys.suite(suite_id), "collection")
        if data is None:
            return None
        try:
            return decode(data, Collection)
        except ProtocolError:
            return None

    def order(self, suite_id: str) -> list[str]:
        data = self.r.hget(keys.suite(suite_id), "order")
        return [] if data is None else list(_unpack(data))

    def counted(self, suite_id: str) -> dict[str, TestRecord]:
        return {k.decode(): _record_from_plain(_unpack(v))
                for k, v in self.r.hscan_iter(keys.records(suite_id), count=1000)}

    def test_runs(self, suite_id: str) -> list[TestRun]:
        """Every test's run in every attempt (the `attempts` hash)."""
        return [TestRun(**_unpack(v)) for _, v in self.r.hscan_iter(keys.attempts(suite_id), count=1000)]

    def counts(self, suite_id: str) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.r.hgetall(keys.counts(suite_id)).items()}

    def workers(self) -> list[WorkerInfo]:
        return registry.all_workers(self.r)

    def pool_slots(self, pool: str) -> int:
        """The slots of the pool's live workers (a killed worker's stop counting)."""
        return sum(w.slots for w in registry.alive(self.r, self.settings.worker_stale_s, pool))

    # --- finishing -----------------------------------------------------------------------

    def note_complete(self, suite_id: str, now: float) -> None:
        """Remember when every test first had an outcome (the grace for completions starts then)."""
        self.r.hsetnx(keys.suite(suite_id), "complete_at", now)

    def last_workers(self, suite_id: str, test_ids: list[str]) -> dict[str, str]:
        """Test id → the worker whose record for it counts now (where it last ran), where known."""
        owned = self.r.hmget(keys.owners(suite_id), test_ids) if test_ids else []
        names = []
        for test_id, owner in zip(test_ids, owned, strict=True):
            if owner is not None:
                assignment, _, attempt = keys.text(owner).rpartition("#")
                names.append(f"{test_id}\0{assignment}\0{attempt}")
        runs = [_unpack(r) for r in (self.r.hmget(keys.attempts(suite_id), names) if names else []) if r is not None]
        return {run["test_id"]: run["worker"] for run in runs if run.get("worker")}

    def release_finish_claim(self, suite_id: str) -> None:
        """Undo a claim to finish (its holder moved on, or died before it stored the report)."""
        self.r.hdel(keys.suite(suite_id), "finalized")

    def claim_finish(self, suite_id: str) -> bool:
        """True for exactly one caller: the one that finishes the suite."""
        return bool(self.r.hsetnx(keys.suite(suite_id), "finalized", 1))

    def store_report(self, suite_id: str, report_json: str, **fields: Any) -> None:
        ttl = self.settings.suite_ttl_s
        with self.r.pipeline() as pipe:
            pipe.set(keys.report(suite_id), report_json)
            pipe.hset(keys.suite(suite_id), mapping=fields)
            pipe.srem(keys.ACTIVE, suite_id)
            pipe.zrem(keys.SUBMITTED, suite_id)
            for key in keys.suite_keys(suite_id):
                pipe.expire(key, ttl)
            pipe.execute()

    def durations(self, project: str) -> dict[str, float]:
        return {k.decode(): float(v) for k, v in self.r.hscan_iter(keys.history(project), count=5000)}

    def record_durations(self, project: str, durations: dict[str, float]) -> None:
        if not durations:
            return
        key = keys.history(project)
        with self.r.pipeline() as pipe:
            for chunk in _chunks(list(durations.items()), 5000):
                pipe.hset(key, mapping={k: repr(round(v, 6)) for k, v in chunk})
            pipe.expire(key, self.settings.history_ttl_s)
            pipe.execute()


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
