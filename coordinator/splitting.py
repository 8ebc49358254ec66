"""Splitting a collected suite into assignments (pure).

Units are tests (`--dist load`) or whole modules (`--dist loadfile`). There are more assignments
than slots (up to `per_slot` each) so the end of the run balances, but each assignment pays a
pytest start-up, so none is planned shorter than `min_assignment_s` when durations are known,
nor smaller than `min_tests` tests when they are not (at least one assignment per slot either
way, as long as there are units to fill them). Assignments come out largest first: they are
published in that order.

Balance first, import locality second (every module an assignment touches is imported by its
runner). With recorded durations, `--dist load` lays the modules end to end (each module's
tests together, in collection order) and cuts that sequence into equal shares of expected time,
moving each cut to a module boundary when one is near (McNaughton's wrap-around rule): every
assignment is within one test of its share, and each cut splits at most one module. When
single tests are long against a share (a few slow tests), that can balance worse than packing:
then modules cut into contiguous pieces no longer than a share (a half, a quarter) are packed
longest first into the least loaded assignment (LPT), and so are single tests (the classic LPT);
of these, the plan that touches the fewest modules wins among those whose longest assignment
is within BALANCE_TOLERANCE of the best one. `--dist loadfile` packs whole modules (LPT).
Without durations the suite is cut into contiguous runs of equal test counts, which keeps a
module's tests together. A small suite (fewer than `small_tests` tests) gets one assignment per
slot without durations, and only one when its recorded durations add up to less than twice
`min_assignment_s / OVERHEAD_FACTOR` (that is about a runner's start-up; fixed, not the measured
overhead, which a loaded machine inflates): a second runner saves at most half the tests' time
and costs a start-up, on the same cores. Everything
here is linear in the tests (up to sorting).
"""

from __future__ import annotations

import heapq
import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, groupby, repeat
from operator import itemgetter
from typing import cast

#: With a measured per-assignment overhead, no assignment is planned shorter than this many times it.
OVERHEAD_FACTOR = 10.0
#: A small suite whose tests add up to less than this many runner start-ups runs as one assignment:
#: a second runner would save at most half of them, and cost a start-up.
SMALL_SUITE_START_UPS = 2.0
#: A plan that touches fewer modules is taken if its longest assignment is at most this much
#: (relative) longer than the best-balanced plan's.
BALANCE_TOLERANCE = 0.02
#: Module pieces no longer than a share, a half, a quarter of one are tried when cutting the
#: modules end to end balances worse than the tolerance allows.
PIECE_FRACTIONS = (1.0, 0.5, 0.25)

#: An assignment expected to end this much (seconds, and SLACK_SHARE of the longest one's time)
#: before the longest one does is not on the run's critical path: its priority starts at
#: SLACK_PRIORITY, so its runner gets the highest niceness workers give (workers.runner.MAX_NICENESS).
SLACK_S = 1.0
SLACK_SHARE = 0.1
SLACK_PRIORITY = 10
#: ... and, published with the plan, its runner starts this long after the plan (Assignment.start_after):
#: 16 runners starting pytest at once on 2 cores delayed the long test's start 0.15 → 0.41 s even
#: with the others at niceness 10 (bench/critical_start.py, load 13-16). Well below SLACK_S.
START_HOLD_S = 0.3

Bins = list[list[int]]  # each assignment's tests, as indexes into the collection


@dataclass(frozen=True)
class Planned:
    """One planned assignment: its tests in collection order and their expected duration."""

    test_ids: tuple[str, ...]
    expected_s: float


def module_of(test_id: str) -> str:
    """The file part of a pytest node id."""
    return test_id.split("::", 1)[0]


def split(
    test_ids: Sequence[str],
    *,
    slots: int,
    dist: str = "load",
    durations: Mapping[str, float] | None = None,
    per_slot: int = 4,
    min_assignment_s: float = 3.0,
    min_tests: int = 20,
    overhead_s: float | None = None,
    small_tests: int = 0,
) -> list[Planned]:
    """Split `test_ids` into assignments; every test lands in exactly one of them.

    `overhead_s` is what an assignment cost beyond its tests last time (pytest start-up, bundle
    unpacking); assignments are then planned at least OVERHEAD_FACTOR times as long, so the
    start-ups stay a small share of the run.
    """
    if not test_ids:
        return []
    if dist not in ("load", "loadfile"):
        raise ValueError(f"unknown dist mode {dist!r}")
    slots = max(1, slots)
    ids = list(test_ids)
    groups = modules(ids)
    n_units = len(ids) if dist == "load" else len(groups)
    recorded = list(map(durations.get, ids)) if durations else []
    known = [d for d in recorded if d is not None] if None in recorded else cast(list[float], recorded)
    if known:
        estimate = _estimates(recorded, known)
        total = math.fsum(estimate)
        shortest = max(min_assignment_s, OVERHEAD_FACTOR * (overhead_s or 0.0))
        by_time = int(total // shortest) if shortest > 0 else n_units
        floor = 1 if len(ids) < small_tests and total < SMALL_SUITE_START_UPS * min_assignment_s / OVERHEAD_FACTOR \
            else slots
        count = min(n_units, slots * per_slot, max(floor, by_time))
        # All zero: balance the test counts instead.
        weight = estimate if total > 0 else [1.0] * len(ids)
        bins = by_time_load(groups, weight, count) if dist == "load" else lpt([(g, _load(g, weight)) for g in groups],
                                                                              count)
    else:
        estimate = [0.0] * len(ids)
        by_count = -(-len(ids) // max(1, min_tests))
        cap = slots if len(ids) < small_tests else slots * per_slot
        count = min(n_units, cap, max(slots, by_count))
        bins = equal_counts(len(ids), count) if dist == "load" else contiguous(groups, count)
    planned = []
    for b in bins:
        if b:
            b.sort()
            planned.append((b[0], Planned(tuple(map(ids.__getitem__, b)), _load(b, estimate))))
    planned.sort(key=lambda fp: (-fp[1].expected_s, -len(fp[1].test_ids), fp[0]))
    return [p for _, p in planned]


def _estimates(recorded: list[float | None], known: list[float]) -> list[float]:
    """Each test's expected duration: as recorded (negative: 0), else the median of the known ones."""
    if len(known) < len(recorded):
        fallback = statistics.median(known)
        recorded = [fallback if d is None else d for d in recorded]
    estimate: list[float] = recorded  # type: ignore[assignment]  # no None left
    return estimate if min(estimate) >= 0 else [d if d > 0 else 0.0 for d in estimate]


def modules(test_ids: Sequence[str]) -> Bins:
    """The collection's tests (indexes) grouped by module, modules in order of first appearance."""
    names = list(map(itemgetter(0), map(str.partition, test_ids, repeat("::"))))  # module_of, in C
    groups: dict[str, list[int]] = {}
    for name, run in groupby(range(len(names)), names.__getitem__):  # runs of one module
        group = groups.get(name)
        if group is None:
            groups[name] = list(run)
        else:
            group.extend(run)
    return list(groups.values())


def modules_touched(bins: Bins, module_index: Sequence[int]) -> int:
    """The sum over assignments of the distinct modules each one's tests are in."""
    return sum(len({module_index[i] for i in b}) for b in bins)


def _load(tests: Sequence[int], weight: Sequence[float]) -> float:
    return math.fsum(map(weight.__getitem__, tests))


def _longest(bins: Bins, weight: Sequence[float]) -> float:
    return max((_load(b, weight) for b in bins), default=0.0)


# --- with durations -------------------------------------------------------------------------

def by_time_load(groups: Bins, weight: Sequence[float], count: int) -> Bins:
    """`--dist load` with durations: balance first, then the plan touching the fewest modules."""
    total = math.fsum(weight)
    share = total / count
    longest_test = max(weight)
    # A test longer than a share bounds every plan: the assignment that holds it is the run's
    # critical path, and the tolerance would buy locality with time on it (the skewed suite's
    # plan gave the 11.1 s test three 0.2 s neighbours of its module: +1.8 % of the run).
    tolerance = 0.0 if longest_test >= share else BALANCE_TOLERANCE
    cut = wrap_around(groups, weight, count)
    if _longest(cut, weight) <= (1 + tolerance) * max(share, longest_test):
        return cut  # as balanced as any plan can be (within the tolerance)
    candidates = [cut] + [lpt(pieces(groups, weight, share * f), count) for f in PIECE_FRACTIONS]
    candidates.append(lpt([([i], weight[i]) for g in groups for i in g], count))
    longest = [_longest(c, weight) for c in candidates]
    allowed = (1 + tolerance) * min(longest)
    module_index = [0] * len(weight)
    for m, g in enumerate(groups):
        for i in g:
            module_index[i] = m
    return min((c for c, x in zip(candidates, longest, strict=True) if x <= allowed),
               key=lambda c: modules_touched(c, module_index))


def wrap_around(groups: Bins, weight: Sequence[float], count: int) -> Bins:
    """The modules end to end, cut into `count` runs of about a share each (McNaughton).

    The cut for run k goes to the module boundary nearest to k shares within half the longest
    test and half the balance tolerance of a share, else to the test boundary nearest to it;
    every run stays within a share plus the longest test, and leaves the runs after it enough
    to do (so none is empty)."""
    order = list(chain.from_iterable(groups))
    n = len(order)
    prefix = [0.0, *accumulate(map(weight.__getitem__, order))]
    total = prefix[-1]
    share, slack = total / count, max(weight)
    starts = [0, *accumulate(len(g) for g in groups)]  # module boundaries (indexes into order)
    at_start = [prefix[s] for s in starts]
    # A cut moves to a module boundary at most this far from the ideal: runs stay within a share
    # plus the longest test, and within the balance tolerance of a share.
    reach = min(slack, BALANCE_TOLERANCE * share) / 2
    cuts = [0]
    for k in range(1, count):
        x, prev = k * share, cuts[-1]
        # No run over a share plus the longest test; room left for the runs after it.
        low = max(prefix[prev], total - (count - k) * (share + slack))
        high = prefix[prev] + share + slack
        lo_i, hi_i = prev + 1, n - (count - k)  # every run keeps at least one test
        chosen = _nearest_in(starts, at_start, x, max(low, x - reach), min(high, x + reach), lo_i, hi_i)
        if chosen is None:  # the test boundary nearest to the ideal cut (within half a test of it)
            chosen = _nearest_in(range(n + 1), prefix, x, low, high, lo_i, hi_i)
        if chosen is None:  # zero-weight stretches, rounding: the nearest allowed boundary
            chosen = min(max(bisect_left(prefix, x), lo_i), hi_i)
        cuts.append(chosen)
    cuts.append(n)
    return [order[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def _nearest_in(positions: Sequence[int], values: Sequence[float], x: float, low: float, high: float,
                lo_i: int, hi_i: int) -> int | None:
    """The position (of `positions`, whose `values` ascend) with its value in [low, high] and
    itself in [lo_i, hi_i], nearest to x; None if there is none."""
    a, b = bisect_left(values, low), bisect_right(values, high)
    a = max(a, bisect_left(positions, lo_i))
    b = min(b, bisect_right(positions, hi_i))
    if a >= b:
        return None
    j = min(max(bisect_left(values, x, a, b), a), b - 1)
    best = min((k for k in (j - 1, j) if a <= k < b), key=lambda k: abs(values[k] - x))
    return positions[best]


def pieces(groups: Bins, weight: Sequence[float], cap: float) -> list[tuple[list[int], float]]:
    """Each module whole, or cut into as few contiguous pieces of about equal time as keep each
    within `cap` (roughly: a piece ends at the test nearest its equal part); with their loads."""
    out: list[tuple[list[int], float]] = []
    for g in groups:
        load = _load(g, weight)
        parts = math.ceil(load / cap) if cap > 0 else 1
        if parts <= 1 or len(g) == 1:
            out.append((g, load))
            continue
        parts = min(parts, len(g))
        prefix = [0.0, *accumulate(map(weight.__getitem__, g))]
        cuts = [0]
        for k in range(1, parts):
            c = min(max(bisect_left(prefix, k * load / parts), cuts[-1] + 1), len(g) - (parts - k))
            cuts.append(c)
        cuts.append(len(g))
        for a, b in zip(cuts, cuts[1:], strict=False):
            out.append((g[a:b], prefix[b] - prefix[a]))
    return out


def lpt(units: list[tuple[list[int], float]], count: int) -> Bins:
    """Longest processing time first: each unit goes to the currently lightest bin (then the one
    with fewest tests)."""
    ordered = sorted(range(len(units)), key=lambda u: (-units[u][1], units[u][0][0] if units[u][0] else 0))
    bins: Bins = [[] for _ in range(count)]
    heap = [(0.0, 0, i) for i in range(count)]  # (load, tests, bin index)
    for u in ordered:
        tests, load = units[u]
        have, n, i = heapq.heappop(heap)
        bins[i].extend(tests)
        heapq.heappush(heap, (have + load, n + len(tests), i))
    return bins


# --- without durations ----------------------------------------------------------------------

def equal_counts(n: int, count: int) -> Bins:
    """`--dist load` without durations: the tests in collection order, cut into `count` runs
    whose sizes differ by at most one (a module is cut only where a run ends)."""
    cuts = [-(-n * k // count) for k in range(count + 1)]
    return [list(range(a, b)) for a, b in zip(cuts, cuts[1:], strict=False)]


def contiguous(units: Bins, count: int) -> Bins:
    """Cut the units, in order, into `count` runs of about equal test counts."""
    total = sum(len(u) for u in units)
    bins: Bins = []
    current: list[int] = []
    placed = 0
    for i, unit in enumerate(units):
        current.extend(unit)
        placed += len(unit)
        remaining_bins = count - len(bins)
        units_left = len(units) - i - 1
        # Close the bin when it holds its share, or when every unit left is needed to fill
        # the bins left (so there are never fewer assignments than planned).
        if remaining_bins > 1 and (placed >= total * (len(bins) + 1) / count or units_left <= remaining_bins - 1):
            bins.append(current)
            current = []
    if current:
        bins.append(current)
    return bins


# --- publish priorities -----------------------------------------------------------------------

def priorities(expected_s: Sequence[float]) -> list[int]:
    """Each planned assignment's priority (0 first, as `split` ordered them, largest first):
    its index, or SLACK_PRIORITY more once its expected time leaves it slack against the longest
    (the order stays the same). Workers run an assignment's runner at a niceness of its priority
    (capped): on a host with more slots than cores, the runners with slack then leave the CPU to
    the long assignment's start-up (16 runners starting at once on 2 cores delayed the longest
    test of the skewed suite by ~0.3 s), and take it back while the long test runs. Balanced
    plans, where every assignment is about as long as the longest, keep their indexes."""
    return [i + (SLACK_PRIORITY if s else 0) for i, s in enumerate(with_slack(expected_s))]


def with_slack(expected_s: Sequence[float]) -> list[bool]:
    """Whether each planned assignment is expected to end more than max(SLACK_S, SLACK_SHARE of the
    longest) before the longest one: off the run's critical path."""
    if not expected_s:
        return []
    longest = max(expected_s)
    slack = max(SLACK_S, SLACK_SHARE * longest)
    return [e < longest - slack for e in expected_s]
