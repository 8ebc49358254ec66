"""The coordinator's Planner driven through whole suites over the stub store, with a stepped clock.

No service: the same scenarios run over a real redis-server in
tests/integration/test_suite_scenarios.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.scenarios import SCENARIOS, MemoryWorld, World


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_scenario_over_the_stub_store(scenario: Callable[[World], None]) -> None:
    scenario(MemoryWorld())
