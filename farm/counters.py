"""Farm-wide counters for the coordinator's `/metrics`: named fields of one Redis hash (`keys.METRICS`).

Kept in the state store, not in a process, so every coordinator serves the same totals and a
count made by a worker (VM boots) is seen by them all. The field set is bounded: one per suite
status and test outcome, and the fixed names below.
"""

from __future__ import annotations

from typing import Any

from farm import keys

RECORDS = "records"  # records merged into suites (a batch delivered again is not counted)
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
