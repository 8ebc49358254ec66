"""The outcome half of the Redis store: the transaction primitive, merges, pending and rerun tests.

`coordinator.state.SuiteState` builds on it. Every change that depends on what is stored goes
through `transact`: WATCH the keys, read, let a pure function decide, write in MULTI, retry if a
watched key changed meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from itertools import chain
from typing import Any

import msgpack
import redis

from coordinator.aggregate import PENDING, After, Merge, merge, not_given
from farm import counters, keys, store
from farm import events as eventlog
from farm.attempts import Attempt
from farm.config import Settings
from farm.model import TestRecord, TestRun
from farm.outcomes import FAILURES, VALUE, Outcome
from farm.store import R, T, Write
from farm.stored import record_from_row, record_row, run_from_row, run_row

#: Entries (one per merged batch) the finished-tests stream keeps; a client reading it with -v
#: that falls further behind misses the oldest lines, never the report.
FINISHED_STREAM_LEN = 10_000
#: Outcomes whose one-line message the finished-tests stream carries (pytest -v shows the reason).
WITH_REASON = frozenset({Outcome.SKIPPED, Outcome.XFAILED, Outcome.XPASSED, Outcome.NOT_RUN})

#: A batch's merge in one call and one round trip (issue 10, (d)): compare, then write, then read
#: what the batch checks next. ARGV[1] is one msgpack array (`RedisOutcomes._merge_args`):
#:  1 the batch's test ids; what the merge was decided on, per id: 2 its outcome value (one string:
#:  the same for every id; false: missing), 3 its owner (false: not checked, fence=False), 4 whether
#:  it was run again (0: none was); then what the decision writes: 5-9 outcomes, records, runs,
#:  verdicts (HSETNX) and count changes as flat [field, value, ...] lists (records and runs as their
#:  packed arrays), 10 the `done` increment, 11 the finished-stream entry ("" for none), 12 the
#:  worker, 13 the attempt's key, 14 its `received` increment, 15 the TTL, 16 the finished stream's
#:  length, 17 the log's events (packed), 18 the log's cap, 19 the batch's member of `batches`
#:  (`keys.batch_member`; "" for a batch without a number).
#: A numbered batch already in `batches` (delivered again after its merge committed: a coordinator
#: killed before the ack, redis-py resending the script after a lost reply) writes, counts and logs
#: nothing: the reply is {2, held completion, received, total, done}, as below.
#: If any id's stored outcome, owner or rerun mark is not what the decision assumed (another merge,
#: a requeue or a rerun came between), nothing is written and the reply is {0, outcomes, owners,
#: reruns} of every id: the caller decides again on them, as a WATCH conflict would have made it.
#: Else {1, the attempt's held completion (`keys.held`; nil if none), its `received` count, the
#: suite's total, done}.
#: KEYS: outcomes, owners, reruns, records, attempts, counts, the suite, finished, received, held, events,
#: batches, and the farm's counters (`keys.METRICS`: `records` counts the test runs merged, for /metrics).
MERGE = """
local m = cmsgpack.unpack(ARGV[1])
local member = m[19]
if member ~= '' and redis.call('SISMEMBER', KEYS[12], member) == 1 then
  local suite = redis.call('HMGET', KEYS[7], 'total', 'done')
  return {2, redis.call('HGET', KEYS[10], m[13]), tonumber(redis.call('HGET', KEYS[9], m[13]) or '0'),
          tonumber(suite[1] or '0'), tonumber(suite[2] or '0')}
end
local ids = m[1]
local n = #ids
local function read(key)
  if n <= 1000 then return n > 0 and redis.call('HMGET', key, unpack(ids)) or {} end
  local out = {}
  for j = 1, n, 1000 do
    local got = redis.call('HMGET', key, unpack(ids, j, math.min(j + 999, n)))
    for i = 1, #got do out[#out + 1] = got[i] end
  end
  return out
end
local function same(values, want)
  if type(want) == 'table' then
    for i = 1, n do if values[i] ~= want[i] then return false end end
  else
    for i = 1, n do if values[i] ~= want then return false end end
  end
  return true
end
local outcomes = read(KEYS[1])
local ok = same(outcomes, m[2])
local owners, reruns
if ok and m[3] ~= false then
  owners = read(KEYS[2])
  ok = same(owners, m[3])
end
if ok and (m[4] ~= 0 or redis.call('EXISTS', KEYS[3]) == 1) then  -- most suites never run a test again
  reruns = read(KEYS[3])
  local want = m[4]
  for i = 1, n do
    if (reruns[i] ~= false) ~= (want ~= 0 and want[i]) then ok = false break end
  end
end
if not ok then
  return {0, outcomes, owners or read(KEYS[2]), reruns or read(KEYS[3])}
end
local ttl = m[15]
local function hset(key, flat)
  for j = 1, #flat, 1000 do
    redis.call('HSET', key, unpack(flat, j, math.min(j + 999, #flat)))
  end
end
hset(KEYS[1], m[5])
hset(KEYS[4], m[6])
hset(KEYS[5], m[7])
local v = m[8]
for j = 1, #v, 2 do redis.call('HSETNX', KEYS[5], v[j], v[j + 1]) end
local c = m[9]
for j = 1, #c, 2 do redis.call('HINCRBY', KEYS[6], c[j], c[j + 1]) end
if m[10] ~= 0 then redis.call('HINCRBY', KEYS[7], 'done', m[10]) end
if m[11] ~= '' then redis.call('XADD', KEYS[8], 'MAXLEN', '~', m[16], '*', 'w', m[12], 'r', m[11]) end
for _, key in ipairs({KEYS[4], KEYS[5], KEYS[6], KEYS[8]}) do redis.call('EXPIRE', key, ttl) end
local received
if m[14] ~= 0 then
  received = redis.call('HINCRBY', KEYS[9], m[13], m[14])
  redis.call('EXPIRE', KEYS[9], ttl)
else
  received = tonumber(redis.call('HGET', KEYS[9], m[13]) or '0')
end
local logged = m[17]
for i = 1, #logged do
  redis.call('XADD', KEYS[11], 'MAXLEN', m[18], '*', 'e', logged[i])
end
if #logged > 0 then redis.call('EXPIRE', KEYS[11], ttl) end
if #m[7] > 0 then redis.call('HINCRBY', KEYS[13], 'records', #m[7] / 2) end
if member ~= '' then
  redis.call('SADD', KEYS[12], member)
  redis.call('EXPIRE', KEYS[12], ttl)
end
local suite = redis.call('HMGET', KEYS[7], 'total', 'done')
return {1, redis.call('HGET', KEYS[10], m[13]), received, tonumber(suite[1] or '0'), tonumber(suite[2] or '0')}
"""

_packb = msgpack.Packer(use_bin_type=True).pack  # one reused packer: no Python frame per value
#: Redis's cmsgpack reads no msgpack bin type: MERGE's argument carries bytes as raw strings.
_pack_for_lua = msgpack.Packer(use_bin_type=False).pack
#: An id's rerun mark as MERGE compares it: none of the batch's ids was run again.
NO_RERUNS = 0


#: The events whose number is a farm-wide counter (/metrics).
_COUNTED = {eventlog.Kind.LEASE_LOST: counters.LEASE_LOSSES, eventlog.Kind.HANDED_BACK: counters.HAND_BACKS}


def pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


def texts(values: Iterable[bytes | None]) -> list[str | None]:
    return [None if v is None else v.decode() for v in values]


class RedisOutcomes:
    """Merged outcomes of suites in one Redis, and the read-decide-write primitive."""

    def __init__(self, store: redis.Redis, settings: Settings, name: str = "1",
                 clock: Callable[[], float] = time.time) -> None:
        # redis-py types every reply as a union of its sync and async shapes; this class only
        # uses the synchronous client, whose replies are bytes, ints and lists of them.
        self.r: Any = store
        self.settings = settings
        self.name = name  # the coordinator's: a finish claim names its holder (coordinator/peers.py)
        self.clock = clock  # the time events are stamped with
        self._tests: dict[str, int] = {}  # suite -> its planned tests (bounds its log; never changes)
        # EVALSHA, and EVAL once after a Redis restart emptied the script cache (not in a MULTI).
        self._merge_script = store.register_script(MERGE)

    # --- the event log ---------------------------------------------------------------------

    def log(self, pipe: Any, suite_id: str, *logged: eventlog.Event, tests: int | None = None) -> None:
        """Append events to the suite's log, on the pipeline of the transaction they describe."""
        n = self._planned_tests(suite_id) if tests is None else tests
        for e in logged:
            eventlog.append(pipe, suite_id, e, tests=n, ttl_s=self.settings.suite_ttl_s)
            if e.kind in _COUNTED:  # in the same transaction: counted exactly once
                counters.bump(pipe, _COUNTED[e.kind])

    def _planned_tests(self, suite_id: str) -> int:
        n = self._tests.get(suite_id)
        if n is None:
            total = self.r.hget(keys.suite(suite_id), "total")
            if total is None:
                return 0  # not planned yet: the log's base cap
            if len(self._tests) >= 256:
                # The coordinator's threads share this cache: two may drop the same oldest entry.
                self._tests.pop(next(iter(self._tests), ""), None)
            n = self._tests[suite_id] = int(total)
        return n

    def events(self, suite_id: str) -> list[eventlog.Event]:
        """The suite's event log, oldest first."""
        return [eventlog.unpack(fields[b"e"]) for _, fields in self.r.xrange(keys.events(suite_id))]

    # --- the one read-decide-write primitive ----------------------------------------------

    def transact(self, watch: Sequence[str], read: Callable[[Any], R],
                 decide: Callable[[R], tuple[T, Write]], *, tries: int = 0) -> T:
        """farm.store.transact on this store."""
        return store.transact(self.r, watch, read, decide, tries=tries)

    # --- merging -------------------------------------------------------------------------

    def merge(self, suite_id: str, records: list[TestRecord], *, assignment: str, attempt: int, worker: str,
              node: str, fence: bool = True, kind: eventlog.Kind = eventlog.Kind.RECORDS,
              count_received: bool = False, given: Callable[[], Container[str]] | None = None,
              batch: int = 0) -> Merge:
        """Merge records into the suite atomically; returns what changed. With `count_received`
        (a worker's batch), the attempt's `received` counter (`keys.received`) counts them in the
        same step: a completion that WATCHes it sees the records it waits for counted exactly when
        they are merged. With `given` (the attempt's test ids, called only if it does not own every
        test of the batch: `aggregate.not_given`), records of tests it was not given are dropped
        (`Merge.dropped`), neither written nor counted. With `batch` (the batch's number in its
        attempt, `RecordBatch.seq`), a batch merged before changes nothing (`Merge.repeated`).

        One MERGE call (one round trip) in the common case: the decision (`aggregate.merge`) is
        first made on what a batch of its own attempt usually finds (every test pending, owned by
        this attempt, never run again), and MERGE writes it only if that is what is stored; if not,
        its reply is what is stored, and the merge is decided again on that (as a WATCH conflict
        made it before). `Merge.after` is the suite as the merge left it."""
        me = keys.attempt_key(assignment, attempt)
        ids = list(dict.fromkeys(r.test_id for r in records))
        names = (keys.outcomes(suite_id), keys.owners(suite_id), keys.reruns(suite_id), keys.records(suite_id),
                 keys.attempts(suite_id), keys.counts(suite_id), keys.suite(suite_id), keys.finished(suite_id),
                 keys.received(suite_id), keys.held(suite_id), keys.events(suite_id), keys.batches(suite_id),
                 keys.METRICS)
        member = keys.batch_member(me, batch) if batch else ""
        # What the decision assumes is stored: first the guess, then what MERGE said is.
        values: Any = PENDING
        owned: Any = me if fence else False
        reruns: Any = NO_RERUNS
        while True:
            if isinstance(values, str):
                current: dict[str, str | None] = dict.fromkeys(ids, values)
                owners: dict[str, str] = dict.fromkeys(ids, me)
                rerun: Container[str] = ()
            else:
                current = dict(zip(ids, texts(values), strict=True))
                owners = {t: o.decode() for t, o in zip(ids, owned, strict=True) if o is not None}
                rerun = {t for t, r in zip(ids, reruns, strict=True) if r is not None}
            kept = not_given(records, owners, me, given if fence else None)
            result = merge(current, kept, assignment=assignment, attempt=attempt, worker=worker, node=node,
                           owners=owners if fence else None, rerun=rerun)
            result.dropped = len(records) - len(kept)
            rows = [record_row(r) for r in result.counted.values()]  # once: for the hash and the log
            logged = eventlog.merged(result.counted, result.runs, result.verdicts, assignment=assignment,
                                     attempt=attempt, worker=worker, node=node, at=self.clock(), kind=kind,
                                     fenced=result.fenced, rows=rows)
            expected = (values, owned, reruns) if isinstance(values, str) else (
                [False if v is None else v for v in values],
                [False if o is None else o for o in owned] if fence else False,
                [r is not None for r in reruns])
            reply = self._merge_script(keys=names, args=[self._merge_args(
                suite_id, ids, expected, result, rows, worker, me, len(kept) if count_received else 0, logged,
                member)])
            if reply[0] != 0:
                held, count, total, done = reply[1:]
                if reply[0] == 2:  # merged before: nothing was written
                    result = Merge(repeated=True)
                result.after = After(int(total), int(done), None if held is None else (unpack(held)[0], int(count)))
                return result
            values, owned, reruns = reply[1:]  # not what was assumed: decide again on what is stored

    def _merge_args(self, suite_id: str, ids: list[str], expected: tuple[Any, Any, Any], result: Merge,
                    rows: list[list[Any]], worker: str, me: str, received: int,
                    logged: list[eventlog.Event], member: str = "") -> bytes:
        """MERGE's one argument: the ids, what the decision assumed of them, what it writes."""
        packb, flat = _packb, chain.from_iterable
        counted = result.counted
        values = [VALUE[r.outcome] for r in counted.values()]
        outcomes = list(flat(zip(counted, values, strict=True)))
        stored = list(flat(zip(counted, map(packb, rows), strict=True)))
        finished = [[t, v, r.message if r.outcome in WITH_REASON else ""]
                    for (t, r), v in zip(counted.items(), values, strict=True)]
        runs = list(flat(zip(result.runs, map(packb, map(run_row, result.runs.values())), strict=True)))
        verdicts = list(flat(zip(result.verdicts, map(packb, map(run_row, result.verdicts.values())), strict=True)))
        counts: list[Any] = []
        for outcome, delta in result.deltas.items():
            if delta:
                counts += (outcome, delta)
        tests = self._planned_tests(suite_id)
        data: bytes = _pack_for_lua([ids, *expected, outcomes, stored, runs, verdicts, counts, result.newly_final,
                              packb(finished) if finished else "", worker, me, received,
                              int(self.settings.suite_ttl_s), FINISHED_STREAM_LEN,
                              [eventlog.pack(e) for e in logged], eventlog.cap(tests), member])
        return data

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
                self.log(pipe, suite_id, eventlog.run_again(new.but(test_ids=tuple(names)), self.clock(),
                                                          crash_retry=crash_retry))
            return names, write

        return self.transact([okey, wkey], lambda pipe: texts(pipe.hmget(okey, tests)) if tests else [], decide)

    def counted(self, suite_id: str) -> dict[str, TestRecord]:
        return {r.test_id: r for r in self.each_counted(suite_id)}  # the record's own (interned) id

    def each_counted(self, suite_id: str) -> Iterator[TestRecord]:
        """The suite's counted records one at a time, read in pages (HSCAN: a record may come twice)."""
        for _, v in self.r.hscan_iter(keys.records(suite_id), count=1000):
            yield record_from_row(unpack(v))

    def records_count(self, suite_id: str) -> int:
        """How many tests have a counted record."""
        return int(self.r.hlen(keys.records(suite_id)))

    def records_of(self, suite_id: str, test_ids: Sequence[str]) -> list[TestRecord | None]:
        """The counted records of `test_ids` (None: none counted), in one HMGET."""
        if not test_ids:
            return []
        return [None if v is None else record_from_row(unpack(v))
                for v in self.r.hmget(keys.records(suite_id), list(test_ids))]

    def test_runs(self, suite_id: str) -> list[TestRun]:
        """Every test's run in every attempt (the `attempts` hash)."""
        return [run_from_row(unpack(v)) for _, v in self.r.hscan_iter(keys.attempts(suite_id), count=1000)]

    def counts(self, suite_id: str) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.r.hgetall(keys.counts(suite_id)).items()}

    def last_workers(self, suite_id: str, test_ids: list[str]) -> dict[str, str]:
        """Test id → the worker whose record for it counts now (where it last ran), where known."""
        owned = self.r.hmget(keys.owners(suite_id), test_ids) if test_ids else []
        names = []
        for test_id, owner in zip(test_ids, owned, strict=True):
            if owner is not None:
                assignment, _, attempt = keys.text(owner).rpartition("#")
                names.append(f"{test_id}\0{assignment}\0{attempt}")
        runs = [run_from_row(unpack(r)) for r in (self.r.hmget(keys.attempts(suite_id), names) if names else [])
                if r is not None]
        return {run.test_id: run.worker for run in runs if run.worker}

def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
