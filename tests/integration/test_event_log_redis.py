"""The event log over a real redis-server: fixed seeds of the random fault schedules, the bound, the expiry."""

from __future__ import annotations

import random

import pytest
import redis
from support.fault_schedules import check, play
from support.scenarios import SETTINGS, RedisWorld

from coordinator.state import SuiteState
from farm import events, keys
from farm.attempts import Attempt
from farm.model import Collection, TestRecord
from farm.outcomes import Outcome

#: Seeds whose schedules, over the stub store, include lost leases, hand-backs, fenced records,
#: crash retries or reruns, restarts, cancels and deadlines between them.
SEEDS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_report_rebuilt_from_the_redis_log_is_the_stored_one(seed: int, redis_url: str) -> None:
    w = RedisWorld(redis_url)
    tests = play(w, random.Random(seed), sid=f"fs{seed}")
    check(w, f"fs{seed}", tests)


def test_the_log_is_bounded_and_expires_with_the_suite(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    state = SuiteState(r, SETTINGS)
    ids = ["t.py::a", "t.py::b"]
    r.hset(keys.suite("big"), mapping={"spec": b"", "status": "collecting"})
    assert state.plan(Collection("big", "w", 0, tuple(ids)), ids, [Attempt.planned("big-a000", 1, ids, now=1.0)],
                      now=1.0)
    for _ in range(events.cap(len(ids)) + 50):  # far more batches than a suite of 2 tests sends
        state.merge("big", [TestRecord("t.py::a", Outcome.PASSED)], assignment="big-a000", attempt=1, worker="w",
                    node="n", kind=events.Kind.DEADLINE)
    assert r.xlen(keys.events("big")) == events.cap(len(ids))
    assert 0 < r.ttl(keys.events("big")) <= SETTINGS.suite_ttl_s
