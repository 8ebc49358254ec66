"""Publish priorities of a plan (coordinator.splitting.priorities, used by coordinator.machine.plan):
an assignment with slack against the longest one gets a priority (its runner's niceness) past
the cap; a balanced plan keeps its indexes; the publish order is the same either way."""

from __future__ import annotations

from coordinator import machine
from coordinator.splitting import SLACK_PRIORITY, priorities
from farm.config import Settings
from farm.model import SuiteSpec
from workers.runner import MAX_NICENESS


def test_assignments_with_slack_against_the_longest_get_the_highest_niceness() -> None:
    got = priorities([11.1, 7.4, 7.3, 7.3, 2.0])
    assert got[0] == 0
    assert all(min(MAX_NICENESS, p) == MAX_NICENESS for p in got[1:])
    assert got == sorted(got)  # the order they are published (and the ETA reads them) in


def test_a_balanced_plan_keeps_its_indexes() -> None:
    assert priorities([3.0, 2.9, 2.9, 2.5]) == [0, 1, 2, 3]  # within a second of the longest
    assert priorities([60.0, 56.0, 55.0]) == [0, 1, 2]  # within a tenth of it
    assert priorities([0.0] * 4) == [0, 1, 2, 3]  # no durations
    assert priorities([]) == []
    assert priorities([5.0, 3.5]) == [0, 1 + SLACK_PRIORITY]


def test_the_skewed_plan_puts_only_the_long_test_at_niceness_zero() -> None:
    ids = [f"t{m}.py::test_{i}" for m in range(4) for i in range(10)]
    durations = {t: 0.2 for t in ids} | {ids[25]: 6.0}
    spec = SuiteSpec("s-1", "p", "d" * 64, "default", "load", (), 0.0)
    plan = machine.plan(spec, ids, durations=durations, slots=4,
                        settings=Settings(broker_url="redis://unused", min_assignment_s=0.5), now=0.0)
    first = plan[0]
    assert ids[25] in first.test_ids and first.priority == 0
    assert [min(MAX_NICENESS, a.priority) for a in plan[1:]] == [MAX_NICENESS] * (len(plan) - 1)


def test_a_tail_split_off_at_run_time_is_not_left_at_its_parents_slack_niceness() -> None:
    from coordinator.transitions import split_off
    from farm.attempts import Attempt

    old = Attempt.planned("s-a001", 1, ["a", "b", "c", "d"], now=0.0, expected_s=7.4, priority=SLACK_PRIORITY + 1)
    got = split_off(old, ("c", "d"), {t: "pending" for t in "abcd"}, {t: old.key for t in "abcd"}, seq=1, now=1.0)
    assert got is not None
    head, tail = got
    assert head.priority == old.priority  # the head runs on, as it was
    # Balancing splits the attempt with the most time left: its tail is on the critical path.
    assert tail.test_ids == ("c", "d") and tail.priority == 0


def test_assignments_with_slack_start_a_hold_after_the_plan_and_the_critical_one_at_once() -> None:
    from coordinator.splitting import START_HOLD_S

    ids = [f"t{m}.py::test_{i}" for m in range(4) for i in range(10)]
    durations = {t: 0.2 for t in ids} | {ids[25]: 6.0}
    spec = SuiteSpec("s-1", "p", "d" * 64, "default", "load", (), 0.0)
    plan = machine.plan(spec, ids, durations=durations, slots=4,
                        settings=Settings(broker_url="redis://unused", min_assignment_s=0.5), now=100.0)
    after = machine.start_after(plan, 100.0)
    assert after[0] == 0.0 and ids[25] in plan[0].test_ids
    assert after[1:] == [100.0 + START_HOLD_S] * (len(plan) - 1)


def test_a_balanced_plan_and_one_without_durations_start_at_once() -> None:
    from farm.attempts import Attempt

    def planned(*expected: float) -> list[Attempt]:
        return [Attempt.planned(f"s-a{i:03d}", 1, ["t"], now=0.0, expected_s=e) for i, e in enumerate(expected)]

    assert machine.start_after(planned(3.0, 2.9, 2.5), 50.0) == [0.0, 0.0, 0.0]
    assert machine.start_after(planned(0.0, 0.0), 50.0) == [0.0, 0.0]
    assert machine.start_after([], 50.0) == []


def test_a_worker_holds_a_runner_until_its_start_after_and_never_longer_than_its_cap() -> None:
    from farm.model import Assignment
    from farm.protocol import decode, encode
    from workers.runner import MAX_START_HOLD_S, start_hold

    a = Assignment("s-1", "s-1-a001", 1, "d" * 64, (), ("t",), 7.0, priority=11, start_after=100.3)
    assert decode(encode(a), Assignment).start_after == 100.3  # it travels
    assert abs(start_hold(a, 100.0) - 0.3) < 1e-9
    assert start_hold(a, 100.5) == 0.0  # taken late (queued behind others): no hold
    assert start_hold(a, 50.0) == MAX_START_HOLD_S  # a coordinator clock far ahead keeps no slot idle
    assert start_hold(Assignment("s-1", "s-1-a000", 1, "d" * 64, (), ("t",)), 100.0) == 0.0
