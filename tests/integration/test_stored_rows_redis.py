"""The records and test runs SuiteState keeps in Redis: arrays now, and an older farm's maps still read."""

from __future__ import annotations

from dataclasses import asdict

import msgpack
import redis

from coordinator.state import SuiteState
from farm import keys
from farm.attempts import Attempt
from farm.config import Settings
from farm.model import Collection, TestRecord, TestRun, record_to_plain
from farm.outcomes import Outcome


def _state(url: str) -> SuiteState:
    return SuiteState(redis.Redis.from_url(url), Settings(broker_url=url))


def test_records_and_runs_are_stored_as_arrays_and_maps_still_read(redis_url: str) -> None:
    state = _state(redis_url)
    ids = ["t.py::a", "t.py::b"]
    state.r.hset(keys.suite("s"), mapping={"status": "collecting"})
    assert state.plan(Collection("s", "w", 0, tuple(ids)), ids, [Attempt.planned("s-a000", 1, ids, now=0.0)], now=0.0)
    a = TestRecord("t.py::a", Outcome.FAILED, 0.5, longrepr="boom", started_at=3.0)
    state.merge("s", [a], assignment="s-a000", attempt=1, worker="w", node="n")
    stored = msgpack.unpackb(state.r.hget(keys.records("s"), "t.py::a"), raw=False)
    assert isinstance(stored, list)  # main stored a map with every field's name
    run_a = TestRun("t.py::a", "s-a000", 1, "w", "n", "failed", 0.5, 3.0)
    assert isinstance(msgpack.unpackb(state.r.hget(keys.attempts("s"), run_a.key), raw=False), list)
    # b as an older farm stored it
    b = TestRecord("t.py::b", Outcome.PASSED, 0.1)
    run_b = TestRun("t.py::b", "s-a000", 1, "w2", "n", "passed", 0.1, 0.0)
    state.r.hset(keys.records("s"), "t.py::b", msgpack.packb(record_to_plain(b), use_bin_type=True))
    state.r.hset(keys.attempts("s"), run_b.key, msgpack.packb(asdict(run_b), use_bin_type=True))
    assert state.counted("s") == {"t.py::a": a, "t.py::b": b}
    assert sorted(state.test_runs("s"), key=lambda r: r.test_id) == [run_a, run_b]
    state.r.hset(keys.owners("s"), "t.py::b", "s-a000#1")
    assert state.last_workers("s", ids) == {"t.py::a": "w", "t.py::b": "w2"}


def test_a_merge_of_thousands_of_records_reads_each_tests_state(redis_url: str) -> None:
    """The merge's one-round-trip read takes the ids in chunks (Lua's unpack has a limit)."""
    state = _state(redis_url)
    ids = [f"t.py::test_{i}" for i in range(2500)]
    state.r.hset(keys.suite("s"), mapping={"status": "collecting"})
    assert state.plan(Collection("s", "w", 0, tuple(ids)), ids, [Attempt.planned("s-a000", 1, ids, now=0.0)], now=0.0)
    state.r.hset(keys.reruns("s"), ids[2200], 1)  # failed before: its pass now is flaky
    state.merge("s", [TestRecord(t, Outcome.PASSED, 0.1) for t in ids[:2001]], assignment="s-a000", attempt=1,
                worker="w", node="n")
    state.r.hset(keys.owners("s"), ids[2400], "s-a000#2")  # moved on: this attempt's record is fenced
    result = state.merge("s", [TestRecord(t, Outcome.PASSED, 0.1) for t in ids[1990:]], assignment="s-a000",
                         attempt=1, worker="w", node="n")
    assert result.newly_final == 498 and result.fenced == 1
    assert state.counts("s") == {"passed": 2498, "flaky": 1}
    assert state.total_and_done("s") == (2500, 2499)
