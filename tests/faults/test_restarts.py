"""Restarts mid-suite, for real: the coordinator killed and started again, Redis restarted and
crashed, a worker stopped with SIGTERM. Each suite still ends with every test counted once."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from support.helpers import assert_nothing_left_of, copy_fixture, farm, running_cluster, submit_no_wait

from farm import keys
from farm.cluster import ClusterSpec, LocalCluster
from farm.report.schema import load_report

TOTAL = 40  # the slow fixture: 40 tests of 0.5 s


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    monkeypatch.setenv("FARM_LEASE_S", "3")  # the cluster's processes inherit these
    monkeypatch.setenv("FARM_COORDINATOR_VISIBILITY_S", "3")
    with running_cluster(ClusterSpec(workers=2, slots=1, appendonly=True, loglevel="INFO")) as c:
        yield c


def _submit(cluster: LocalCluster, tmp_path: Path) -> str:
    return submit_no_wait(cluster.broker_url, copy_fixture("slow", tmp_path))


def _wait_for_progress(cluster: LocalCluster, suite_id: str, done: int, timeout: float = 60) -> None:
    """Until `done` tests of the suite have an outcome (so the fault lands mid-suite)."""
    store = redis.Redis.from_url(cluster.broker_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if int(store.hget(keys.suite(suite_id), "done") or 0) >= done:
                return
            time.sleep(0.1)
    finally:
        store.close()
    raise AssertionError(f"the suite never reached {done} finished tests")


def _final_report(cluster: LocalCluster, suite_id: str, tmp_path: Path) -> dict:
    path = tmp_path / "report.json"
    result = farm("results", suite_id, "--broker", cluster.broker_url, "--json", str(path))
    assert result.returncode == 0, result.stdout + result.stderr + cluster.log_tail("coordinator")
    report = load_report(path)
    ids = [t["id"] for t in report["tests"]]
    assert len(ids) == len(set(ids)) == TOTAL, "every collected test appears exactly once"
    assert report["summary"]["passed"] == TOTAL and report["summary"]["total"] == TOTAL, report["summary"]
    for test in report["tests"]:
        assert [a for a in test["attempts"] if not a["fenced"]], f"{test['id']} has no attempt recorded"
    assert report["status"] == "finished" and report["exit_code"] == 0
    return report


def _pid(cluster: LocalCluster, name: str) -> int:
    return next(p.pid for n, p in cluster.procs if n == name)


def test_a_coordinator_killed_mid_suite_is_replaced_and_the_suite_completes(cluster: LocalCluster,
                                                                           tmp_path: Path) -> None:
    suite_id = _submit(cluster, tmp_path)
    _wait_for_progress(cluster, suite_id, 6)
    old = _pid(cluster, "coordinator")
    cluster.restart("coordinator", signal.SIGKILL)  # with the messages it had fetched, unacknowledged
    assert _pid(cluster, "coordinator") != old
    report = _final_report(cluster, suite_id, tmp_path)
    assert "reconciled" in cluster.log_tail("coordinator", 20000)
    assert {a["state"] for a in report["assignments"]} <= {"done", "lost", "handback"}
    assert_nothing_left_of(suite_id)


def test_a_redis_restart_mid_suite_loses_no_test(cluster: LocalCluster, tmp_path: Path) -> None:
    suite_id = _submit(cluster, tmp_path)
    _wait_for_progress(cluster, suite_id, 6)
    cluster.restart("redis", signal.SIGTERM)  # a clean restart: Redis writes its AOF and reloads it
    report = _final_report(cluster, suite_id, tmp_path)
    assert report["collection"] is not None
    cluster.check_alive()  # workers and the coordinator reconnected: none of them gave up and exited
    assert_nothing_left_of(suite_id)


def test_a_redis_crash_mid_suite_loses_no_test(cluster: LocalCluster, tmp_path: Path) -> None:
    """kill -9: up to a second of writes is lost (appendfsync everysec); messages and merges lost
    with it are recovered by the records' recount, leases and the republishing of lost messages."""
    suite_id = _submit(cluster, tmp_path)
    _wait_for_progress(cluster, suite_id, 6)
    cluster.restart("redis", signal.SIGKILL)
    _final_report(cluster, suite_id, tmp_path)
    cluster.check_alive()
    assert_nothing_left_of(suite_id)


def test_a_worker_stopped_with_sigterm_hands_its_assignment_back_at_once(cluster: LocalCluster,
                                                                          tmp_path: Path) -> None:
    suite_id = _submit(cluster, tmp_path)
    _wait_for_progress(cluster, suite_id, 4)
    cluster.restart("worker-0", signal.SIGTERM)  # a warm shutdown, then the same worker again
    report = _final_report(cluster, suite_id, tmp_path)
    handed = [a for a in report["assignments"] if a["state"] == "handback"]
    assert handed, f"no assignment was handed back: {report['assignments']}"
    for a in handed:
        again = [b for b in report["assignments"] if b["id"] == a["id"] and b["attempt"] == a["attempt"] + 1]
        assert again and again[0]["state"] == "done"
    assert_nothing_left_of(suite_id)
