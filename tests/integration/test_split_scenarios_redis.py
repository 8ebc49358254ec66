"""Run-time balancing through the Planner over a real redis-server (tests/support/split_scenarios.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.scenarios import RedisWorld, World
from support.split_scenarios import SPLIT_SCENARIOS


@pytest.mark.parametrize("scenario", SPLIT_SCENARIOS, ids=lambda s: s.__name__)
def test_split_scenario_over_redis(scenario: Callable[[World], None], redis_url: str) -> None:
    scenario(RedisWorld(redis_url))
