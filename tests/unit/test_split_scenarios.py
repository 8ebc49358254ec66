"""Run-time balancing through the Planner over the stub store (tests/support/split_scenarios.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.scenarios import MemoryWorld, World
from support.split_scenarios import SPLIT_SCENARIOS


@pytest.mark.parametrize("scenario", SPLIT_SCENARIOS, ids=lambda s: s.__name__)
def test_split_scenario_over_the_stub_store(scenario: Callable[[World], None]) -> None:
    scenario(MemoryWorld())
