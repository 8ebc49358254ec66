"""`/metrics` of farm's own (Prometheus): figures read from the state store at each scrape, served on loopback.

Everything is read from Redis when Prometheus scrapes, by a custom Collector, so every coordinator
of a farm serves the same farm-wide figures: gauges from the active suites, the worker registry
and the pools' queues; counters from the shared `keys.METRICS` hash (farm.counters). Nothing here
walks a suite's records: a scrape reads, per active suite, its status, spec, counts and two small
hashes of its assignments (`current`, `claims`), so it costs the same at 10 or 100,000 tests.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from farm import counters, keys, registry
from farm.celery_app import pool_queue
from farm.cluster import LOOPBACK
from farm.errors import ProtocolError, UsageError
from farm.model import SuiteSpec, WorkerInfo
from farm.protocol import decode

log = logging.getLogger(__name__)


@dataclass
class ActiveSuite:
    """What a scrape reads of one suite not finished yet."""

    status: str
    pool: str
    counts: dict[str, int]
    current: dict[str, str]  # assignment id -> "N", or "N!" once that attempt ended
    claims: dict[str, str]  # "ID#N" -> the worker that claimed it


@dataclass
class Snapshot:
    """Everything one scrape reports, as read from the state store."""

    suites: list[ActiveSuite] = field(default_factory=list)
    workers: list[WorkerInfo] = field(default_factory=list)
    queues: dict[str, int] = field(default_factory=dict)  # pool -> messages waiting
    counters: dict[str, int] = field(default_factory=dict)
    now: float = 0.0
    stale_s: float = 30.0


def families(s: Snapshot) -> list[Metric]:
    """The metric families of a snapshot (pure)."""
    suites = GaugeMetricFamily("farm_suites", "Suites not finished yet, by status", labels=["status"])
    for status, n in sorted(Counter(x.status for x in s.suites).items()):
        suites.add_metric([status], n)
    finished = CounterMetricFamily("farm_suites_finished", "Suites finished, by final status", labels=["status"])
    tests = CounterMetricFamily("farm_tests", "Tests of finished suites, by outcome", labels=["outcome"])
    for name, n in sorted(s.counters.items()):
        kind, _, label = name.partition(":")
        if kind == "suites" and label:
            finished.add_metric([label], n)
        elif kind == "tests" and label:
            tests.add_metric([label], n)
    active = GaugeMetricFamily("farm_active_tests", "Tests of unfinished suites with an outcome, by outcome",
                               labels=["outcome"])
    tally: Counter[str] = Counter()
    for x in s.suites:
        tally.update(x.counts)
    for outcome, n in sorted(tally.items()):
        active.add_metric([outcome], n)
    assignments = GaugeMetricFamily("farm_assignments", "Attempts of unfinished suites not ended, by pool and "
                                    "state (queued: not claimed by a worker yet)", labels=["pool", "state"])
    busy: Counter[str] = Counter()
    by_pool: Counter[tuple[str, str]] = Counter()
    for x in s.suites:
        for assignment, attempt in x.current.items():
            if attempt.endswith("!"):
                continue
            worker = x.claims.get(keys.attempt_key(assignment, int(attempt))) if attempt.isdigit() else None
            by_pool[(x.pool, "running" if worker else "queued")] += 1
            if worker:
                busy[worker] += 1
    for pool in sorted({p for p, _ in by_pool} | {w.pool for w in s.workers}):
        for state in ("queued", "running"):
            assignments.add_metric([pool, state], by_pool[(pool, state)])
    depth = GaugeMetricFamily("farm_queue_depth", "Messages waiting on a pool's Celery queue", labels=["pool"])
    for pool, n in sorted(s.queues.items()):
        depth.add_metric([pool], n)
    workers = GaugeMetricFamily("farm_workers", "Workers in the registry, by pool and health",
                                labels=["pool", "health"])
    health: Counter[tuple[str, str]] = Counter()
    for w in s.workers:
        health[(w.pool, worker_health(w, s.stale_s, s.now))] += 1
    for (pool, h), n in sorted(health.items()):
        workers.add_metric([pool, h], n)
    slots = GaugeMetricFamily("farm_worker_slots", "Slots of the live workers", labels=["worker", "pool"])
    in_use = GaugeMetricFamily("farm_worker_slots_in_use", "Slots running an attempt (claimed, not ended)",
                               labels=["worker", "pool"])
    for w in sorted(s.workers, key=lambda w: w.name):
        if worker_health(w, s.stale_s, s.now) == "stale":
            continue
        slots.add_metric([w.name, w.pool], w.slots)
        in_use.add_metric([w.name, w.pool], busy[w.name])
    out: list[Metric] = [suites, finished, tests, active, assignments, depth, workers, slots, in_use]
    for name, key, doc in _PLAIN:
        c = CounterMetricFamily(name, doc)
        c.add_metric([], s.counters.get(key, 0))
        out.append(c)
    return out


#: Counters without labels: their name, their field in farm.counters, their help.
_PLAIN = (("farm_records_merged", counters.RECORDS, "Test records merged into suites (rate(): per second)"),
          ("farm_lease_losses", counters.LEASE_LOSSES, "Attempts and collections whose lease lapsed"),
          ("farm_hand_backs", counters.HAND_BACKS, "Attempts that handed their unfinished tests back"),
          ("farm_vm_boots", counters.VM_BOOTS, "VMs booted and ready (libvirt workers)"),
          ("farm_vm_boot_failures", counters.VM_BOOT_FAILURES, "VM boots that failed (libvirt workers)"))

def worker_health(w: WorkerInfo, stale_s: float, now: float) -> str:
    """"healthy", "unhealthy" (it stopped consuming, and says why) or "stale" (no heartbeat)."""
    if not registry.is_alive(w, stale_s, now):
        return "stale"
    return "unhealthy" if w.health else "healthy"


def read(store: Any, stale_s: float, now: float) -> Snapshot:
    """One scrape's snapshot: two round trips plus one per active suite."""
    with store.pipeline(transaction=False) as pipe:
        pipe.smembers(keys.ACTIVE)
        pipe.hgetall(keys.METRICS)
        ids, counted = pipe.execute()
    ids = sorted(keys.text(i) for i in ids)
    with store.pipeline(transaction=False) as pipe:
        for sid in ids:
            pipe.hmget(keys.suite(sid), ["status", "spec"])
            pipe.hgetall(keys.counts(sid))
            pipe.hgetall(keys.current(sid))
            pipe.hgetall(keys.claims(sid))
        replies = pipe.execute()
    suites = []
    for i in range(len(ids)):
        (status, spec), tally, current, claims = replies[4 * i: 4 * i + 4]
        if status is None:
            continue
        suites.append(ActiveSuite(keys.text(status), _pool(spec), _ints(tally), _texts(current), _texts(claims)))
    workers = registry.all_workers(store)
    pools = sorted({x.pool for x in suites} | {w.pool for w in workers})
    with store.pipeline(transaction=False) as pipe:
        for pool in pools:
            pipe.llen(pool_queue(pool).name)
        depths = pipe.execute()
    return Snapshot(suites, workers, dict(zip(pools, map(int, depths), strict=True)),
                    {keys.text(k): int(v) for k, v in counted.items()}, now, stale_s)


def _pool(spec: bytes | None) -> str:
    try:
        return decode(spec, SuiteSpec).pool if spec else "?"
    except ProtocolError:
        return "?"


def _ints(h: dict[bytes, bytes]) -> dict[str, int]:
    return {keys.text(k): int(v) for k, v in h.items()}


def _texts(h: dict[bytes, bytes]) -> dict[str, str]:
    return {keys.text(k): keys.text(v) for k, v in h.items()}


class FarmCollector(Collector):
    """The Collector a coordinator registers: reads the state store at each scrape."""

    def __init__(self, store: Any, stale_s: float) -> None:
        self.store, self.stale_s = store, stale_s
        self._warned_at = float("-inf")

    def collect(self) -> Iterable[Metric]:
        import time

        import redis

        now = time.time()
        try:
            return families(read(self.store, self.stale_s, now))
        except redis.RedisError as exc:  # the scrape gets no samples; one line a minute, no traceback
            if now - self._warned_at >= 60:
                self._warned_at = now
                log.warning("/metrics: cannot read the state store (%s): scrapes get no samples until it is back",
                            exc)
            return []

    def describe(self) -> Iterator[Metric]:
        return iter(())  # no read at registration


def check_address(address: str) -> None:
    """Refuse to serve /metrics beyond loopback: it has no authentication."""
    if address not in LOOPBACK:
        raise UsageError(f"--metrics-address {address}: /metrics has no authentication, so it listens on "
                         "loopback only (127.0.0.1, ::1 or localhost)")


def serve(store: Any, stale_s: float, port: int, address: str = "127.0.0.1") -> None:
    """Serve /metrics on `address`:`port` (loopback) from a daemon thread."""
    from prometheus_client import start_http_server

    check_address(address)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(FarmCollector(store, stale_s))
    try:
        start_http_server(port, addr=address, registry=reg)
    except OSError as exc:
        raise UsageError(f"--metrics-port {port}: cannot listen on {address}: {exc.strerror or exc}") from None
