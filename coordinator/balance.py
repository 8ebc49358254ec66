"""Run-time balancing (part of the machine, pure): which running attempts give up their unstarted tail.

When an attempt ends and its suite has no queued attempt left, slots of the pool are idle (or
soon will be) while other attempts still run. The one with the most expected time left is asked
to split: its runner stops before the first test of a tail chosen so that both halves take about
as long (the tail also pays a new runner's start-up), and the tail runs as a new assignment on
the idle slot. Nothing is asked when the gain is below that start-up: a split costs one more
runner start (CPU the other runners share, and the tail's modules imported again).

The start-up is measured, not assumed (`start_cost`): the least, over the suite's ended attempts
that ran a test, of the time from an attempt's start on its worker to its first test's start
(`Attempt.startup_s`, from the Completion): what this machine, at this load, charged for one
assignment. The least, not the median: the plan's first assignments all start at once (16 pytest
processes on 2 cores take seconds each), where a tail starts alone in a freed slot. At most the
assumed start-up (the project's recorded assignment overhead, else `DEFAULT_OVERHEAD_S`), which is
also the cost before any attempt ended: a measurement only ever makes balancing more willing than
the fixed rule was, never less (on a loaded machine the first wave's start-ups are seconds, and
the cut already charges the tail its start-up in `max(head, overhead + tail)`).

Without any recorded duration for an attempt's pending tests (a first run), its tests are alike
as far as anyone knows: the attempt with the most unstarted tests has the most expected work
left, and it gives away the later half of its unstarted tests (`unstarted_half`) when that half
is worth a runner start. Nothing foresees a long test: halving the most loaded attempt whenever a
slot is idle moves any test still unstarted forward (bench/first_run_policies.py compares this with
the time-balanced cut). With recorded durations, the cut balances the expected times (`cut`).

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

#: The start-up a new assignment costs when nothing is measured yet (no attempt of the suite ran a
#: test to its end, no recorded overhead for the project; seconds).
DEFAULT_OVERHEAD_S = 1.0
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


#: The least a split is taken to cost (a runner's start, however fast one was measured).
MIN_START_COST_S = 0.2


def start_cost(ended: Sequence[Attempt], recorded_s: float | None) -> float:
    """What one more assignment costs before its first test: the least measured start-up of the
    suite's ended attempts, at most the assumed one (the project's recorded overhead, else
    DEFAULT_OVERHEAD_S), which it is without a measurement."""
    assumed = DEFAULT_OVERHEAD_S if recorded_s is None else recorded_s
    measured = [a.startup_s for a in ended if a.startup_s > 0]
    # Never below MIN_START_COST_S: a near-zero figure (a recorded overhead of ~0, a clock off
    # between runner and worker) would have every idle slot ask for a cut of any gain.
    return max(MIN_START_COST_S, min(min(measured), assumed) if measured else assumed)


def cut(times: Sequence[float], overhead_s: float) -> tuple[int, float] | None:
    """Where to cut tests taking `times` (the first may be running): (the tail's first index,
    the longer half afterwards), or None if no cut gains at least the start-up it costs.

    The head keeps at least one test (the one running, maybe); the tail pays `overhead_s`."""
    total = sum(times)
    best: tuple[int, float] | None = None
    head = 0.0
    for k in range(1, len(times)):
        head += times[k - 1]
        after = max(head, overhead_s + total - head)
        if best is None or after < best[1]:
            best = (k, after)
    if best is None or total - best[1] < overhead_s or total <= best[1]:
        return None
    return best


def to_split(running: Sequence[Running], *, idle: int, durations: Mapping[str, float], mean_s: float,
             overhead_s: float | None) -> list[Ask]:
    """Which attempts to ask to split now, at most `idle` (the slots the suite leaves free), the
    most expected time left first; none with a request still out or MAX_SPLITS asked.
    `overhead_s`: what a split's tail pays before its first test (`start_cost`)."""
    if idle <= 0:
        return []
    overhead = DEFAULT_OVERHEAD_S if overhead_s is None else max(0.0, overhead_s)
    ranked: list[tuple[float, Ask]] = []
    for r in running:
        if (r.asked and not r.answered) or r.asked >= MAX_SPLITS or len(r.pending) < 2:
            continue
        times = [durations.get(t, r.pace_s or mean_s) for t in r.pending]
        if any(t in durations for t in r.pending):
            found = cut(times, overhead)
            rank = sum(times)
        else:
            found = unstarted_half(times, overhead)
            rank = (len(r.pending) - 1) * mean_s  # tests alike: its unstarted ones at the suite's mean
        if found is not None:
            k, after = found
            ranked.append((rank, Ask(r.attempt, r.asked + 1, r.pending[k:], sum(times), after)))
    ranked.sort(key=lambda ra: -ra[0])
    return [ask for _, ask in ranked[:idle]]


def unstarted_half(times: Sequence[float], overhead_s: float) -> tuple[int, float] | None:
    """Without recorded durations: the later half of the unstarted tests (all but the first of
    `times`, which may be running; the larger half if odd), if their expected time is worth a
    runner start (at least `overhead_s`); as `cut`, (the tail's first index, the longer half after)."""
    unstarted = len(times) - 1
    if unstarted < 1:
        return None
    k = len(times) - (unstarted + 1) // 2
    head, tail = sum(times[:k]), sum(times[k:])
    if tail < overhead_s or tail <= 0:
        return None
    return k, max(head, overhead_s + tail)


def idle_slots(slots: int, attempts: Sequence[Attempt], outstanding: int) -> int:
    """Slots the suite leaves free: none while an attempt waits on the queue; else the slots less
    the attempts running and the split requests still out (each will fill one)."""
    if any(a.state == AttemptState.QUEUED for a in attempts):
        return 0
    running = sum(1 for a in attempts if a.state == AttemptState.RUNNING)
    return slots - running - outstanding
