"""Staged suites driven through the Planner over the stub store (the same scenarios run over Redis
in tests/integration/test_suite_scenarios.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.scenarios import MemoryWorld, World
from support.stage_scenarios import STAGE_SCENARIOS


@pytest.mark.parametrize("scenario", STAGE_SCENARIOS, ids=lambda s: s.__name__)
def test_stage_scenario_over_the_stub_store(scenario: Callable[[World], None]) -> None:
    scenario(MemoryWorld())
