"""The run history a finish writes, over the stub store (the same scenarios run over Redis:
tests/integration/test_run_history_redis.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.history_scenarios import HISTORY_SCENARIOS
from support.scenarios import MemoryWorld, World


@pytest.mark.parametrize("scenario", HISTORY_SCENARIOS, ids=lambda s: s.__name__)
def test_run_history_over_the_stub_store(scenario: Callable[[World], None]) -> None:
    scenario(MemoryWorld())
