"""Run-time balancing weighs a split against the runner start-up measured in the suite (not a
constant): a first run on a fast machine splits tails a fixed 0.5-1 s floor would keep."""

from __future__ import annotations

import pytest

from coordinator import balance, transitions
from farm.attempts import Attempt
from farm.model import Completion
from farm.states import AttemptState

IDS = tuple(f"t.py::t{i}" for i in range(6))


def _ended(aid: str, startup_s: float) -> Attempt:
    return Attempt.planned(aid, 1, IDS, now=0.0).but(state=AttemptState.DONE, wall_s=2.0, startup_s=startup_s)


def test_the_start_cost_is_the_cheapest_start_up_measured_in_the_suite() -> None:
    ended = [_ended("s-a000", 0.9), _ended("s-a001", 0.25), _ended("s-a002", 0.0)]  # 0.0: ran no test
    assert balance.start_cost(ended, 3.0) == 0.25  # measured now beats the recorded overhead
    assert balance.start_cost([_ended("s-a000", 4.0)], None) == balance.DEFAULT_OVERHEAD_S  # never less willing
    assert balance.start_cost([_ended("s-a000", 0.0)], 3.0) == 3.0  # nothing measured: the history's
    assert balance.start_cost([], None) == balance.DEFAULT_OVERHEAD_S


def test_a_cheap_start_up_makes_a_short_tail_worth_a_runner() -> None:
    # 1 s left in 5 tests: the tail (2 tests) gains 0.4 s for a 0.1 s start-up; no fixed floor refuses it.
    assert balance.cut([0.2] * 5, 0.1) == (3, pytest.approx(0.6))
    assert balance.cut([0.2] * 5, 0.5) is None  # a 0.5 s start-up costs more than the 0.4 s it gains


def test_a_first_run_attempt_splits_by_its_pace_when_the_measured_start_up_is_cheap() -> None:
    a = Attempt.planned("s-a000", 1, IDS, now=0.0).but(state=AttemptState.RUNNING)
    slow = balance.Running(a, IDS[1:], pace_s=0.2)  # no history: its own pace, 0.2 s per test
    (ask,) = balance.to_split([slow], idle=1, durations={}, mean_s=1.0, overhead_s=0.1)
    assert ask.tail == IDS[4:]
    assert balance.to_split([slow], idle=1, durations={}, mean_s=1.0, overhead_s=1.0) == []


def test_an_ended_attempt_keeps_the_start_up_its_completion_measured_and_stores_it() -> None:
    a = Attempt.planned("s-a000", 1, IDS, now=0.0).but(state=AttemptState.RUNNING)
    c = Completion("s", "s-a000", 1, "w", "local:h", "done", 100.0, 103.0, 0, 6, startup_s=0.42)
    done = transitions.ended(a, c)
    assert done.startup_s == 0.42
    assert Attempt.from_stored(done.to_stored()).startup_s == 0.42
    assert "startup_s" not in a.to_stored()  # not measured: not stored (older farms' form)


def test_without_durations_the_attempt_with_the_most_unstarted_tests_gives_away_their_later_half() -> None:
    ids = tuple(f"t.py::u{i}" for i in range(12))
    stuck = balance.Running(Attempt.planned("s-a000", 1, ids[:3], now=0.0).but(state=AttemptState.RUNNING),
                            ids[:3], pace_s=5.0)  # in a long test: its pace says 15 s left, in 2 unstarted tests
    loaded = balance.Running(Attempt.planned("s-a001", 1, ids[3:], now=0.0).but(state=AttemptState.RUNNING),
                             ids[3:], pace_s=0.5)  # 8 unstarted tests: as far as anyone knows, more work
    (ask,) = balance.to_split([stuck, loaded], idle=1, durations={}, mean_s=0.5, overhead_s=0.3)
    assert ask.attempt.assignment_id == "s-a001" and ask.tail == ids[8:]  # the later 4 of its 8 unstarted
    both = balance.to_split([stuck, loaded], idle=2, durations={}, mean_s=0.5, overhead_s=0.3)
    assert [a.attempt.assignment_id for a in both] == ["s-a001", "s-a000"]


def test_the_unstarted_half_is_asked_only_when_it_is_worth_a_runner_start() -> None:
    assert balance.unstarted_half([1.0] * 6, 1.0) == (3, 4.0)  # the first may be running; 5 unstarted: 3 go
    assert balance.unstarted_half([0.2] * 3, 0.5) is None  # 0.2 s tail for a 0.5 s start-up
    assert balance.unstarted_half([0.2] * 3, 0.1) == (2, pytest.approx(0.4))
    assert balance.unstarted_half([3.0], 0.1) is None  # nothing unstarted to give


def test_the_start_cost_never_falls_below_its_floor() -> None:
    """A near-zero figure (a recorded overhead of ~0, clocks off between runner and worker) would
    have every idle slot ask for a cut of any gain."""
    assert balance.start_cost([_ended("s-a000", 0.001)], 3.0) == balance.MIN_START_COST_S
    assert balance.start_cost([], 0.0) == balance.MIN_START_COST_S


def test_a_runner_clock_off_from_the_workers_gives_a_start_up_on_the_workers_clock() -> None:
    """A VM's or SSH host's clock may be hours off: its stamp is not subtracted from the worker's."""
    from farm.model import Assignment, TestRecord
    from farm.outcomes import Outcome
    from workers.runner import _Stream

    class Clock:
        now = 1000.0

        def time(self) -> float:
            return self.now

        def monotonic(self) -> float:
            return self.now

    class Sink:
        def send_batch(self, batch: object) -> None:
            pass

    clock = Clock()
    a = Assignment("s", "s-a000", 1, "0" * 64, (), ("t.py::a",))
    skewed = _Stream(Sink(), a, "w", "vm:1", 100, 1.0, clock=clock, attempt_started_at=998.0)  # type: ignore[arg-type]
    clock.now = 1003.0  # the record arrives 5 s into the attempt; its test took 0.5 s
    skewed.add(TestRecord("t.py::a", Outcome.PASSED, 0.5, started_at=1000.0 + 7200))  # the guest is 2 h ahead
    assert skewed.first_started_at == 1002.5
    same = _Stream(Sink(), a, "w", "local:h", 100, 1.0, clock=clock, attempt_started_at=998.0)  # type: ignore[arg-type]
    same.add(TestRecord("t.py::a", Outcome.PASSED, 0.5, started_at=1001.0))  # one clock: the stamp is exact
    assert same.first_started_at == 1001.0
