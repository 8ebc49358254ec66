"""What the submitter says while its suite waits on something that may never come (pure: fed a clock)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from farm.states import SuiteStatus

#: How long a suite may wait on a missing coordinator or worker before the submitter says so.
FIRST_NOTICE_S = 20.0
#: While the cause lasts, it is said again this often (a user who looks back sees it is still so).
REPEAT_NOTICE_S = 30.0


@dataclass
class WaitingNotices:
    """Feed it each progress poll (`see`); it returns a line to print, or None.

    Three causes: no coordinator took the suite (still `submitted`), no live worker serves its
    pool (none ever, or the only one died mid-run: said again every REPEAT_NOTICE_S while it
    lasts), and workers that are alive but have not collected it (once: big suites take a while).
    """

    pool: str
    first_s: float = FIRST_NOTICE_S
    repeat_s: float = REPEAT_NOTICE_S
    _since: dict[str, float] = field(default_factory=dict)  # cause → when it began
    _said: dict[str, float] = field(default_factory=dict)  # cause → when it was last said

    def see(self, status: str, live_workers: int, now: float) -> str | None:
        causes = set()
        if status == SuiteStatus.SUBMITTED:
            causes.add("coordinator")
        elif status in (SuiteStatus.COLLECTING, SuiteStatus.RUNNING):
            causes.add("workers" if live_workers == 0 else "collection" if status == SuiteStatus.COLLECTING else "")
        for gone in set(self._since) - causes:  # a cause that ended starts afresh if it comes back
            del self._since[gone]
            if gone != "collection":
                self._said.pop(gone, None)
        for cause in sorted(causes - {""}):
            began = self._since.setdefault(cause, now)
            if now - began < self.first_s:
                continue
            last = self._said.get(cause)
            if last is None or (cause != "collection" and now - last >= self.repeat_s):
                self._said[cause] = now
                return _line(cause, self.pool, now - began)
        return None


def _line(cause: str, pool: str, waited_s: float) -> str:
    what = {
        "coordinator": "no coordinator has taken the suite (is `farm coordinator` running?)",
        "workers": f"no live worker serves pool {pool!r} (`farm status` lists the workers)",
        "collection": f"no worker of pool {pool!r} has collected the suite yet",
    }[cause]
    return f"farm: still waiting after {waited_s:.0f}s: {what}"


class SuiteWatch:
    """WaitingNotices fed by a reader of the pool's live workers, asked at most once a second."""

    def __init__(self, pool: str, live_workers: Callable[[], int]) -> None:
        self.notices = WaitingNotices(pool)
        self.live_workers = live_workers
        self.read_at: float | None = None
        self.live = 1

    def see(self, status: str, now: float) -> str | None:
        out = status in (SuiteStatus.COLLECTING, SuiteStatus.RUNNING)
        if out and (self.read_at is None or now - self.read_at >= 1.0):
            self.read_at = now
            self.live = self.live_workers()
        return self.notices.see(status, self.live, now)
