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


def _batch(sid: str, assignment: str, *tests: str) -> RecordBatch:
    return RecordBatch(sid, assignment, 1, "w@h", "local:h", tuple(TestRecord(t, Outcome.PASSED) for t in tests))


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
