"""The event log over a real redis-server: fixed seeds of the random fault schedules, the bound, the expiry,
and `farm events` over a log longer than one page."""

from __future__ import annotations

import random
from dataclasses import replace
from types import SimpleNamespace

import pytest
import redis
from support.fault_schedules import check, play
from support.scenarios import SETTINGS, RedisWorld

from coordinator.state import SuiteState
from farm import events, keys
from farm.attempts import Attempt
from farm.client import Client
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


def test_farm_events_prints_the_whole_log_past_one_page(redis_url: str) -> None:
    from click.testing import CliRunner

    from farm.cli_results import events as events_command
    from farm.model import SuiteSpec
    from farm.protocol import encode

    spec = SuiteSpec("long", "p", "0" * 64, "default", "load", (), 100.0)
    r = redis.Redis.from_url(redis_url)
    r.hset(keys.suite("long"), mapping={"spec": encode(spec), "status": "running"})
    total = 2500  # two and a half of the client's pages of 1000
    pipe = r.pipeline()
    events.append(pipe, "long", events.submitted(spec), tests=total, ttl_s=600)
    for i in range(1, total):
        events.append(pipe, "long", events.Event(events.Kind.STARTED, 100.0 + i, assignment=f"long-a{i:04d}",
                                                 attempt=1), tests=total, ttl_s=600)
    pipe.execute()
    assert r.xlen(keys.events("long")) == total
    result = CliRunner().invoke(events_command, ["long", "--broker", redis_url])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == total
    assert "long-a2499#1" in lines[-1]


def test_a_cancel_asked_twice_is_flagged_and_logged_once(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.hset(keys.suite("c1"), mapping={"status": "running", "total": 3})
    client = Client(replace(SETTINGS, broker_url=redis_url, state_url=redis_url))
    sent: list[list[str]] = []
    client._app = SimpleNamespace(send_task=lambda name, args: sent.append(args))
    try:
        assert client.cancel("c1") is None
        first = r.hget(keys.suite("c1"), "cancel")
        assert client.cancel("c1") is None
        assert r.hget(keys.suite("c1"), "cancel") == first, "the first request's time is kept"
        kinds = [e.kind for e in client.events("c1")[1]]
        assert kinds == [events.Kind.CANCEL], "the first request is logged, and only it"
        assert sent == [["c1"], ["c1"]]  # the coordinator is told each time; it acts on the flag
    finally:
        r.delete(*keys.suite_keys("c1"))
