"""The coordinator's view of the state store: suites, assignments, merges, history (Redis I/O).

Every change to a suite's counted outcomes happens in a WATCH/MULTI transaction over the
suite's outcome hash, so concurrent merges (several coordinator threads, redelivered batches)
apply atomically and the pure merge in `coordinator.aggregate` decides what changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import msgpack
import redis

from coordinator.aggregate import PENDING, AttemptRow, Merge, merge
from farm import keys, registry
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
_WITH_REASON = {Outcome.SKIPPED, Outcome.XFAILED, Outcome.XPASSED, Outcome.NOT_RUN}


def _pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


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
    """Reads and writes one state store."""

    def __init__(self, store: redis.Redis, settings: Settings) -> None:
        # redis-py types every reply as a union of its sync and async shapes; this class only
        # uses the synchronous client, whose replies are bytes, ints and lists of them.
        self.r: Any = store
        self.settings = settings

    # --- suites --------------------------------------------------------------------------

    def spec(self, suite_id: str) -> SuiteSpec:
        data = self.r.hget(keys.suite(suite_id), "spec")
        if data is None:
            raise SuiteNotFound(f"no suite {suite_id!r}")
        return decode(data, SuiteSpec)

    def field(self, suite_id: str, name: str) -> str | None:
        value = self.r.hget(keys.suite(suite_id), name)
        return None if value is None else keys.text(value)

    def set_fields(self, suite_id: str, **fields: Any) -> None:
        self.r.hset(keys.suite(suite_id), mapping={k: v for k, v in fields.items()})

    def transition(self, suite_id: str, from_status: Iterable[str], to_status: str, *,
                   also: Callable[[Any], None] = lambda pipe: None, **fields: Any) -> bool:
        """Move the suite to `to_status` only if it is in one of `from_status`, setting `fields`
        and whatever `also` adds to the same transaction; True if moved."""
        key = keys.suite(suite_id)
        allowed = set(from_status)
        with self.r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    status = pipe.hget(key, "status")
                    if status is None or status.decode() not in allowed:
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    pipe.hset(key, mapping={"status": to_status, **fields})
                    also(pipe)
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    def start_collecting(self, suite_id: str) -> bool:
        """submitted → collecting, and active (the sweeper watches it) in the same transaction;
        True if moved. Either way the suite is no longer waiting to be taken up."""
        def also(pipe: Any) -> None:
            pipe.sadd(keys.ACTIVE, suite_id)
            pipe.zrem(keys.SUBMITTED, suite_id)

        moved = self.transition(suite_id, [SuiteStatus.SUBMITTED], SuiteStatus.COLLECTING, also=also,
                                collecting_since=time.time())
        if not moved:
            self.forget_submitted(suite_id)
        return moved

    def forget_submitted(self, suite_id: str) -> None:
        self.r.zrem(keys.SUBMITTED, suite_id)

    def submitted_before(self, before: float) -> list[str]:
        """Suites submitted before `before` that no coordinator has taken up yet."""
        return [keys.text(s) for s in self.r.zrangebyscore(keys.SUBMITTED, 0, before)]

    def request_cancel(self, suite_id: str) -> None:
        """Flag the suite canceled (workers check the flag); the first request's time is kept."""
        self.r.hsetnx(keys.suite(suite_id), "cancel", time.time())

    def canceled(self, suite_id: str) -> bool:
        return self.r.hget(keys.suite(suite_id), "cancel") is not None

    def request_stop(self, suite_id: str, reason: str) -> bool:
        """Flag the suite stopped (-x/--maxfail reached; workers check the flag); True the first time."""
        return bool(self.r.hsetnx(keys.suite(suite_id), "stop", reason))

    def stop_reason(self, suite_id: str) -> str:
        """Why the suite stopped running tests, or "" while it runs on."""
        return self.field(suite_id, "stop") or ""

    def maxfail(self, suite_id: str) -> int:
        """The suite's effective -x/--maxfail, as planned (0: no limit)."""
        return int(self.field(suite_id, "maxfail") or 0)

    def active_suites(self) -> list[str]:
        return [s.decode() for s in self.r.smembers(keys.ACTIVE)]

    # --- planning ------------------------------------------------------------------------

    def plan(self, collection: Collection, test_ids: list[str], assignments: list[dict[str, Any]], *,
             maxfail: int = 0) -> bool:
        """Record the collection, the planned assignments and the suite's effective --maxfail (0:
        none); False if the suite moved on already."""
        sid = collection.suite_id
        runnable = set(test_ids)
        decided_ids = [d.test_id for d in collection.decided if d.test_id not in runnable]
        all_ids = test_ids + decided_ids
        def also(pipe: Any) -> None:
            for chunk in _chunks(all_ids, 5000):
                pipe.hset(keys.outcomes(sid), mapping={t: PENDING for t in chunk})
            for a in assignments:
                akey = keys.attempt_key(a["id"], a["attempt"])
                pipe.hset(keys.assignments(sid), akey, _pack(a))
                pipe.hset(keys.current(sid), a["id"], a["attempt"])
                for chunk in _chunks(list(a["test_ids"]), 5000):
                    pipe.hset(keys.owners(sid), mapping={t: akey for t in chunk})
            if decided_ids:
                pipe.hset(keys.owners(sid), mapping={t: COLLECTION_OWNER for t in decided_ids})
            for key in keys.suite_keys(sid):  # nothing lives forever, finished or not
                pipe.expire(key, self.settings.suite_ttl_s)

        return self.transition(sid, [SuiteStatus.COLLECTING], SuiteStatus.RUNNING, also=also,
                               collection=encode(collection),
                               order=_pack(all_ids), total=len(all_ids), done=0, started_at=time.time(),
                               maxfail=maxfail)

    def total_and_done(self, suite_id: str) -> tuple[int, int]:
        total, done = self.r.hmget(keys.suite(suite_id), ["total", "done"])
        return int(total or 0), int(done or 0)

    # --- merging -------------------------------------------------------------------------

    def merge(self, suite_id: str, records: list[TestRecord], *, assignment: str, attempt: int, worker: str,
              node: str, fence: bool = True) -> Merge:
        """Merge records into the suite atomically; returns what changed."""
        okey, wkey = keys.outcomes(suite_id), keys.owners(suite_id)
        ids = list(dict.fromkeys(r.test_id for r in records))
        with self.r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(okey, wkey)
                    values = pipe.hmget(okey, ids) if ids else []
                    held = {t: (v.decode() if v is not None else None) for t, v in zip(ids, values, strict=True)}
                    owned = pipe.hmget(wkey, ids) if ids else []
                    owners = {t: v.decode() for t, v in zip(ids, owned, strict=True) if v is not None}
                    rerun_counts = pipe.hmget(keys.reruns(suite_id), ids) if ids else []
                    rerun = {t for t, n in zip(ids, rerun_counts, strict=True) if n is not None}
                    result = merge(held, records, assignment=assignment, attempt=attempt, worker=worker, node=node,
                                   owners=owners if fence else None, rerun=rerun)
                    pipe.multi()
                    if result.counted:
                        pipe.hset(okey, mapping={t: r.outcome.value for t, r in result.counted.items()})
                        pipe.hset(keys.records(suite_id),
                                  mapping={t: _pack(_record_to_plain(r)) for t, r in result.counted.items()})
                    if result.attempts:
                        pipe.hset(keys.attempts(suite_id),
                                  mapping={k: _pack(vars(row)) for k, row in result.attempts.items()})
                    for k, row in result.verdicts.items():
                        pipe.hsetnx(keys.attempts(suite_id), k, _pack(vars(row)))
                    for outcome, delta in result.deltas.items():
                        if delta:
                            pipe.hincrby(keys.counts(suite_id), outcome, delta)
                    if result.newly_final:
                        pipe.hincrby(keys.suite(suite_id), "done", result.newly_final)
                    if result.counted:
                        finished = [[t, r.outcome.value, r.message if r.outcome in _WITH_REASON else ""]
                                    for t, r in result.counted.items()]
                        pipe.xadd(keys.finished(suite_id), {"w": worker, "r": _pack(finished)},
                                  maxlen=FINISHED_STREAM_LEN, approximate=True)
                    for key in (keys.records(suite_id), keys.attempts(suite_id), keys.counts(suite_id),
                                keys.finished(suite_id)):
                        pipe.expire(key, self.settings.suite_ttl_s)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue

    def pending_in(self, suite_id: str, test_ids: list[str], owner: str | None = None) -> list[str]:
        """The tests among `test_ids` without an outcome (and owned by `owner`, if given)."""
        if not test_ids:
            return []
        values = self.r.hmget(keys.outcomes(suite_id), test_ids)
        pending = [t for t, v in zip(test_ids, values, strict=True) if v == PENDING.encode()]
        if owner is None or not pending:
            return pending
        owned = self.r.hmget(keys.owners(suite_id), pending)
        return [t for t, o in zip(pending, owned, strict=True) if o is not None and o.decode() == owner]

    def all_pending(self, suite_id: str) -> list[str]:
        return [k.decode() for k, v in self.r.hscan_iter(keys.outcomes(suite_id)) if v == PENDING.encode()]

    # --- assignments ---------------------------------------------------------------------

    def assignment(self, suite_id: str, assignment_id: str, attempt: int) -> dict[str, Any] | None:
        data = self.r.hget(keys.assignments(suite_id), keys.attempt_key(assignment_id, attempt))
        row: dict[str, Any] | None = None if data is None else _unpack(data)
        return row

    def update_assignment(self, suite_id: str, assignment_id: str, attempt: int,
                          **fields: Any) -> dict[str, Any] | None:
        """Set fields of an attempt's row; returns the updated row (None if there is none)."""
        row_key = keys.attempt_key(assignment_id, attempt)
        return self._modify_assignment(suite_id, row_key, lambda row: row.update(fields))

    def add_received(self, suite_id: str, assignment_id: str, attempt: int, count: int) -> dict[str, Any] | None:
        """Count records merged for an attempt; returns its updated row."""
        return self._modify_assignment(
            suite_id, keys.attempt_key(assignment_id, attempt),
            lambda row: row.update(received=row.get("received", 0) + count))

    def hold_completion(self, suite_id: str, assignment_id: str, attempt: int, completion: bytes,
                        reported: int) -> bool | None:
        """Keep a completion on its row until `reported` records were received; True if kept.

        Decided in the same transaction that add_received uses, so a batch merged concurrently
        either sees the held completion (and settles it) or is counted before this decision.
        """
        held: list[bool] = []

        def change(row: dict[str, Any]) -> None:
            held[:] = [row.get("received", 0) < reported]
            if held[0]:
                row.update(held_completion=completion, held_since=time.time())

        if self._modify_assignment(suite_id, keys.attempt_key(assignment_id, attempt), change) is None:
            return None
        return held[0]

    def requeue(self, suite_id: str, row: dict[str, Any], why: str, *, state: str = AttemptState.LOST,
                avoid: str = "") -> list[str]:
        """Give up on an attempt: its tests without an outcome move to a new attempt (queued).

        The old row takes `state` ("lost": its worker stopped renewing the lease; "handback": it
        stopped early and handed its tests back). Atomic with merges (same WATCHed keys): a
        record of the old attempt is either counted before this, and its test stays put, or
        fenced after it. Happens once per attempt. Returns the moved tests.
        """
        old_key = keys.attempt_key(row["id"], row["attempt"])
        new_attempt = row["attempt"] + 1
        new_key = keys.attempt_key(row["id"], new_attempt)
        okey, wkey, akey = keys.outcomes(suite_id), keys.owners(suite_id), keys.assignments(suite_id)
        tests = list(row["test_ids"])
        with self.r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(okey, wkey, akey)
                    values = pipe.hmget(okey, tests) if tests else []
                    owned = pipe.hmget(wkey, tests) if tests else []
                    moving = [t for t, v, o in zip(tests, values, owned, strict=True)
                              if v == PENDING.encode() and o is not None and o.decode() == old_key]
                    data = pipe.hget(akey, old_key)
                    if data is None or _unpack(data).get("requeued") or _unpack(data)["state"] == AttemptState.LOST:
                        pipe.unwatch()
                        return []
                    old = _unpack(data)
                    old.update(state=state, message=why[:4000], finished_at=old.get("finished_at") or time.time(),
                               requeued=True)
                    pipe.multi()
                    pipe.hset(akey, old_key, _pack(old))
                    if moving:
                        new = {"id": row["id"], "attempt": new_attempt, "state": AttemptState.QUEUED,
                               "test_ids": moving,
                               "expected_s": 0.0, "worker": "", "node": "", "started_at": 0.0, "finished_at": 0.0,
                               "avoid": sorted({*old.get("avoid", []), *([avoid] if avoid else [])}),
                               "published_at": 0.0,
                               "planned_at": time.time()}
                        pipe.hset(akey, new_key, _pack(new))
                        pipe.hset(wkey, mapping={t: new_key for t in moving})
                        pipe.hset(keys.current(suite_id), row["id"], new_attempt)
                    pipe.execute()
                    return moving
                except redis.WatchError:
                    continue

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

    def start_rerun(self, suite_id: str, row: dict[str, Any], test_ids: list[str], *,
                    crash_retry: bool = False) -> list[str]:
        """Hand failing tests to a new (rerun) assignment: their outcomes go back to pending.

        Counted in `reruns` (a pass then is flaky), or with `crash_retry` in `crash_retries` (a
        pass then is a pass: the crash was the worker's). Atomic with merges; a test that no
        longer fails, or moved already, is left alone. Returns the tests moved.
        """
        counter = keys.crash_retries(suite_id) if crash_retry else keys.reruns(suite_id)
        okey, wkey = keys.outcomes(suite_id), keys.owners(suite_id)
        failing = {o.value.encode() for o in FAILURES}
        new_key = keys.attempt_key(row["id"], row["attempt"])
        with self.r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(okey, wkey)
                    values = pipe.hmget(okey, test_ids) if test_ids else []
                    moving = [(t, v.decode()) for t, v in zip(test_ids, values, strict=True) if v in failing]
                    pipe.multi()
                    if moving:
                        names = [t for t, _ in moving]
                        pipe.hset(okey, mapping={t: PENDING for t in names})
                        pipe.hset(wkey, mapping={t: new_key for t in names})
                        for t, outcome in moving:
                            pipe.hincrby(keys.counts(suite_id), outcome, -1)
                            pipe.hincrby(counter, t, 1)
                        pipe.hincrby(keys.suite(suite_id), "done", -len(names))
                        pipe.hset(keys.assignments(suite_id), new_key, _pack({**row, "test_ids": names}))
                        pipe.hset(keys.current(suite_id), row["id"], row["attempt"])
                        pipe.hdel(keys.suite(suite_id), "complete_at")
                    pipe.execute()
                    return [t for t, _ in moving]
                except redis.WatchError:
                    continue

    def mark_finished(self, suite_id: str, assignment_id: str, attempt: int) -> None:
        """Workers drop any further delivery of an attempt that ended ("N!" in the current map).

        Only while N is still the current attempt: a newer attempt's mark is never overwritten."""
        ckey = keys.current(suite_id)
        with self.r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(ckey)
                    if pipe.hget(ckey, assignment_id) != str(attempt).encode():
                        pipe.unwatch()
                        return
                    pipe.multi()
                    pipe.hset(ckey, assignment_id, f"{attempt}!")
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def mark_running(self, suite_id: str, assignment_id: str, attempt: int, **fields: Any) -> None:
        """queued → running, and nothing else (a row that ended meanwhile keeps its state).

        A running row whose node is not known yet (the sweeper saw its lease before its first
        batch came) takes the fields it lacks."""
        def change(row: dict[str, Any]) -> None:
            if row["state"] == AttemptState.QUEUED:
                row.update(state=AttemptState.RUNNING, **fields)
            elif row["state"] == AttemptState.RUNNING:
                row.update({k: v for k, v in fields.items() if not row.get(k)})

        self._modify_assignment(suite_id, keys.attempt_key(assignment_id, attempt), change)

    def settle_row(self, suite_id: str, assignment_id: str, attempt: int, state: str,
                   **fields: Any) -> dict[str, Any] | None:
        """Record how an attempt ended; a row taken for lost keeps that state."""
        def change(row: dict[str, Any]) -> None:
            row.update(fields)
            row["started_at"] = row.get("started_at") or fields.get("started_at", 0.0)
            if row["state"] != AttemptState.LOST:
                row["state"] = state

        return self._modify_assignment(suite_id, keys.attempt_key(assignment_id, attempt), change)

    def lease_alive(self, suite_id: str, assignment_id: str, attempt: int | None) -> bool:
        """Whether a worker holds the lease of that attempt (attempt None: of the collection)."""
        name = assignment_id if attempt is None else keys.attempt_key(assignment_id, attempt)
        return bool(self.r.exists(keys.lease(suite_id, name)))

    def lease_holders(self, suite_id: str, rows: list[dict[str, Any]]) -> dict[str, str]:
        """Attempt key → the worker holding its lease, for those of `rows` whose lease is held,
        in one round trip."""
        names = [keys.attempt_key(r["id"], r["attempt"]) for r in rows]
        values = self.r.mget([keys.lease(suite_id, n) for n in names]) if names else []
        return {n: keys.text(v) for n, v in zip(names, values, strict=True) if v is not None}

    def collection_retry(self, suite_id: str) -> int:
        """Count a lost collection and clear its start mark; returns how many were lost."""
        with self.r.pipeline() as pipe:
            pipe.hincrby(keys.suite(suite_id), "collect_lost", 1)
            pipe.hdel(keys.suite(suite_id), "collect_started")
            lost, _ = pipe.execute()
        return int(lost)

    def _modify_assignment(self, suite_id: str, row_key: str,
                           change: Callable[[dict[str, Any]], None]) -> dict[str, Any] | None:
        """Read-modify-write of one attempt's row, atomic under concurrent coordinator threads."""
        akey = keys.assignments(suite_id)
        with self.r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(akey)
                    data = pipe.hget(akey, row_key)
                    if data is None:
                        pipe.unwatch()
                        return None
                    row: dict[str, Any] = _unpack(data)
                    change(row)
                    pipe.multi()
                    pipe.hset(akey, row_key, _pack(row))
                    pipe.execute()
                    return row
                except redis.WatchError:
                    continue

    def assignments(self, suite_id: str) -> list[dict[str, Any]]:
        rows = [_unpack(v) for v in self.r.hvals(keys.assignments(suite_id))]
        return sorted(rows, key=lambda a: (a["id"], a["attempt"]))

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
        return {k.decode(): _record_from_plain(_unpack(v)) for k, v in self.r.hscan_iter(keys.records(suite_id),
                                                                                          count=1000)}

    def attempts(self, suite_id: str) -> list[AttemptRow]:
        return [AttemptRow(**_unpack(v)) for _, v in self.r.hscan_iter(keys.attempts(suite_id), count=1000)]

    def counts(self, suite_id: str) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.r.hgetall(keys.counts(suite_id)).items()}

    def workers(self) -> list[WorkerInfo]:
        return registry.all_workers(self.r)

    def pool_slots(self, pool: str) -> int:
        """The slots of the pool's live workers (a killed worker's stop counting)."""
        return sum(w.slots for w in registry.alive(self.r, self.settings.worker_stale_s, pool))

    # --- finishing -----------------------------------------------------------------------

    def note_all_tests_final(self, suite_id: str) -> None:
        """Remember when every test first had an outcome (the sweeper's grace starts then)."""
        self.r.hsetnx(keys.suite(suite_id), "complete_at", time.time())

    def last_workers(self, suite_id: str, test_ids: list[str]) -> dict[str, str]:
        """Test id → the worker whose record for it counts now (where it last ran), where known."""
        owned = self.r.hmget(keys.owners(suite_id), test_ids) if test_ids else []
        names = []
        for test_id, owner in zip(test_ids, owned, strict=True):
            if owner is not None:
                assignment, _, attempt = keys.text(owner).rpartition("#")
                names.append(f"{test_id}\0{assignment}\0{attempt}")
        rows = [_unpack(r) for r in (self.r.hmget(keys.attempts(suite_id), names) if names else []) if r is not None]
        return {row["test_id"]: row["worker"] for row in rows if row.get("worker")}

    def release_finalize(self, suite_id: str) -> None:
        """Undo a claim to finalize whose holder died before it stored the report (reconcile)."""
        self.r.hdel(keys.suite(suite_id), "finalized")

    def claim_finalize(self, suite_id: str) -> bool:
        """True for exactly one caller: the one that finalizes the suite."""
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
