"""Time left of a running suite, from its plan's expected durations (pure: events in, estimate out).

Counting tests cannot tell: when one slow assignment runs alone at the end, nearly every test is
done and a count-based ETA says 0.0s for as long as it runs. The plan knows better: each
assignment carries the expected time of its tests (from recorded durations). Assignments are
replayed onto the pool's slots in the order they were published, each taking the first free
slot; one that ended frees its slot when the client saw it end; one still open ends at its
start plus its expected time (plus the per-assignment overhead measured last time). The ETA is
the latest such end, from now. Without recorded durations there is no ETA (None), and none
either once every open assignment has overrun its expectation: farm does not know then.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PlannedWork:
    """An assignment as the ETA sees it."""

    assignment_id: str
    expected_s: float
    available_at: float  # when it was published (the suite's start, for the first plan)


class SuiteEta:
    """Fed the plan, the assignments published later and the ones seen ending; answers `remaining`."""

    def __init__(self, plan: Sequence[tuple[str, float]], *, slots: int, started_at: float,
                 overhead_s: float = 0.0) -> None:
        self.slots = max(1, slots)
        self.overhead_s = max(0.0, overhead_s)
        self.work = [PlannedWork(a, max(0.0, e), started_at) for a, e in plan]
        self.ended_at: dict[str, float] = {}

    def known(self, assignment_id: str) -> bool:
        return any(w.assignment_id == assignment_id for w in self.work)

    def published(self, assignment_id: str, expected_s: float, now: float) -> None:
        """A rerun or crash retry published after the plan (ignored if already known)."""
        if not self.known(assignment_id):
            self.work.append(PlannedWork(assignment_id, max(0.0, expected_s), now))

    def ended(self, assignment_ids: Iterable[str], now: float) -> None:
        """These assignments were seen ended by `now` (the first sighting counts)."""
        for a in assignment_ids:
            self.ended_at.setdefault(a, now)

    def remaining(self, now: float) -> float | None:
        """Seconds left, or None when the plan cannot tell (no durations, or everything overdue)."""
        if not any(w.expected_s > 0 for w in self.work):
            return None
        free = [min(w.available_at for w in self.work)] * self.slots if self.work else []
        heapq.heapify(free)
        last: float | None = None
        for w in self.work:
            start = max(heapq.heappop(free), w.available_at)
            if w.assignment_id in self.ended_at:
                finish = self.ended_at[w.assignment_id]
            else:
                # Overrun: it ends no earlier than now; how much later, the plan does not know.
                finish = max(start + w.expected_s + self.overhead_s, now)
                last = finish if last is None else max(last, finish)
            heapq.heappush(free, finish)
        if last is None or last - now <= 0:
            return None
        return last - now
