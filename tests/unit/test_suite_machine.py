"""The coordinator's Planner driven through whole suites over the stub store, with a stepped clock.

No service: the same scenarios run over a real redis-server in
tests/integration/test_suite_scenarios.py."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from support.finish_scenarios import FINISH_SCENARIOS
from support.quality_scenarios import QUALITY_SCENARIOS
from support.scenarios import SCENARIOS, MemoryWorld, World

from coordinator.memory_store import MemoryStore
from farm.attempts import Attempt
from farm.model import Collection, SuiteSpec, TestRecord
from farm.outcomes import Outcome


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_scenario_over_the_stub_store(scenario: Callable[[World], None]) -> None:
    scenario(MemoryWorld())


def test_the_stub_store_merges_concurrent_duplicate_batches_once() -> None:
    """As tests/integration/test_state.py proves of SuiteState: every method is atomic."""
    store = MemoryStore()
    ids = [f"t.py::test_{i}" for i in range(300)]
    store.submit(SuiteSpec("s1", "p", "0" * 64, "default", "load", (), 0.0))
    assert store.start_collecting("s1", 0.0)
    assert store.plan(Collection("s1", "w", 0, tuple(ids)), ids, [Attempt.planned("s1-a000", 1, ids, now=0.0)],
                      now=0.0)
    records = [TestRecord(t, Outcome.FAILED if i % 7 == 0 else Outcome.PASSED, 0.01) for i, t in enumerate(ids)]

    def deliver() -> None:
        for i in range(0, len(records), 50):
            store.merge("s1", records[i:i + 50], assignment="s1-a000", attempt=1, worker="w", node="n")

    threads = [threading.Thread(target=deliver) for _ in range(6)]  # every batch delivered 6 times
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.total_and_done("s1") == (300, 300)
    assert store.counts("s1") == {"failed": 43, "passed": 257}
    assert len(store.test_runs("s1")) == 300


@pytest.mark.parametrize("scenario", FINISH_SCENARIOS, ids=lambda s: s.__name__)
def test_finish_scenario_over_the_stub_store(scenario: Callable[[World], None]) -> None:
    scenario(MemoryWorld())


@pytest.mark.parametrize("scenario", QUALITY_SCENARIOS, ids=lambda s: s.__name__)
def test_quality_scenario_over_the_stub_store(scenario: Callable[[World], None]) -> None:
    scenario(MemoryWorld())
