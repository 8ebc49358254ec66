"""The ETA from the plan's expected durations: the slow assignment that runs alone at the end counts."""

from __future__ import annotations

import pytest

from farm.eta import SuiteEta


def test_no_recorded_durations_means_no_eta() -> None:
    eta = SuiteEta([("a0", 0.0), ("a1", 0.0)], slots=2, started_at=100.0)
    assert eta.remaining(101.0) is None


def test_the_last_slow_assignment_alone_keeps_an_eta_that_counts_down() -> None:
    """Seven quick slices and one of 9 s on two slots: once the quick ones ended (nearly every
    test done), the ETA is the slow one's time left, not 0.0s."""
    plan = [("slow", 9.0)] + [(f"q{i}", 0.5) for i in range(7)]
    eta = SuiteEta(plan, slots=2, started_at=100.0)
    assert eta.remaining(100.0) == pytest.approx(9.0)
    eta.ended([f"q{i}" for i in range(7)], now=104.0)
    assert eta.remaining(104.0) == pytest.approx(5.0)
    assert eta.remaining(107.5) == pytest.approx(1.5)


def test_queued_work_waits_for_the_first_free_slot_and_overhead_counts() -> None:
    eta = SuiteEta([("a", 4.0), ("b", 4.0), ("c", 2.0)], slots=2, started_at=0.0, overhead_s=0.5)
    # a and b run at once (4.5 s each), c follows on the first freed slot: ends at 7.0.
    assert eta.remaining(1.0) == pytest.approx(6.0)
    eta.ended(["a"], now=3.0)  # a ended early: c starts at 3.0, ends at 5.5; b ends at 4.5
    assert eta.remaining(3.0) == pytest.approx(2.5)


def test_work_published_later_joins_the_estimate() -> None:
    eta = SuiteEta([("a", 2.0)], slots=1, started_at=0.0)
    eta.ended(["a"], now=2.0)
    assert eta.remaining(2.0) is None  # nothing left open
    eta.published("a-r01", 3.0, now=2.5)
    eta.published("a-r01", 99.0, now=2.6)  # seen again: ignored
    assert eta.remaining(2.5) == pytest.approx(3.0)


def test_when_everything_open_overran_its_expectation_there_is_no_eta() -> None:
    eta = SuiteEta([("a", 2.0), ("b", 1.0)], slots=2, started_at=0.0)
    eta.ended(["b"], now=1.0)
    assert eta.remaining(1.5) == pytest.approx(0.5)
    assert eta.remaining(5.0) is None  # a is overdue: unknown, never a made-up 0.0s
