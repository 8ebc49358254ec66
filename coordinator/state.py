"""The coordinator's store over Redis: suites, their attempts, finishing, history (its only Redis I/O).

Merges and the read-decide-write primitive are in `coordinator.redis_outcomes`; the decisions
(`coordinator.aggregate.merge`, `coordinator.transitions`) are the same as the memory store's.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from coordinator import deadlines, redis_bulk, transitions
from coordinator.aggregate import PENDING
from coordinator.machine import SuiteView, collection_order
from coordinator.redis_outcomes import chunks, pack, texts, unpack
from coordinator.redis_runs import RunHistoryWriter
from coordinator.redis_splits import RedisSplits
from coordinator.staging import StagePlan
from coordinator.store import COLLECTION_OWNER, FINISH_TRIES, Finished
from farm import counters, keys, registry
from farm import events as eventlog
from farm.attempts import Attempt
from farm.errors import ProtocolError, SuiteNotFound
from farm.model import Collection, SuiteSpec, WorkerInfo
from farm.protocol import decode, encode
from farm.states import AttemptState, SuiteStatus
from farm.store import Write

log = logging.getLogger("farm.coordinator")
#: A plan's staged hashes outlive a planning transaction that never came this long (it takes seconds).
STAGED_TTL_S = 24 * 3600

def _bare(a: Attempt) -> Attempt:
    """The attempt as its blob is stored: without what `keys.received` and `keys.held` keep."""
    return a.but(received=0, waiting_completion=None, waiting_since=0.0)


def _whole(a: Attempt, count: bytes | None, held: bytes | None) -> Attempt:
    """A stored blob with its `received` count and held completion (`_bare` undone). A blob an
    older coordinator wrote carries both itself: they count while the new hashes have no field."""
    if held is None:
        completion, since = a.waiting_completion, a.waiting_since
    else:
        completion, since = unpack(held)[:2]  # [completion, since] or [completion, since, taken_at]
    # An older blob's count and the counter add up: its count moves to the counter when the blob
    # is next written (`change_attempt`).
    received = a.received + int(count or 0)
    return a.but(received=received, waiting_completion=completion, waiting_since=float(since))


class SuiteState(RedisSplits):
    """Reads and writes one Redis state store (satisfies `coordinator.store.SuiteStore`)."""

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
        """Flag the suite canceled (workers check the flag); the first request's time is kept
        (and only the first is logged)."""
        key = keys.suite(suite_id)

        def decide(cancel: bytes | None) -> tuple[None, Write]:
            if cancel is not None:
                return None, None

            def write(pipe: Any) -> None:
                pipe.hset(key, "cancel", now)
                self.log(pipe, suite_id, eventlog.Event(eventlog.Kind.CANCEL, self.clock(), detail="requested"))
            return None, write

        self.transact([key], lambda pipe: pipe.hget(key, "cancel"), decide)

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
             maxfail: int = 0, stages: StagePlan | None = None) -> bool:
        """Record the collection, the planned attempts, the suite's effective --maxfail (0: none)
        and its stages (None: not staged; `attempts` are then its first stage's); False if the
        suite moved on already."""
        sid = collection.suite_id
        all_ids = collection_order(collection, test_ids)
        staged: dict[str, Any] = {} if stages is None else {
            "stages": stages.pack(), **stages.fields(len(all_ids))}
        decided_ids = all_ids[len(test_ids):]
        staging_keys = self._stage_plan(sid, all_ids, attempts, decided_ids)

        def also(pipe: Any) -> None:
            for real, staging in staging_keys.items():  # every test pending, owned by its attempt
                pipe.rename(staging, real)
            for a in attempts:
                pipe.hset(keys.assignments(sid), a.key, a.pack())
                pipe.hset(keys.current(sid), a.assignment_id, a.number)
            for key in keys.suite_keys(sid):  # nothing lives forever, finished or not
                pipe.expire(key, self.settings.suite_ttl_s)
            self.log(pipe, sid, eventlog.collected(collection, all_ids, attempts, self.clock()), tests=len(all_ids))

        moved = False
        try:
            moved = self._transition(sid, SuiteStatus.COLLECTING, SuiteStatus.RUNNING, also=also,
                                     collection=encode(collection), order=pack(all_ids), total=len(all_ids),
                                     done=0, started_at=now, maxfail=maxfail, **staged)
        finally:
            if not moved and staging_keys:
                self.r.delete(*staging_keys.values())
        return moved

    def stages(self, suite_id: str) -> StagePlan | None:
        """The suite's stages as planned and as far as they got (None: not staged)."""
        data = self.r.hget(keys.suite(suite_id), "stages")
        return None if data is None else StagePlan.unpack(data)

    def advance_stage(self, suite_id: str, from_stage: int, plan: StagePlan, attempts: list[Attempt]) -> bool:
        """Move the suite from stage `from_stage` to `plan.current` with these first attempts of it
        (owning its tests), or to its end (`plan.current` past the last: no attempts); False, nothing
        written, if it is no longer at `from_stage` (another caller moved it: a repeated decision)."""
        key, akey, wkey = keys.suite(suite_id), keys.assignments(suite_id), keys.owners(suite_id)

        def decide(seen: list[bytes | None]) -> tuple[bool, Write]:
            stage, total = seen
            if stage is None or int(stage) != from_stage:
                return False, None

            def write(pipe: Any) -> None:
                pipe.hset(key, mapping={"stages": plan.pack(), **plan.fields(int(total or 0))})
                pipe.hdel(key, "complete_at")  # the completions' grace is the next stage's
                for a in attempts:
                    pipe.hset(akey, a.key, a.pack())
                    pipe.hset(keys.current(suite_id), a.assignment_id, a.number)
                    pipe.hset(wkey, mapping={t: a.key for t in a.test_ids})
                self.log(pipe, suite_id, *eventlog.stage_started(plan.current, attempts, self.clock()))
            return True, write

        return self.transact([key], lambda pipe: pipe.hmget(key, ["stage", "total"]), decide)

    def _stage_plan(self, sid: str, all_ids: list[str], attempts: list[Attempt],
                    decided_ids: list[str]) -> dict[str, str]:
        """Write the plan's outcomes (all pending) and owners hashes under staging names of their
        own (`coordinator.redis_bulk`: no Python call per test), for the planning transaction to
        RENAME into place; real key -> staging key. The staging keys expire after STAGED_TTL_S
        if that transaction never comes (a coordinator killed in between)."""
        if not all_ids:
            return {}
        nonce = uuid.uuid4().hex
        outcomes, owners = f"{keys.outcomes(sid)}:staged:{nonce}", f"{keys.owners(sid)}:staged:{nonce}"
        tests = [t for a in attempts for t in a.test_ids] + decided_ids
        owner = [(a.key, len(a.test_ids)) for a in attempts] + [(COLLECTION_OWNER, len(decided_ids))]
        if len(tests) == len(all_ids):  # each test in exactly one attempt (as planned): one encoding of the ids
            redis_bulk.write_hashes(self.r, tests, {outcomes: PENDING, owners: owner}, ttl_s=STAGED_TTL_S)
        else:  # not a partition of the order: every test pending all the same
            redis_bulk.write_hashes(self.r, all_ids, {outcomes: PENDING}, ttl_s=STAGED_TTL_S)
            redis_bulk.write_hashes(self.r, tests, {owners: owner}, ttl_s=STAGED_TTL_S)
        return {keys.outcomes(sid): outcomes, keys.owners(sid): owners}

    def total_and_done(self, suite_id: str) -> tuple[int, int]:
        """The tests that must have an outcome before the suite may finish (in a staged suite:
        before its current stage ends) and how many have one."""
        total, done, stage_total = self.r.hmget(keys.suite(suite_id), ["total", "done", "stage_total"])
        return int(stage_total or total or 0), int(done or 0)

    # --- attempts ------------------------------------------------------------------------
    # An attempt is its packed blob (in `keys.assignments`) and two fields kept apart, so that a
    # batch neither reads nor rewrites the blob (which holds every test id): `received`, counted
    # by the merges (`keys.received`), and its held completion (`keys.held`). Blobs are stored
    # without them (`_bare`); every read puts them back (`_whole`).

    def attempt(self, suite_id: str, assignment_id: str, number: int) -> Attempt | None:
        name = keys.attempt_key(assignment_id, number)
        with self.r.pipeline(transaction=False) as pipe:
            pipe.hget(keys.assignments(suite_id), name)
            pipe.hget(keys.received(suite_id), name)
            pipe.hget(keys.held(suite_id), name)
            data, count, held = pipe.execute()
        return None if data is None else _whole(Attempt.unpack(data), count, held)

    def attempts(self, suite_id: str) -> list[Attempt]:
        """Every attempt of the suite's assignments, by assignment and number."""
        with self.r.pipeline(transaction=False) as pipe:
            pipe.hvals(keys.assignments(suite_id))
            pipe.hgetall(keys.received(suite_id))
            pipe.hgetall(keys.held(suite_id))
            blobs, counts, held = pipe.execute()
        found = []
        for v in blobs:
            a = Attempt.unpack(v)
            name = a.key.encode()
            found.append(_whole(a, counts.get(name), held.get(name)))
        return sorted(found, key=lambda a: (a.assignment_id, a.number))

    def change_attempt(self, suite_id: str, assignment_id: str, number: int,
                       change: Callable[[Attempt], Attempt]) -> Attempt | None:
        """Apply `change` (pure, e.g. from `coordinator.transitions`) to one attempt atomically;
        returns it changed (None if there is no such attempt). Atomic with merges too: the
        `received` counter is WATCHed, so a completion deciding whether it waits sees every
        record merged before it writes. `received` itself is the merges' to count."""
        akey, rkey, hkey = keys.assignments(suite_id), keys.received(suite_id), keys.held(suite_id)
        name = keys.attempt_key(assignment_id, number)

        def read(pipe: Any) -> tuple[bytes | None, bytes | None, bytes | None]:
            return pipe.hget(akey, name), pipe.hget(rkey, name), pipe.hget(hkey, name)

        def decide(seen: tuple[bytes | None, bytes | None, bytes | None]) -> tuple[Attempt | None, Write]:
            data, count, held = seen
            if data is None:
                return None, None
            stored = Attempt.unpack(data)
            old = _whole(stored, count, held)
            new = change(old)
            event = eventlog.changed(old, new, self.clock())
            blob = _bare(new)
            # An older coordinator's blob (its count and held completion inside) is rewritten in
            # this form, and what it carried moves to the counter and the held hash.
            legacy = stored.received or (held is None and stored.waiting_completion is not None)
            rewrite = blob != _bare(old) or bool(legacy)
            rehold = (new.waiting_completion, new.waiting_since) != (old.waiting_completion, old.waiting_since) \
                or (held is None and new.waiting_completion is not None)
            if not rewrite and not rehold and event is None:
                return new, None

            def write(pipe: Any) -> None:
                if rewrite:
                    pipe.hset(akey, name, blob.pack())
                if stored.received:
                    pipe.hincrby(rkey, name, stored.received)
                    pipe.expire(rkey, self.settings.suite_ttl_s)
                if rehold and new.waiting_completion is None:
                    pipe.hdel(hkey, name)
                elif rehold:
                    pipe.hset(hkey, name, pack([new.waiting_completion, new.waiting_since]))
                    pipe.expire(hkey, self.settings.suite_ttl_s)
                if event is not None:
                    self.log(pipe, suite_id, event)
            return new, write

        return self.transact([akey, rkey, hkey], read, decide)

    def held_completion(self, suite_id: str, assignment_id: str, number: int) -> tuple[bytes, int] | None:
        """The attempt's held completion and its `received` count now, or None if none is held:
        what a batch reads after its merge, in one round trip and without the attempt itself."""
        name = keys.attempt_key(assignment_id, number)
        with self.r.pipeline(transaction=False) as pipe:
            pipe.hget(keys.held(suite_id), name)
            pipe.hget(keys.received(suite_id), name)
            held, count = pipe.execute()
        return None if held is None else (unpack(held)[0], int(count or 0))

    def take_held(self, suite_id: str, assignment_id: str, number: int, completion: bytes, *, now: float) -> bool:
        """Take the attempt's held completion, if it is still `completion`: True for exactly one
        caller (the batch that brought the last record it waited for, or the sweep that gave up
        waiting), which then ends the attempt. It is marked taken, not removed: the attempt's end
        (`transitions.ended`, in `change_attempt`) removes it in the transaction that writes the end.
        A taker that died or failed before that leaves it taken; `deadlines.TAKEN_RETRY_S` after, it
        may be taken again (the sweep's END_LATE), so the completion is never lost."""
        hkey, akey = keys.held(suite_id), keys.assignments(suite_id)
        name = keys.attempt_key(assignment_id, number)

        def read(pipe: Any) -> tuple[bytes | None, bytes | None]:
            return pipe.hget(hkey, name), pipe.hget(akey, name)

        def decide(seen: tuple[bytes | None, bytes | None]) -> tuple[bool, Write]:
            held, data = seen
            if held is None:  # an older coordinator's blob holds it itself
                stored = Attempt.unpack(data) if data is not None else None
                if stored is None or stored.waiting_completion is None:
                    return False, None
                c, since, taken = stored.waiting_completion, stored.waiting_since, []
            else:
                c, since, *taken = unpack(held)
            if c != completion or (taken and not deadlines.taken_too_long(float(taken[0]), now)):
                return False, None

            def write(pipe: Any) -> None:
                pipe.hset(hkey, name, pack([c, since, now]))
                pipe.expire(hkey, self.settings.suite_ttl_s)
            return True, write

        return self.transact([hkey, akey], read, decide)

    def requeue(self, suite_id: str, old: Attempt, why: str, *, now: float, state: AttemptState = AttemptState.LOST,
                avoid: str = "", from_state: AttemptState | None = None) -> list[str]:
        """Give up on an attempt: its tests without an outcome move to the next attempt (queued).

        The old attempt takes `state` (lost: its worker stopped renewing the lease; handback: it
        stopped early and handed its tests back), only from `from_state` (None: queued or running;
        `transitions.requeue`). Atomic with merges (same WATCHed keys): a
        record of the old attempt is either counted before this, and its test stays put, or
        fenced after it. Happens once per attempt. Returns the moved tests.
        """
        okey, wkey, akey = keys.outcomes(suite_id), keys.owners(suite_id), keys.assignments(suite_id)
        tests = list(old.test_ids)

        def read(pipe: Any) -> tuple[list[str | None], list[str | None], bytes | None]:
            if not tests:
                return [], [], pipe.hget(akey, old.key)
            return texts(pipe.hmget(okey, tests)), texts(pipe.hmget(wkey, tests)), pipe.hget(akey, old.key)

        def decide(seen: tuple[list[str | None], list[str | None], bytes | None]) -> tuple[list[str], Write]:
            values, owned, data = seen
            if data is None:
                return [], None
            change = transitions.requeue(Attempt.unpack(data), dict(zip(tests, values, strict=True)),
                                         dict(zip(tests, owned, strict=True)), state=state, why=why, avoid=avoid,
                                         now=now, from_state=from_state)
            if change is None:
                return [], None
            ended, new = change

            def write(pipe: Any) -> None:
                pipe.hset(akey, ended.key, ended.pack())
                self.log(pipe, suite_id, *eventlog.given_up_on(ended, new, self.clock()))
                if new is not None:
                    pipe.hset(akey, new.key, new.pack())
                    pipe.hset(wkey, mapping={t: new.key for t in new.test_ids})
                    pipe.hset(keys.current(suite_id), new.assignment_id, new.number)
            return (list(new.test_ids) if new else []), write

        return self.transact([okey, wkey, akey], read, decide)

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
        key = keys.suite(suite_id)

        def decide(lost: bytes | None) -> tuple[int, Write]:
            tries = int(lost or 0) + 1

            def write(pipe: Any) -> None:
                pipe.hset(key, "collect_lost", tries)
                pipe.hdel(key, "collect_started")
                self.log(pipe, suite_id, eventlog.Event(eventlog.Kind.LEASE_LOST, self.clock(), "collect", tries,
                                                      detail="the collection was lost"))
            return tries, write

        return self.transact([key], lambda pipe: pipe.hget(key, "collect_lost"), decide)

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
        return [] if data is None else [sys.intern(t) for t in unpack(data)]  # the ids the records hold

    def workers(self) -> list[WorkerInfo]:
        return registry.all_workers(self.r)

    def pool_slots(self, pool: str) -> int:
        """The slots of the pool's live workers (a killed worker's stop counting)."""
        return sum(w.slots for w in registry.alive(self.r, self.settings.worker_stale_s, pool))

    # --- finishing -----------------------------------------------------------------------

    def note_complete(self, suite_id: str, now: float) -> None:
        """Remember when every test first had an outcome (the grace for completions starts then)."""
        self.r.hsetnx(keys.suite(suite_id), "complete_at", now)

    def release_finish_claim(self, suite_id: str) -> bool:
        """Undo our claim to finish (we moved on, or failed before we stored the report); a claim
        another coordinator holds (ours was released while we stalled) stays. True if released."""
        key = keys.suite(suite_id)

        def decide(holder: bytes | None) -> tuple[bool, Write]:
            if holder != self.name.encode():
                return False, None
            return True, lambda pipe: pipe.hdel(key, "finalized")

        return self.transact([key], lambda pipe: pipe.hget(key, "finalized"), decide)

    def claim_finish(self, suite_id: str) -> bool:
        """True for exactly one caller: the one that finishes the suite (the claim names it)."""
        return bool(self.r.hsetnx(keys.suite(suite_id), "finalized", self.name))

    def store_report(self, suite_id: str, build: Callable[[], Finished]) -> bool:
        """Store what `build` makes of the suite as it is now, if we still hold its finish claim
        and it is still active; False (nothing stored) if not.

        Atomic with the suite's log: `build` reads after WATCHing the log, so an event appended
        before the report's own (a merge, an attempt ending) makes it build again (at most
        FINISH_TRIES times; then `redis.WatchError`): the report is what the log folds to."""
        key, ttl = keys.suite(suite_id), self.settings.suite_ttl_s

        def read(pipe: Any) -> tuple[bytes | None, bool]:
            return pipe.hget(key, "finalized"), bool(pipe.sismember(keys.ACTIVE, suite_id))

        def decide(seen: tuple[bytes | None, bool]) -> tuple[bool, Write]:
            holder, active = seen
            if holder != self.name.encode() or not active:
                log.warning("suite %s: not storing its report: %s", suite_id,
                            "it finished already" if not active else
                            f"its finish claim is {keys.text(holder) if holder else 'gone'}'s, not ours")
                return False, None
            done = build()

            def write(pipe: Any) -> None:
                self._write_durations(pipe, done.project, done.durations)
                if done.run is not None:
                    self._runs.write(pipe, done.project, done.run, done.durations)
                # In pieces (SET, then APPEND in the same MULTI): never joined into one text here.
                first, *rest = done.report
                pipe.set(keys.report(suite_id), first)
                for piece in rest:
                    pipe.append(keys.report(suite_id), piece)
                pipe.xadd(keys.ended(suite_id), {"s": done.fields.get("status", "")})  # waiting clients wake
                self.log(pipe, suite_id, done.event)
                pipe.hset(key, mapping=done.fields)
                pipe.srem(keys.ACTIVE, suite_id)
                pipe.zrem(keys.SUBMITTED, suite_id)
                # Once per suite, in its finish's transaction: the farm-wide counters (/metrics).
                counters.bump(pipe, counters.suites_field(str(done.fields.get("status", ""))))
                # The tests as the report counts them (the run entry's tally, taken on the report's
                # pass): also those decided at collection, which never went through MERGE.
                for outcome, n in (done.run.counts if done.run is not None else {}).items():
                    counters.bump(pipe, counters.tests_field(outcome), n)
                for k in keys.suite_keys(suite_id):
                    pipe.expire(k, ttl)
            return True, write

        return self.transact([key, keys.events(suite_id)], read, decide, tries=FINISH_TRIES)

    @cached_property
    def _runs(self) -> RunHistoryWriter:
        return RunHistoryWriter(self.r, self.settings.history_runs, self.settings.history_ttl_s)

    def run_history(self, project: str) -> tuple[list[bytes], dict[str, bytes]]:
        """The project's run entries (oldest first) and its tests' duration rings, as stored."""
        runs = list(self.r.lrange(keys.history_runs(project), 0, -1))
        rings = {keys.text(k): v for k, v in self.r.hscan_iter(keys.history_times(project), count=5000)}
        return runs, rings

    def run_entries(self, project: str) -> list[bytes]:
        """The project's run entries (oldest first), without the rings (the regression gate's read)."""
        return list(self.r.lrange(keys.history_runs(project), 0, -1))

    def durations(self, project: str) -> dict[str, float]:
        tests, values = redis_bulk.read_hash(self.r, keys.history(project))
        return dict(zip(tests, map(float, values), strict=True))

    def record_durations(self, project: str, durations: dict[str, float]) -> None:
        with self.r.pipeline() as pipe:
            self._write_durations(pipe, project, durations)
            pipe.execute()

    def _write_durations(self, pipe: Any, project: str, durations: dict[str, float]) -> None:
        if not durations:
            return
        key = keys.history(project)
        for chunk in chunks(list(durations.items()), 5000):
            pipe.hset(key, mapping={k: repr(round(v, 6)) for k, v in chunk})
        pipe.expire(key, self.settings.history_ttl_s)
