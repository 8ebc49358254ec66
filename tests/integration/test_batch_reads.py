"""What a batch reads of its attempt (issue 10, (d)), over the real Redis store and the stub store.

A batch of an attempt the coordinator has seen started with its node does not read the attempt
(every test id of its assignment) when it owns every test of the batch; a record of a test it was
not given is still dropped (neither counted, nor written as a test run, nor in `received`).
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
import redis

from coordinator.memory_store import MemoryStore
from coordinator.planner import Planner
from coordinator.state import SuiteState
from farm import keys
from farm.config import Settings
from farm.model import Collection, RecordBatch, SuiteSpec, TestRecord, WorkerInfo
from farm.outcomes import Outcome
from farm.protocol import encode

TESTS = ("t.py::a", "t.py::b", "t.py::c")


def _store(url: str, which: str) -> Any:
    if which == "memory":
        return MemoryStore()
    real = SuiteState(redis.Redis.from_url(url), Settings(broker_url=url))
    real.r.hset(keys.WORKERS, "w@h", encode(WorkerInfo("w@h", "h", 1, "default", "local")))
    return real


def _planned(url: str, which: str) -> tuple[Planner, Any, str, str, list[int] | None]:
    """A planned suite of TESTS in one assignment; `reads` counts the Redis store's attempt reads
    (the stub store reads its own attempts inside its methods: a dict lookup, not counted)."""
    store = _store(url, which)
    published: list = []
    planner = Planner(store, Settings(broker_url=url), lambda spec: None, lambda pool, a: published.append(a))
    sid = f"reads-{which}-{random.randrange(10**9)}"
    spec = SuiteSpec(sid, "proj", "0" * 64, "default", "load", (), time.time())
    if which == "redis":
        store.r.hset(keys.suite(sid), mapping={"spec": encode(spec), "status": "submitted",
                                               "submitted_at": spec.submitted_at})
    else:
        store.submit(spec)
    planner.submitted(sid)
    planner.collected(Collection(sid, "w@h", 0, TESTS))
    assert len(published) == 1 and set(published[0].test_ids) == set(TESTS)
    reads = [0]
    if which == "memory":
        return planner, store, sid, published[0].assignment_id, None
    attempt = store.attempt

    def counted(*args: Any) -> Any:
        reads[0] += 1
        return attempt(*args)

    store.attempt = counted
    return planner, store, sid, published[0].assignment_id, reads


def _batch(sid: str, assignment: str, *tests: str) -> RecordBatch:
    return RecordBatch(sid, assignment, 1, "w@h", "local:h", tuple(TestRecord(t, Outcome.PASSED) for t in tests))


@pytest.mark.parametrize("which", ["redis", "memory"])
def test_a_started_attempts_batches_do_not_read_it(redis_url: str, which: str) -> None:
    planner, store, sid, assignment, reads = _planned(redis_url, which)
    planner.records(_batch(sid, assignment))  # the first (empty) batch: the attempt starts
    assert reads is None or reads[0] == 1
    assert store.attempt(sid, assignment, 1).node == "local:h"
    if reads is not None:
        reads[0] = 0
    planner.records(_batch(sid, assignment, "t.py::a"))
    planner.records(_batch(sid, assignment, "t.py::b", "t.py::a"))  # `a` again: counted once
    assert reads is None or reads[0] == 0, "a batch of an attempt known started read the attempt"
    assert store.counts(sid) == {"passed": 2}
    assert store.total_and_done(sid) == (3, 2)
    assert store.attempt(sid, assignment, 1).received == 3


@pytest.mark.parametrize("which", ["redis", "memory"])
def test_a_record_of_a_test_not_given_is_still_dropped(redis_url: str, which: str) -> None:
    planner, store, sid, assignment, reads = _planned(redis_url, which)
    planner.records(_batch(sid, assignment))
    if reads is not None:
        reads[0] = 0
    planner.records(_batch(sid, assignment, "t.py::c", "elsewhere.py::x"))
    assert reads is None or reads[0] == 1  # read only because the batch has a test it does not own
    assert store.counts(sid) == {"passed": 1}
    assert {run.test_id for run in store.test_runs(sid)} == {"t.py::c"}, "the record not given was written"
    assert store.attempt(sid, assignment, 1).received == 1


def _round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts what the client sends to Redis: one send per command or pipeline, a round trip each."""
    sent = [0]
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return send(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    return sent


def test_a_started_attempts_batch_is_one_round_trip(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The merge's check of what it assumed, its write, the held completion and the suite's counts
    are one call: a batch that ends nothing costs one round trip (it was five: WATCH, the read,
    EXEC, the held completion, `total_and_done`)."""
    planner, store, sid, assignment, _ = _planned(redis_url, "redis")
    planner.records(_batch(sid, assignment))  # the first (empty) batch: the attempt starts
    planner.records(_batch(sid, assignment, "t.py::a"))  # loads the merge's script once
    sent = _round_trips(monkeypatch)
    planner.records(_batch(sid, assignment, "t.py::b"))
    assert sent[0] == 1
    assert store.counts(sid) == {"passed": 2}
    assert store.attempt(sid, assignment, 1).received == 2
    assert [e.kind for e in store.events(sid)][-1] == "records"


def test_a_merge_that_assumed_wrong_decides_again_on_what_is_stored(redis_url: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch delivered twice: its second merge assumed its tests pending, finds them passed,
    and decides again on that (a second round trip): nothing counted twice."""
    planner, store, sid, assignment, _ = _planned(redis_url, "redis")
    planner.records(_batch(sid, assignment))
    planner.records(_batch(sid, assignment, "t.py::a"))
    sent = _round_trips(monkeypatch)
    planner.records(_batch(sid, assignment, "t.py::a"))
    assert sent[0] == 2
    assert store.counts(sid) == {"passed": 1}
    assert store.total_and_done(sid) == (3, 1)
    assert {run.test_id for run in store.test_runs(sid)} == {"t.py::a"}
