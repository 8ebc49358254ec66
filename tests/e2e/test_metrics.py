"""`farm up --metrics-port`, for real: the coordinator's Prometheus /metrics scraped during and after
real suites and parsed with prometheus_client's own parser; the figures are the suites' own; two
coordinators serve the same figures; it listens on loopback only, and refuses to listen anywhere else."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families
from support.helpers import copy_fixture, farm, submit_no_wait

from farm.cluster import free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of /metrics, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def scrape_until(port: int, ready: Callable[[Samples], bool], timeout: float = 120) -> Samples:
    """Scrape until `ready` holds of what /metrics says (not a timed assert: a bound on waiting)."""
    deadline = time.monotonic() + timeout
    last: Samples = {}
    while time.monotonic() < deadline:
        try:
            last = scrape(port)
        except OSError:
            last = {}
        if last and ready(last):
            return last
        time.sleep(0.2)
    raise AssertionError(f"/metrics never showed it: {sorted(last.items())}")


def test_metrics_during_and_after_real_suites_match_their_reports(farm_up, tmp_path: Path) -> None:
    port = free_port()
    running = farm_up("--workers", "1", "--slots", "2", "--metrics-port", str(port))
    idle = scrape_until(port, lambda s: total(s, "farm_workers", health="healthy") == 1)
    assert total(idle, "farm_worker_slots") == 2
    assert total(idle, "farm_tests_total") == 0 and total(idle, "farm_suites") == 0

    slow = submit_no_wait(running.broker, copy_fixture("slow", tmp_path))  # 40 tests of 0.5 s
    during = scrape_until(port, lambda s: total(s, "farm_suites", status="running") == 1
                          and total(s, "farm_worker_slots_in_use") >= 1)
    assert 1 <= total(during, "farm_assignments", pool="default", state="running") <= 2
    assert total(during, "farm_worker_slots_in_use") == total(during, "farm_assignments", state="running")
    assert total(during, "farm_workers", pool="default", health="healthy") == 1

    reports = []
    # collect_error: its test's outcome is decided at collection and never merged, yet counted.
    for suite in (slow, *(submit_no_wait(running.broker, copy_fixture(name, tmp_path))
                          for name in ("correctness", "collect_error"))):
        out = tmp_path / f"{suite}.json"
        farm("results", suite, "--broker", running.broker, "--json", str(out))
        reports.append(json.loads(out.read_text()))
    after = scrape_until(port, lambda s: total(s, "farm_suites_finished_total") == 3)
    outcomes = {k for r in reports for k in r["summary"] if k != "total"}
    for outcome in outcomes:
        want = sum(r["summary"][outcome] for r in reports)
        assert total(after, "farm_tests_total", outcome=outcome) == want, outcome
    assert total(after, "farm_tests_total") == sum(r["summary"]["total"] for r in reports)
    assert total(after, "farm_suites_finished_total", status="finished") == 3
    assert total(after, "farm_suites") == 0 and total(after, "farm_worker_slots_in_use") == 0
    assert total(after, "farm_assignments") == 0
    ran = reports[:2]  # collect_error's one test never ran: no record of it was merged
    assert total(after, "farm_records_merged_total") >= sum(r["summary"]["total"] for r in ran)
    assert total(after, "farm_lease_losses_total") == 0


def test_every_coordinator_serves_the_same_farm_on_loopback_only(farm_up) -> None:
    port = free_port()  # coordinator 0's; coordinator 1 serves port + 1
    running = farm_up("--workers", "1", "--slots", "3", "--coordinators", "2", "--metrics-port", str(port))
    first, second = (scrape_until(p, lambda s: total(s, "farm_workers", health="healthy") == 1)
                     for p in (port, port + 1))
    assert first == second  # read from Redis: the same farm-wide figures from each
    assert total(first, "farm_worker_slots") == 3
    listening = [c.laddr for p in psutil.Process(running.proc.pid).children(recursive=True)
                 for c in p.net_connections("inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port in (port, port + 1)]
    assert sorted(a.port for a in listening) == [port, port + 1], listening
    assert {a.ip for a in listening} == {"127.0.0.1"}, listening


def test_the_coordinator_refuses_a_metrics_address_beyond_loopback() -> None:
    done = farm("coordinator", "--broker", "redis://127.0.0.1:1/0", "--metrics-port", "9100",
                "--metrics-address", "0.0.0.0")  # noqa: S104
    assert done.returncode == 4, done
    assert done.stderr.strip().count("\n") == 0 and "loopback only" in done.stderr, done.stderr
