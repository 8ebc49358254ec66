"""SuiteState against a real redis-server: atomic, idempotent merges under concurrency."""

from __future__ import annotations

import threading

import redis

from coordinator.state import SuiteState
from farm import keys
from farm.attempts import Attempt
from farm.config import Settings
from farm.model import Collection, TestRecord
from farm.outcomes import Outcome
from farm.states import AttemptState


def _state(url: str) -> SuiteState:
    return SuiteState(redis.Redis.from_url(url), Settings(broker_url=url))


def _planned(state: SuiteState, sid: str, ids: list[str]) -> None:
    state.r.hset(keys.suite(sid), mapping={"status": "collecting"})
    planned = [Attempt.planned(f"{sid}-a000", 1, ids, now=0.0)]
    assert state.plan(Collection(sid, "w", 0, tuple(ids)), ids, planned, now=0.0)


def test_concurrent_duplicate_batches_count_each_test_once(redis_url: str) -> None:
    state = _state(redis_url)
    ids = [f"t.py::test_{i}" for i in range(300)]
    _planned(state, "s1", ids)
    records = [TestRecord(t, Outcome.FAILED if i % 7 == 0 else Outcome.PASSED, 0.01) for i, t in enumerate(ids)]
    batches = [records[i:i + 50] for i in range(0, len(records), 50)]

    def deliver() -> None:
        mine = _state(redis_url)
        for batch in batches:
            mine.merge("s1", batch, assignment="s1-a000", attempt=1, worker="w", node="n")

    threads = [threading.Thread(target=deliver) for _ in range(6)]  # every batch delivered 6 times
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.total_and_done("s1") == (300, 300)
    counts = state.counts("s1")
    assert counts == {"failed": 43, "passed": 257}
    assert len(state.counted("s1")) == 300
    assert len(state.test_runs("s1")) == 300  # one row per (test, assignment, attempt)


def test_late_not_run_never_downgrades_and_real_result_upgrades_not_run(redis_url: str) -> None:
    state = _state(redis_url)
    _planned(state, "s2", ["a", "b"])
    state.merge("s2", [TestRecord("a", Outcome.PASSED)], assignment="s2-a000", attempt=1, worker="w", node="n")
    state.merge("s2", [TestRecord("a", Outcome.NOT_RUN), TestRecord("b", Outcome.NOT_RUN)], assignment="s2-a000",
                attempt=1, worker="w", node="n")
    assert state.counts("s2") == {"passed": 1, "not_run": 1}
    state.merge("s2", [TestRecord("b", Outcome.FAILED)], assignment="s2-a000", attempt=1, worker="w", node="n")
    assert state.counts("s2") == {"passed": 1, "not_run": 0, "failed": 1}
    assert state.total_and_done("s2") == (2, 2)


def test_records_for_tests_the_suite_does_not_have_are_not_counted(redis_url: str) -> None:
    state = _state(redis_url)
    _planned(state, "s3", ["a"])
    result = state.merge("s3", [TestRecord("zzz", Outcome.PASSED)], assignment="s3-a000", attempt=1, worker="w",
                         node="n")
    assert result.unknown == ["zzz"]
    assert state.total_and_done("s3") == (1, 0)


def test_plan_happens_once_even_if_collection_is_delivered_twice(redis_url: str) -> None:
    state = _state(redis_url)
    _planned(state, "s4", ["a", "b"])
    again = state.plan(Collection("s4", "w", 0, ("a", "b")), ["a", "b"], [Attempt.planned("s4-a000", 1, "ab", now=0.0)],
                       now=0.0)
    assert again is False


def test_records_of_a_lost_attempt_are_fenced_after_its_tests_moved_on(redis_url: str) -> None:
    state = _state(redis_url)
    _planned(state, "s5", ["a", "b", "c"])
    state.merge("s5", [TestRecord("a", Outcome.PASSED)], assignment="s5-a000", attempt=1, worker="w1", node="n")
    first = state.change_attempt("s5", "s5-a000", 1, lambda a: a.but(state=AttemptState.RUNNING))
    assert first is not None
    moved = state.requeue("s5", first, "lost", now=1.0)
    assert moved == ["b", "c"]  # "a" already counted: it stays
    assert state.requeue("s5", first, "lost", now=1.0) == []  # once only
    # The old attempt's late records: kept as history, never counted.
    late = state.merge("s5", [TestRecord("b", Outcome.FAILED)], assignment="s5-a000", attempt=1, worker="w1",
                       node="n")
    assert late.fenced == 1 and not late.counted
    # The new attempt's count.
    state.merge("s5", [TestRecord("b", Outcome.PASSED), TestRecord("c", Outcome.PASSED)], assignment="s5-a000",
                attempt=2, worker="w2", node="n")
    assert state.counts("s5") == {"passed": 3}
    rows = {(r.test_id, r.attempt): r.fenced for r in state.test_runs("s5")}
    assert rows == {("a", 1): False, ("b", 1): True, ("b", 2): False, ("c", 2): False}
    assert [(a.number, a.state) for a in state.attempts("s5")] == [(1, "lost"), (2, "queued")]
