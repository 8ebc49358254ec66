"""The scenarios of tests/unit/test_suite_machine.py over a real redis-server (SuiteState, not the stub)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.finish_scenarios import FINISH_SCENARIOS
from support.quality_scenarios import QUALITY_SCENARIOS
from support.scenarios import SCENARIOS, RedisWorld, World
from support.stage_scenarios import STAGE_SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_scenario_over_redis(scenario: Callable[[World], None], redis_url: str) -> None:
    scenario(RedisWorld(redis_url))


@pytest.mark.parametrize("scenario", FINISH_SCENARIOS, ids=lambda s: s.__name__)
def test_finish_scenario_over_redis(scenario: Callable[[World], None], redis_url: str) -> None:
    scenario(RedisWorld(redis_url))


@pytest.mark.parametrize("scenario", QUALITY_SCENARIOS, ids=lambda s: s.__name__)
def test_quality_scenario_over_redis(scenario: Callable[[World], None], redis_url: str) -> None:
    scenario(RedisWorld(redis_url))


@pytest.mark.parametrize("scenario", STAGE_SCENARIOS, ids=lambda s: s.__name__)
def test_stage_scenario_over_redis(scenario: Callable[[World], None], redis_url: str) -> None:
    scenario(RedisWorld(redis_url))
