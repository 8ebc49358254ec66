"""One attempt of an assignment, typed, and its stored msgpack form (the one place that knows the keys)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import msgpack

from farm import keys
from farm.states import ENDED_STATES, AttemptState


@dataclass(frozen=True)
class Attempt:
    """An assignment's N-th attempt: its tests, where it runs, and how it stands.

    Stored under `keys.attempt_key(assignment_id, number)` in `keys.assignments(suite)`; the
    stored keys are those of farm 1 (`id`, `attempt`, `held_completion`...), see `to_stored`."""

    assignment_id: str
    number: int
    state: AttemptState
    test_ids: tuple[str, ...]
    expected_s: float = 0.0  # what its tests took last time (0: unknown)
    worker: str = ""
    node: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    priority: int = 0  # its place in the plan (the ETA reads the plan in this order)
    avoid: tuple[str, ...] = ()  # workers it should preferably not run on
    planned_at: float = 0.0
    published_at: float = 0.0  # 0: not published yet (or publishing failed)
    received: int = 0  # records merged from it so far
    # Its completion, while it waits for records it says it sent (threads reorder messages).
    waiting_completion: bytes | None = None
    waiting_since: float = 0.0
    exit_code: int | None = None  # its runner's, once it ended
    message: str = ""  # why it ended as it did
    wall_s: float | None = None  # how long it ran, once it ended
    startup_s: float = 0.0  # once it ended: its start to its first test's start (0: unknown; Completion's)
    requeued: bool = False  # its unfinished tests moved to the next attempt (once per attempt)
    # Once it ended, from its Completion: what its runners' process trees used (0: not measured)
    # and what its tests left behind, as (test, kind, detail) triples (farm.model.Leak).
    peak_rss_bytes: int = 0
    cpu_s: float = 0.0
    leaks: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def planned(cls, assignment_id: str, number: int, test_ids: Iterable[str], *, now: float,
                expected_s: float = 0.0, priority: int = 0, avoid: Iterable[str] = ()) -> Attempt:
        """A new attempt, queued and not published yet: the one way attempts are made."""
        return cls(assignment_id, number, AttemptState.QUEUED, tuple(test_ids), expected_s=expected_s,
                   priority=priority, avoid=tuple(sorted(set(avoid))), planned_at=now)

    @property
    def key(self) -> str:
        """How this attempt is named in owners, leases and the assignments hash ("id#N")."""
        return keys.attempt_key(self.assignment_id, self.number)

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    def but(self, **changes: Any) -> Attempt:
        """A copy with `changes` (dataclasses.replace)."""
        return replace(self, **changes)

    def to_stored(self) -> dict[str, Any]:
        """The stored dict (farm 1's keys; optional fields only when set)."""
        d: dict[str, Any] = {
            "id": self.assignment_id, "attempt": self.number, "state": self.state.value,
            "test_ids": list(self.test_ids), "expected_s": self.expected_s, "worker": self.worker,
            "node": self.node, "started_at": self.started_at, "finished_at": self.finished_at,
            "priority": self.priority, "avoid": list(self.avoid), "published_at": self.published_at,
            "planned_at": self.planned_at, "received": self.received, "message": self.message,
        }
        if self.waiting_completion is not None:
            d["held_completion"] = self.waiting_completion
            d["held_since"] = self.waiting_since
        if self.exit_code is not None:
            d["exit_code"] = self.exit_code
        if self.wall_s is not None:
            d["wall_s"] = self.wall_s
        if self.startup_s:
            d["startup_s"] = self.startup_s
        if self.requeued:
            d["requeued"] = True
        if self.peak_rss_bytes:
            d["peak_rss_bytes"] = self.peak_rss_bytes
            d["cpu_s"] = self.cpu_s
        if self.leaks:
            d["leaks"] = [list(leak) for leak in self.leaks]
        return d

    @classmethod
    def from_stored(cls, d: Mapping[str, Any]) -> Attempt:
        """An attempt from its stored dict (any farm version's: missing keys take their defaults)."""
        return cls(
            str(d["id"]), int(d["attempt"]), AttemptState(d["state"]), tuple(d.get("test_ids") or ()),
            expected_s=float(d.get("expected_s") or 0.0), worker=d.get("worker") or "", node=d.get("node") or "",
            started_at=float(d.get("started_at") or 0.0), finished_at=float(d.get("finished_at") or 0.0),
            priority=int(d.get("priority") or 0), avoid=tuple(d.get("avoid") or ()),
            planned_at=float(d.get("planned_at") or 0.0), published_at=float(d.get("published_at") or 0.0),
            received=int(d.get("received") or 0), waiting_completion=d.get("held_completion"),
            waiting_since=float(d.get("held_since") or 0.0), exit_code=d.get("exit_code"),
            message=d.get("message") or "", wall_s=d.get("wall_s"), requeued=bool(d.get("requeued")),
            startup_s=float(d.get("startup_s") or 0.0), peak_rss_bytes=int(d.get("peak_rss_bytes") or 0),
            cpu_s=float(d.get("cpu_s") or 0.0),
            leaks=tuple((str(t), str(k), str(x)) for t, k, x in d.get("leaks") or ()),
        )

    def pack(self) -> bytes:
        data: bytes = msgpack.packb(self.to_stored(), use_bin_type=True)
        return data

    @classmethod
    def unpack(cls, data: bytes | str) -> Attempt:
        """From the stored bytes (redis-py types a reply as bytes or str; it is bytes here)."""
        return cls.from_stored(msgpack.unpackb(data if isinstance(data, bytes) else data.encode(), raw=False))
