"""coordinator/metrics.py without services: the figures of a snapshot, the loopback rule, and a
Grafana dashboard that asks only for metrics the coordinator exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from coordinator import metrics
from coordinator.metrics import ActiveSuite, Snapshot
from farm import counters
from farm.errors import UsageError
from farm.model import WorkerInfo

DASHBOARD = Path(__file__).parents[2] / "compose" / "grafana-dashboard.json"
NOW = 1000.0


def _exposed(snapshot: Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The snapshot as /metrics text, parsed back by prometheus_client's own parser."""

    class Fixed(metrics.FarmCollector):
        def collect(self):  # type: ignore[no-untyped-def]
            return metrics.families(snapshot)

    reg = CollectorRegistry(auto_describe=False)
    reg.register(Fixed(None, 30.0))
    text = generate_latest(reg).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_a_snapshot_gives_suites_assignments_slots_workers_and_counters() -> None:
    workers = [WorkerInfo("w1", "h", 4, "default", "local", seen_at=NOW),
               WorkerInfo("w2", "h", 2, "gpu", "local", seen_at=NOW, health="3 VM boots failed"),
               WorkerInfo("w3", "h", 8, "default", "local", seen_at=NOW - 100)]
    suites = [ActiveSuite("running", "default", {"passed": 5, "failed": 1},
                          {"a1": "1", "a2": "2", "a3": "1!", "a4": "1"}, {"a1#1": "w1", "a2#2": "w1", "a3#1": "w1"}),
              ActiveSuite("collecting", "gpu", {}, {}, {})]
    got = _exposed(Snapshot(suites, workers, {"default": 7, "gpu": 0},
                            {counters.suites_field("finished"): 3, counters.tests_field("passed"): 90,
                             counters.RECORDS: 120, counters.LEASE_LOSSES: 2}, NOW, 30.0))
    assert got[("farm_suites", (("status", "running"),))] == 1
    assert got[("farm_suites", (("status", "collecting"),))] == 1
    assert got[("farm_suites_finished_total", (("status", "finished"),))] == 3
    assert got[("farm_tests_total", (("outcome", "passed"),))] == 90
    assert got[("farm_active_tests", (("outcome", "failed"),))] == 1
    assert got[("farm_assignments", (("pool", "default"), ("state", "running")))] == 2  # a3 ended
    assert got[("farm_assignments", (("pool", "default"), ("state", "queued")))] == 1  # a4: unclaimed
    assert got[("farm_queue_depth", (("pool", "default"),))] == 7
    assert got[("farm_workers", (("health", "healthy"), ("pool", "default")))] == 1
    assert got[("farm_workers", (("health", "unhealthy"), ("pool", "gpu")))] == 1
    assert got[("farm_workers", (("health", "stale"), ("pool", "default")))] == 1
    assert got[("farm_worker_slots_in_use", (("pool", "default"), ("worker", "w1")))] == 2
    assert got[("farm_worker_slots", (("pool", "default"), ("worker", "w1")))] == 4
    assert ("farm_worker_slots", (("pool", "default"), ("worker", "w3"))) not in got  # stale: its slots gone
    assert got[("farm_records_merged_total", ())] == 120
    assert got[("farm_lease_losses_total", ())] == 2
    assert got[("farm_vm_boots_total", ())] == 0


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.5"])  # noqa: S104
def test_metrics_refuse_to_listen_beyond_loopback(address: str) -> None:
    with pytest.raises(UsageError, match="loopback only"):
        metrics.check_address(address)


def test_every_dashboard_expression_asks_for_metrics_the_coordinator_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    # What the coordinator exports: every family, whatever the farm's state (a counter's samples add _total).
    families = {f.name for f in metrics.families(Snapshot(now=NOW))}
    exported = families | {n + "_total" for n in families}
    for expr in exprs:
        names = set(re.findall(r"\bfarm_\w+", expr))
        assert names, f"{expr!r} asks for no farm metric"
        assert names <= exported, f"{expr!r}: not exported: {names - exported}"


def test_the_metrics_port_comes_from_the_environment_and_is_checked() -> None:
    from farm.config import Settings

    assert Settings.from_env({}).metrics_port is None  # off unless asked for
    assert Settings.from_env({"FARM_METRICS_PORT": "9464"}).metrics_port == 9464
    for bad in ("0", "70000", "http"):
        with pytest.raises(UsageError, match="FARM_METRICS_PORT must be a port"):
            Settings.from_env({"FARM_METRICS_PORT": bad})


def test_a_scrape_while_the_store_is_unreachable_has_no_samples_and_warns_once_a_minute(caplog) -> None:
    import logging

    import redis

    from coordinator.metrics import FarmCollector
    from farm.cluster import free_port

    dead = redis.Redis(port=free_port(), socket_connect_timeout=1)  # nothing listens there
    collector = FarmCollector(dead, stale_s=30)
    with caplog.at_level(logging.WARNING, logger="coordinator.metrics"):
        assert list(collector.collect()) == []
        assert list(collector.collect()) == []
    warnings = [r for r in caplog.records if "cannot read the state store" in r.getMessage()]
    assert len(warnings) == 1 and not any(r.exc_info for r in warnings)
