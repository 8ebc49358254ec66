"""farm.counters on a real redis-server: a worker's count (VM boots) reaches the hash every
coordinator's /metrics reads, from any process, and a store that does not answer loses the count
without an error."""

from __future__ import annotations

import logging

import redis

from coordinator import metrics
from farm import counters
from farm.cluster import free_port


def test_a_workers_vm_boot_counts_reach_every_coordinators_metrics(redis_url: str) -> None:
    count = counters.counter(redis_url)
    count(counters.VM_BOOTS)
    count(counters.VM_BOOTS)
    count(counters.VM_BOOT_FAILURES)
    client = redis.Redis.from_url(redis_url)
    try:
        figures = {f.name: f.samples[0].value for f in metrics.families(metrics.read(client, 30.0, 0.0))
                   if f.name.startswith("farm_vm")}
    finally:
        client.close()
    assert figures == {"farm_vm_boots": 2, "farm_vm_boot_failures": 1}


def test_a_count_the_store_does_not_take_is_lost_quietly(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="farm.counters"):
        counters.counter(f"redis://127.0.0.1:{free_port()}/0")(counters.VM_BOOTS)  # nothing listens there
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [f"could not count {counters.VM_BOOTS}"]
