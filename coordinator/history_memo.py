"""A suite's recorded durations, read from the store once per suite by the coordinator's run-time
decisions (balancing, a split's tail, a retry, a rerun), not at every completion.

A project's history hash holds a duration per test (100,000 fields for a suite of 100,000 tests):
reading and converting it took about as long as everything else an attempt's end does. What these
decisions need is the suite's expected times, which the history as first read gives (the plan was
cut with it): the suites of the project that finish meanwhile add nothing this suite needs. A
suite's entry goes when it finishes (`forget`), and at most KEEP suites are kept (the oldest go
first), so a coordinator that misses a finish (another coordinator finished the suite) holds a
bounded amount.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from types import MappingProxyType

#: Suites whose durations are kept at once (each is one dict of its project's recorded tests).
KEEP = 8


class DurationsMemo:
    """Suite id → its project's durations (read-only), read with `read(project)` the first time."""

    def __init__(self, read: Callable[[str], dict[str, float]], keep: int = KEEP) -> None:
        self._read = read
        self._keep = keep
        self._held: OrderedDict[str, Mapping[str, float]] = OrderedDict()
        self._lock = threading.Lock()  # the coordinator's tasks run on several threads

    def get(self, suite_id: str, project: str) -> Mapping[str, float]:
        with self._lock:
            held = self._held.get(suite_id)
            if held is not None:
                self._held.move_to_end(suite_id)
                return held
        # Read outside the lock: two threads may both read a suite's first time, and one wins.
        durations: Mapping[str, float] = MappingProxyType(self._read(project))
        with self._lock:
            held = self._held.setdefault(suite_id, durations)
            while len(self._held) > self._keep:
                self._held.popitem(last=False)
        return held

    def forget(self, suite_id: str) -> None:
        """The suite finished: its durations are not needed any more."""
        with self._lock:
            self._held.pop(suite_id, None)

    def __len__(self) -> int:
        return len(self._held)
