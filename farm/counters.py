"""Farm-wide counters for the coordinator's `/metrics`: named fields of one Redis hash (`keys.METRICS`).

Kept in the state store, not in a process, so every coordinator serves the same totals and a
count made by a worker (VM boots) is seen by them all. The field set is bounded: one per suite
status and test outcome, and the fixed names below.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from farm import keys

log = logging.getLogger("farm.counters")

RECORDS = "records"  # test runs merged into suites, by MERGE itself (a batch delivered again is not counted)
LEASE_LOSSES = "lease_losses"  # attempts (and collections) taken as lost: their lease lapsed
HAND_BACKS = "hand_backs"  # attempts that stopped early and handed their unfinished tests back
VM_BOOTS = "vm_boots"  # VMs booted and ready (libvirt workers)
VM_BOOT_FAILURES = "vm_boot_failures"  # VM boots that failed


def suites_field(status: str) -> str:
    """The field counting suites that finished with `status`."""
    return f"suites:{status}"


def tests_field(outcome: str) -> str:
    """The field counting tests of finished suites that ended with `outcome`."""
    return f"tests:{outcome}"


def bump(pipe: Any, field: str, by: int = 1) -> None:
    """Add `by` to a counter, on a client or on the pipeline of the transaction it counts."""
    if by:
        pipe.hincrby(keys.METRICS, field, by)


def read(store: Any) -> dict[str, int]:
    """Every counter (one HGETALL of a small hash)."""
    return {keys.text(k): int(v) for k, v in store.hgetall(keys.METRICS).items()}


def counter(url: str) -> Callable[[str], None]:
    """A function that adds one to a counter in the state store at `url`, for a worker (VM boots):
    its own connection per process (pool processes do not share the parent's), made at the first
    count. A count the store does not take is lost with a warning, never an error: a boot must not
    fail because a figure could not be written."""
    made: dict[int, Any] = {}

    def count(name: str) -> None:
        import redis

        try:
            client = made.get(os.getpid())
            if client is None:
                # Quick to give up: no retrying through a Redis restart in the middle of a boot.
                client = made[os.getpid()] = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
            bump(client, name)
        except redis.RedisError as exc:
            log.warning("could not count %s: %s", name, exc)

    return count
