"""The report is a function of the event log, whatever the faults: a property over random schedules.

Kills (lost leases), duplicate batches and deliveries, completions before their records or
claiming records that never come, hand-backs, crash retries, reruns, coordinator restarts and
cancels, driven through the Planner over the stub store with a stepped clock. The same
schedules run over a real redis-server for a few fixed seeds in
tests/integration/test_event_log_redis.py."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fault_schedules import check, play
from support.scenarios import MemoryWorld


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_the_report_rebuilt_from_the_log_is_the_stored_one_under_any_faults(rnd: random.Random) -> None:
    w = MemoryWorld()
    tests = play(w, rnd)
    check(w, "fs", tests)
