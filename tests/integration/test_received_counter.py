"""The `received` counter against a real redis-server: batches count their records in the merge's
own transaction, and a completion held for them ends its attempt exactly once, whoever comes last.

The threads race for real (a barrier releases them together), many times over: the completion
against the last batches, and the sweep that gives up waiting against the last batch.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import redis

from coordinator import transitions
from coordinator.planner import Planner
from coordinator.state import SuiteState
from farm import keys
from farm.attempts import Attempt
from farm.config import Settings
from farm.model import Collection, Completion, RecordBatch, SuiteSpec, TestRecord, WorkerInfo
from farm.outcomes import Outcome
from farm.protocol import encode

TESTS = ("t.py::a", "t.py::b", "t.py::c")
ROUNDS = 40


def _planner(url: str) -> tuple[Planner, SuiteState, list, Counter]:
    """A planner over the real store whose attempt endings are counted (by attempt key)."""
    settings = Settings(broker_url=url)
    state = SuiteState(redis.Redis.from_url(url), settings)
    state.r.hset(keys.WORKERS, "w@h", encode(WorkerInfo("w@h", "h", 1, "default", "local")))
    published: list = []
    planner = Planner(state, settings, lambda spec: None, lambda pool, a: published.append(a))
    ends: Counter = Counter()
    end_attempt = planner.end_attempt

    def counted(c: Completion, *, records_lost: int = 0) -> None:
        ends[keys.attempt_key(c.assignment_id, c.attempt)] += 1
        end_attempt(c, records_lost=records_lost)

    planner.end_attempt = counted  # type: ignore[method-assign]
    return planner, state, published, ends


def _planned(planner: Planner, state: SuiteState, published: list, sid: str) -> tuple[str, int]:
    spec = SuiteSpec(sid, "proj", "0" * 64, "default", "load", (), time.time())
    state.r.hset(keys.suite(sid), mapping={"spec": encode(spec), "status": "submitted",
                                           "submitted_at": spec.submitted_at})
    planner.submitted(sid)
    planner.collected(Collection(sid, "w@h", 0, TESTS))
    a = published[-1]
    return a.assignment_id, a.attempt


def _batch(sid: str, assignment: str, *tests: str, seq: int = 0) -> RecordBatch:
    """A batch of passes (`seq` 0: unnumbered, as an older worker sends it)."""
    return RecordBatch(sid, assignment, 1, "w@h", "local:h", tuple(TestRecord(t, Outcome.PASSED) for t in tests),
                       seq=seq)


def _race(*calls: Callable[[], None]) -> None:
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], None]) -> None:
        barrier.wait()
        try:
            call()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_a_batch_counts_its_records_without_rewriting_its_attempt(redis_url: str) -> None:
    planner, state, published, _ = _planner(redis_url)
    assignment, number = _planned(planner, state, published, "quiet")
    planner.records(_batch("quiet", assignment, "t.py::a"))  # the first: the attempt starts (rewritten)
    name = keys.attempt_key(assignment, number)
    blob = state.r.hget(keys.assignments("quiet"), name)
    planner.records(_batch("quiet", assignment, "t.py::b"))
    planner.records(_batch("quiet", assignment, "t.py::c"))
    assert state.r.hget(keys.assignments("quiet"), name) == blob, "a batch rewrote its attempt"
    assert state.r.hget(keys.received("quiet"), name) == b"3"
    a = state.attempt("quiet", assignment, number)
    assert a is not None and a.received == 3 and a.state == "running"


def _jitter(monkeypatch: pytest.MonkeyPatch, state: SuiteState) -> None:
    """Widen the windows the race is about (0-3 ms, at random): between the completion's read of
    `received` and its write (inside its transaction), and between a batch's merge and its look
    for a held completion."""
    rnd = random.Random(10)
    arrived = transitions.completion_arrived

    def slow_arrived(*args: Any, **kwargs: Any) -> Attempt:
        time.sleep(rnd.random() * 0.003)
        return arrived(*args, **kwargs)

    held_completion = state.held_completion

    def slow_held(*args: Any) -> tuple[bytes, int] | None:
        time.sleep(rnd.random() * 0.003)
        return held_completion(*args)

    monkeypatch.setattr(transitions, "completion_arrived", slow_arrived)
    monkeypatch.setattr(state, "held_completion", slow_held)


def test_a_completion_and_the_last_batches_racing_end_the_attempt_once(redis_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The completion (3 records sent) races the two batches carrying the last two records:
    whichever order the threads take, the attempt ends exactly once, with all 3 counted."""
    planner, state, published, ends = _planner(redis_url)
    _jitter(monkeypatch, state)
    for i in range(ROUNDS):
        sid = f"race{i}"
        assignment, number = _planned(planner, state, published, sid)
        planner.records(_batch(sid, assignment, "t.py::a"))
        now = time.time()
        completion = Completion(sid, assignment, number, "w@h", "local:h", "done", now, now, 0, len(TESTS))
        _race(partial(planner.completed, completion),
              partial(planner.records, _batch(sid, assignment, "t.py::b")),
              partial(planner.records, _batch(sid, assignment, "t.py::c")))
        name = keys.attempt_key(assignment, number)
        assert ends[name] == 1, f"{sid}: the attempt ended {ends[name]} times"
        a = state.attempt(sid, assignment, number)
        assert a is not None and a.state == "done" and a.received == len(TESTS)
        assert a.waiting_completion is None and state.r.hget(keys.held(sid), name) is None
        assert state.counts(sid) == {"passed": len(TESTS)}
        assert state.r.get(keys.report(sid)) is not None, f"{sid} did not finish"


def test_the_sweep_giving_up_and_the_last_batch_racing_end_the_attempt_once(redis_url: str,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A held completion whose grace is over: the sweep gives up on its records just as the last
    one arrives. One of them ends the attempt, never both; the record is counted either way."""
    import coordinator.deadlines as deadlines

    monkeypatch.setattr(deadlines, "COMPLETION_GRACE_S", 0.0)
    planner, state, published, ends = _planner(redis_url)
    _jitter(monkeypatch, state)
    for i in range(ROUNDS):
        sid = f"late{i}"
        assignment, number = _planned(planner, state, published, sid)
        planner.records(_batch(sid, assignment, "t.py::a", "t.py::b"))
        now = time.time()
        planner.completed(Completion(sid, assignment, number, "w@h", "local:h", "done", now, now, 0, len(TESTS)))
        assert ends[keys.attempt_key(assignment, number)] == 0, "the completion did not wait for its record"
        _race(planner.sweep, partial(planner.records, _batch(sid, assignment, "t.py::c")))
        name = keys.attempt_key(assignment, number)
        assert ends[name] == 1, f"{sid}: the attempt ended {ends[name]} times"
        assert state.attempt(sid, assignment, number).received == len(TESTS)  # type: ignore[union-attr]
        assert state.r.hget(keys.held(sid), name) is None


def _stores(url: str, now: list[float]) -> list[Any]:
    from coordinator.memory_store import MemoryStore

    real = SuiteState(redis.Redis.from_url(url), Settings(broker_url=url))
    real.r.hset(keys.WORKERS, "w@h", encode(WorkerInfo("w@h", "h", 1, "default", "local")))
    return [real, MemoryStore(clock=lambda: now[0])]


def _submitted(url: str, which: int, name: str) -> tuple[Any, Planner, list, str, list[float]]:
    """Store `which` (0 Redis, 1 in memory), a planner on it publishing into a list, and a suite
    submitted to it: (store, planner, published, suite id, the planner's clock)."""
    now = [time.time()]
    store = _stores(url, now)[which]
    published: list = []
    planner = Planner(store, Settings(broker_url=url), lambda spec: None,
                      lambda pool, a: published.append(a), clock=lambda: now[0])
    sid = f"{name}-{which}-{random.randrange(10**9)}"
    spec = SuiteSpec(sid, "proj", "0" * 64, "default", "load", (), now[0])
    if which == 0:
        store.r.hset(keys.suite(sid), mapping={"spec": encode(spec), "status": "submitted",
                                               "submitted_at": spec.submitted_at})
    else:
        store.submit(spec)
    return store, planner, published, sid, now


@pytest.mark.parametrize("which", [0, 1], ids=["redis", "memory"])
def test_a_completion_taken_by_a_batch_that_then_failed_is_ended_by_the_sweep_not_lost(
        redis_url: str, which: int) -> None:
    """The batch that takes the held completion can fail before the attempt's end is written (the
    broker away while a tail is published, a coordinator killed): the completion stays, marked
    taken, and the sweep ends the attempt after the grace, as it ended: `done`, not lost."""
    store, planner, published, sid, now = _submitted(redis_url, which, "taken")
    planner.submitted(sid)
    planner.collected(Collection(sid, "w@h", 0, TESTS[:2]))
    a = published[-1]
    try:
        planner.records(_batch(sid, a.assignment_id, TESTS[0]))
        planner.completed(Completion(sid, a.assignment_id, 1, "w@h", "local:h", "done", now[0], now[0] + 1, 0, 2))
        assert store.attempt(sid, a.assignment_id, 1).waiting_completion is not None  # held for 1 record

        end_attempt = planner.end_attempt

        def dies(c: Completion, *, records_lost: int = 0) -> None:
            raise ConnectionError("the broker went away")

        planner.end_attempt = dies  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            planner.records(_batch(sid, a.assignment_id, TESTS[1]))
        planner.end_attempt = end_attempt  # type: ignore[method-assign]
        planner.records(_batch(sid, a.assignment_id, TESTS[1]))  # redelivered: taken already, it waits
        assert store.attempt(sid, a.assignment_id, 1).state == "running"
        planner.sweep()  # within the grace: the taker may still be at work
        assert store.attempt(sid, a.assignment_id, 1).state == "running"
        now[0] += 3600
        planner.sweep()
        ended = store.attempt(sid, a.assignment_id, 1)
        assert ended.state == "done" and ended.exit_code == 0, ended
        assert ended.waiting_completion is None
        assert len(published) == 1, "a finished attempt was run again"
    finally:
        if which == 0:
            store.r.srem(keys.ACTIVE, sid)
            store.r.zrem(keys.SUBMITTED, sid)


def test_an_attempt_stored_by_an_older_coordinator_keeps_its_count_and_held_completion(redis_url: str) -> None:
    """Blobs written before the counter carry `received` and the held completion inside: they
    count, move to the counter on the next write, and the held completion still ends the attempt."""
    planner, state, published, ends = _planner(redis_url)
    sid = f"legacy-{random.randrange(10**9)}"
    assignment, number = _planned(planner, state, published, sid)
    name = keys.attempt_key(assignment, number)
    try:
        planner.records(_batch(sid, assignment, TESTS[0], TESTS[1]))
        now = time.time()
        held = encode(Completion(sid, assignment, 1, "w@h", "local:h", "done", now, now + 1, 0, 3))
        # What an older coordinator stored: the count and the completion in the blob, no hashes.
        bare = state.attempt(sid, assignment, number)
        assert bare is not None and bare.received == 2
        state.r.hset(keys.assignments(sid), name, bare.but(received=2, waiting_completion=held,
                                                           waiting_since=now - 3600).pack())
        state.r.delete(keys.received(sid), keys.held(sid))
        seen = state.attempt(sid, assignment, number)
        assert seen is not None and seen.received == 2 and seen.waiting_completion == held
        planner.records(_batch(sid, assignment, TESTS[2]))  # counted on top of the blob's 2
        assert state.attempt(sid, assignment, number).received == 3  # type: ignore[union-attr]
        state.change_attempt(sid, assignment, number, lambda x: x.but(message="rewritten"))
        assert state.r.hget(keys.received(sid), name) == b"3"  # moved to the counter
        rewritten = state.attempt(sid, assignment, number)
        assert rewritten is not None and rewritten.received == 3 and rewritten.waiting_completion == held
        assert ends[name] == 0  # the blob's held completion is not the counter's to end
        planner.sweep()  # its grace is long over: the sweep ends it, every record in
        assert ends[name] == 1
        assert state.attempt(sid, assignment, number).state == "done"  # type: ignore[union-attr]
    finally:
        state.r.srem(keys.ACTIVE, sid)
        state.r.zrem(keys.SUBMITTED, sid)


@pytest.mark.parametrize("which", [0, 1], ids=["redis", "memory"])
def test_a_batch_delivered_twice_is_counted_and_logged_once(redis_url: str, which: int) -> None:
    """Round 4's review: one batch merged twice through `Planner.records` counted 3 → 6. Numbered,
    its second delivery writes, counts and logs nothing."""
    store, planner, published, sid, now = _submitted(redis_url, which, "twice")
    try:
        planner.submitted(sid)
        planner.collected(Collection(sid, "w@h", 0, TESTS + ("t.py::d",)))
        a = published[-1]
        batch = _batch(sid, a.assignment_id, *TESTS, seq=2)
        planner.records(batch)
        logged = len(store.events(sid))
        planner.records(batch)  # delivered again
        assert store.attempt(sid, a.assignment_id, 1).received == 3  # type: ignore[union-attr]
        assert len(store.events(sid)) == logged, "the batch's merge was logged again"
        # The completion says 4 records were sent: it waits for the last, not ending the attempt early.
        planner.completed(Completion(sid, a.assignment_id, 1, "w@h", "local:h", "done", now[0], now[0] + 1, 0, 4))
        held = store.attempt(sid, a.assignment_id, 1)
        assert held is not None and held.state == "running" and held.waiting_completion is not None
        planner.records(batch)  # and again, with the completion held: still one batch short
        assert store.attempt(sid, a.assignment_id, 1).state == "running"  # type: ignore[union-attr]
        planner.records(_batch(sid, a.assignment_id, "t.py::d", seq=3))
        ended = store.attempt(sid, a.assignment_id, 1)
        assert ended is not None and ended.state == "done" and ended.received == 4
        assert store.counts(sid) == {"passed": 4}, "a test was reported not_run: the attempt ended early"
    finally:
        if which == 0:
            store.r.srem(keys.ACTIVE, sid)
            store.r.zrem(keys.SUBMITTED, sid)


def test_a_batch_without_a_number_counts_as_often_as_it_comes(redis_url: str) -> None:
    """An older worker's batch (no `seq`) keeps round 4's behaviour: each delivery is counted."""
    planner, state, published, _ = _planner(redis_url)
    sid = f"unnumbered-{random.randrange(10**9)}"
    assignment, number = _planned(planner, state, published, sid)
    try:
        planner.records(_batch(sid, assignment, *TESTS))
        planner.records(_batch(sid, assignment, *TESTS))
        assert state.attempt(sid, assignment, number).received == 6  # type: ignore[union-attr]
        assert state.r.exists(keys.batches(sid)) == 0
    finally:
        state.r.srem(keys.ACTIVE, sid)
        state.r.zrem(keys.SUBMITTED, sid)
