"""Run-time balancing (part of the machine, pure): which running attempts give up their unstarted tail.

When an attempt ends and its suite has no queued attempt left, slots of the pool are idle (or
soon will be) while other attempts still run. The one with the most expected time left is asked
to split: its runner stops before the first test of a tail chosen so that both halves take about
as long (the tail also pays a new runner's start-up, `overhead_s`), and the tail runs as a new
assignment on the idle slot. Nothing is asked when the gain is below the overhead: a split costs
one more runner start.

Expected time: the tests' recorded durations where known, else the attempt's own pace (the time
since it started over the tests it finished, at least one: an attempt stuck in a long test looks
slow), else the mean per test observed so far in this suite (its ended attempts' wall time over
their tests, start-up included), else `UNKNOWN_TEST_S`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from farm.attempts import Attempt
from farm.states import AttemptState

#: The start-up a new assignment costs when the project has no recorded overhead (seconds).
DEFAULT_OVERHEAD_S = 1.0
#: A split is asked only if it shortens the attempt's expected end by at least this much too.
MIN_GAIN_S = 0.5
#: The expected duration of a test when nothing is known (no history, no attempt ended yet).
UNKNOWN_TEST_S = 1.0
#: The most split requests one attempt gets (each a new runner start).
MAX_SPLITS = 8


@dataclass(frozen=True)
class Running:
    """A running attempt as the balancer sees it."""

    attempt: Attempt
    pending: tuple[str, ...]  # its tests without an outcome (still its own), in its order
    asked: int = 0  # the last split request's seq (0: none)
    answered: bool = True  # the last request was carried out (its tail assignment exists)
    pace_s: float = 0.0  # seconds per test it took so far (0: unknown)


def pace(a: Attempt, pending: int, now: float) -> float:
    """Seconds per test an attempt took so far: since it started, over its finished tests (at least 1)."""
    if not a.started_at or now <= a.started_at:
        return 0.0
    return (now - a.started_at) / max(1, len(a.test_ids) - pending)


@dataclass(frozen=True)
class Ask:
    """Ask `attempt` to stop before `tail` (request `seq`): its worker fences its runner there."""

    attempt: Attempt
    seq: int
    tail: tuple[str, ...]
    left_s: float  # expected time left before the split
    after_s: float  # the longer of the two halves after it (tail with its start-up)


def mean_test_s(ended: Sequence[Attempt]) -> float:
    """Seconds per test observed so far: the ended attempts' wall time over their tests."""
    tests = sum(len(a.test_ids) for a in ended if a.wall_s)
    wall = sum(a.wall_s or 0.0 for a in ended if a.wall_s)
    return wall / tests if tests and wall > 0 else UNKNOWN_TEST_S


def cut(times: Sequence[float], overhead_s: float) -> tuple[int, float] | None:
    """Where to cut tests taking `times` (the first may be running): (the tail's first index,
    the longer half afterwards), or None if no cut gains at least the overhead (and MIN_GAIN_S).

    The head keeps at least one test (the one running, maybe); the tail pays `overhead_s`."""
    total = sum(times)
    best: tuple[int, float] | None = None
    head = 0.0
    for k in range(1, len(times)):
        head += times[k - 1]
        after = max(head, overhead_s + total - head)
        if best is None or after < best[1]:
            best = (k, after)
    if best is None or total - best[1] < max(overhead_s, MIN_GAIN_S):
        return None
    return best


def to_split(running: Sequence[Running], *, idle: int, durations: Mapping[str, float], mean_s: float,
             overhead_s: float | None) -> list[Ask]:
    """Which attempts to ask to split now, at most `idle` (the slots the suite leaves free), the
    most expected time left first; none with a request still out or MAX_SPLITS asked."""
    if idle <= 0:
        return []
    overhead = DEFAULT_OVERHEAD_S if overhead_s is None else overhead_s
    asks = []
    for r in running:
        if (r.asked and not r.answered) or r.asked >= MAX_SPLITS or len(r.pending) < 2:
            continue
        times = [durations.get(t, r.pace_s or mean_s) for t in r.pending]
        found = cut(times, overhead)
        if found is not None:
            k, after = found
            asks.append(Ask(r.attempt, r.asked + 1, r.pending[k:], sum(times), after))
    asks.sort(key=lambda a: -a.left_s)
    return asks[:idle]


def idle_slots(slots: int, attempts: Sequence[Attempt], outstanding: int) -> int:
    """Slots the suite leaves free: none while an attempt waits on the queue; else the slots less
    the attempts running and the split requests still out (each will fill one)."""
    if any(a.state == AttemptState.QUEUED for a in attempts):
        return 0
    running = sum(1 for a in attempts if a.state == AttemptState.RUNNING)
    return slots - running - outstanding
