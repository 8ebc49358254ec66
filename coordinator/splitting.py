"""Splitting a collected suite into assignments (pure).

Units are tests (`--dist load`) or whole modules (`--dist loadfile`). With recorded durations,
units are packed longest-first into the least loaded assignment (LPT); without them, the suite
is cut into contiguous runs of equal test counts, which keeps a module's tests together. There
are more assignments than slots (up to `per_slot` each) so the end of the run balances, but
each assignment pays a pytest start-up, so none is planned shorter than `min_assignment_s`
when durations are known, nor smaller than `min_tests` tests when they are not (at least one
assignment per slot either way, as long as there are units to fill them). A small suite (fewer
than `small_tests` tests) gets one assignment per slot without durations, and only one when its
recorded durations add up to less than `min_assignment_s / OVERHEAD_FACTOR` (about a runner's
start-up; fixed, not the measured overhead, which a loaded machine inflates): each runner start-up
would cost more than it saves. Assignments come out largest first: they are published in that order.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: With a measured per-assignment overhead, no assignment is planned shorter than this many times it.
OVERHEAD_FACTOR = 10.0


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
    durations = durations or {}
    order = {t: i for i, t in enumerate(test_ids)}
    units = _units(test_ids, dist)
    known = [durations[t] for t in test_ids if t in durations]
    if known:
        fallback = statistics.median(known)
        estimate = {t: max(0.0, durations.get(t, fallback)) for t in test_ids}
        total = sum(estimate.values())
        shortest = max(min_assignment_s, OVERHEAD_FACTOR * (overhead_s or 0.0))
        by_time = int(total // shortest) if shortest > 0 else len(units)
        floor = 1 if len(test_ids) < small_tests and total < min_assignment_s / OVERHEAD_FACTOR else slots
        count = min(len(units), slots * per_slot, max(floor, by_time))
        bins = _lpt(units, estimate, count)
    else:
        estimate = {t: 0.0 for t in test_ids}
        by_count = -(-len(test_ids) // max(1, min_tests))
        cap = slots if len(test_ids) < small_tests else slots * per_slot
        count = min(len(units), cap, max(slots, by_count))
        bins = _contiguous(units, count)
    planned = [
        Planned(tuple(sorted(b, key=order.__getitem__)), sum(estimate[t] for t in b)) for b in bins if b
    ]
    planned.sort(key=lambda p: (-p.expected_s, -len(p.test_ids), order[p.test_ids[0]]))
    return planned


def _units(test_ids: Sequence[str], dist: str) -> list[list[str]]:
    if dist == "load":
        return [[t] for t in test_ids]
    groups: dict[str, list[str]] = {}
    for t in test_ids:
        groups.setdefault(module_of(t), []).append(t)
    return list(groups.values())


def _lpt(units: list[list[str]], estimate: Mapping[str, float], count: int) -> list[list[str]]:
    """Longest processing time first: each unit goes to the currently lightest bin."""
    weighted = sorted(units, key=lambda u: -sum(estimate[t] for t in u))
    bins: list[list[str]] = [[] for _ in range(count)]
    heap = [(0.0, 0, i) for i in range(count)]  # (load, tests, bin index)
    for unit in weighted:
        load, n, i = heapq.heappop(heap)
        bins[i].extend(unit)
        heapq.heappush(heap, (load + sum(estimate[t] for t in unit), n + len(unit), i))
    return bins


def _contiguous(units: list[list[str]], count: int) -> list[list[str]]:
    """Cut the units, in order, into `count` runs of about equal test counts."""
    total = sum(len(u) for u in units)
    bins: list[list[str]] = []
    current: list[str] = []
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
