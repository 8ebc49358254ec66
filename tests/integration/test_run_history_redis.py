"""The run history a finish writes, over a real redis-server (its ring script, its bounds, its expiry)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from support.history_scenarios import HISTORY_SCENARIOS, run_suite
from support.scenarios import SETTINGS, RedisWorld, World

from farm import keys
from farm.run_history import ring_durations


@pytest.mark.parametrize("scenario", HISTORY_SCENARIOS, ids=lambda s: s.__name__)
def test_run_history_over_redis(scenario: Callable[[World], None], redis_url: str) -> None:
    scenario(RedisWorld(redis_url))


def test_the_run_history_expires_with_the_durations(redis_url: str) -> None:
    w = RedisWorld(redis_url)
    w.add_worker("w1@h")
    run_suite(w, 1, {}, {})
    r = redis.Redis.from_url(redis_url)
    for key in (keys.history_runs("proj"), keys.history_times("proj")):
        assert 0 < r.ttl(key) <= SETTINGS.history_ttl_s, key


def test_a_redis_that_lost_its_scripts_still_gets_the_rings(redis_url: str) -> None:
    """A restarted Redis has no scripts: the finish's MULTI loads the ring script again first."""
    w = RedisWorld(redis_url)
    w.add_worker("w1@h")
    run_suite(w, 1, {}, {"t.py::a": 1.0})
    redis.Redis.from_url(redis_url).script_flush()
    run_suite(w, 2, {}, {"t.py::a": 2.0})
    runs, rings = w.store.run_history("proj")
    assert len(runs) == 2 and ring_durations(rings["t.py::a"]) == [1.0, 2.0]
