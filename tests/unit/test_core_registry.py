"""farm.registry: which announced workers count as alive."""

from __future__ import annotations

from farm.model import WorkerInfo
from farm.registry import is_alive


def _worker(seen_at: float) -> WorkerInfo:
    return WorkerInfo("w@h", "h", 2, "default", "local", seen_at=seen_at)


def test_a_worker_is_alive_while_its_heartbeat_is_fresh_and_stale_after() -> None:
    assert is_alive(_worker(1000.0), 30.0, now=1029.0)
    assert is_alive(_worker(1000.0), 30.0, now=1030.0)
    assert not is_alive(_worker(1000.0), 30.0, now=1030.5)


def test_an_entry_without_a_heartbeat_counts_as_alive() -> None:
    assert is_alive(_worker(0.0), 30.0, now=1e9)
