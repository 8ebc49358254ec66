"""Which workers are alive: each announces itself with a heartbeat in the state store (Redis I/O)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from farm import keys
from farm.errors import ProtocolError
from farm.model import WorkerInfo
from farm.protocol import decode, encode

#: How often a worker renews its announcement.
HEARTBEAT_S = 5.0


def announce(store: Any, info: WorkerInfo) -> None:
    """Write (or renew) a worker's entry, stamped with the time."""
    store.hset(keys.WORKERS, info.name, encode(replace(info, seen_at=time.time())))


def remove(store: Any, name: str) -> None:
    store.hdel(keys.WORKERS, name)


def all_workers(store: Any) -> list[WorkerInfo]:
    """Every entry, alive or not (malformed ones skipped)."""
    out = []
    for data in store.hvals(keys.WORKERS):
        try:
            out.append(decode(data, WorkerInfo))
        except ProtocolError:
            continue
    return out


def is_alive(info: WorkerInfo, stale_s: float, now: float | None = None) -> bool:
    """Heard from within `stale_s` (an entry from before heartbeats, seen_at 0, counts as alive)."""
    return not info.seen_at or (now or time.time()) - info.seen_at <= stale_s


def alive(store: Any, stale_s: float, pool: str | None = None) -> list[WorkerInfo]:
    """The workers heard from within `stale_s`, of `pool` if given."""
    now = time.time()
    return [w for w in all_workers(store) if is_alive(w, stale_s, now) and (pool is None or w.pool == pool)]
