"""Which of a worker's pool processes run a task now, so a collection splits only over idle slots.

One shared array (made before the pool forks, inherited by every pool process) holds per slot the
pid of the process running a task in it, 0 when free. Lock-free on purpose: a pool process killed
while holding a lock would stop every task of the worker; a race of two claims loses one entry at
worst, so the count errs towards idle, i.e. towards as many runners as before. A dead pid (a pool
process killed mid-task, Celery replaces it) counts as free.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.sharedctypes import RawArray
from typing import Any

from psutil import pid_exists


class BusySlots:
    """The pids of the pool processes running a task, one entry per slot."""

    def __init__(self, slots: int) -> None:
        self.pids: Any = RawArray("i", max(1, slots))

    @contextmanager
    def held(self) -> Iterator[None]:
        """This process runs a task meanwhile."""
        pid = os.getpid()
        index = next((i for i, p in enumerate(self.pids) if p == 0 or p == pid or not pid_exists(p)), None)
        if index is not None:
            self.pids[index] = pid
        try:
            yield
        finally:
            if index is not None and self.pids[index] == pid:
                self.pids[index] = 0

    def others(self) -> int:
        """How many other processes run a task now."""
        pid = os.getpid()
        return sum(1 for p in list(self.pids) if p not in (0, pid) and pid_exists(p))
