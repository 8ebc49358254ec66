"""Workers that die mid-assignment, killed for real: their unfinished tests run again, counted once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from support.helpers import assert_nothing_left_of, copy_fixture, farm, runner_mode, running_cluster, submit_no_wait

from farm.cluster import ClusterSpec, LocalCluster
from farm.report.schema import load_report

LEASE_S = "3"  # short, so a lost attempt is noticed within seconds in tests


@pytest.fixture
def two_workers(monkeypatch: pytest.MonkeyPatch) -> LocalCluster:
    monkeypatch.setenv("FARM_LEASE_S", LEASE_S)  # the cluster's processes inherit it
    with running_cluster(ClusterSpec(workers=2, slots=1, loglevel="INFO")) as cluster:
        yield cluster


def _busy_worker(cluster: LocalCluster, timeout: float = 60) -> tuple[str, psutil.Process]:
    """A worker process one of whose pool children is running a pytest runner right now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in cluster.procs:
            if not name.startswith("worker-"):
                continue
            for child in psutil.Process(proc.pid).children(recursive=True):
                if runner_mode(child) == "run":  # running tests, not collecting
                    return name, psutil.Process(proc.pid)
        time.sleep(0.1)
    raise AssertionError("no worker ever ran an assignment")


def _is_runner(proc: psutil.Process) -> bool:
    return runner_mode(proc) == "run"


def _check_every_test_once(report: dict, total: int) -> dict[str, dict]:
    ids = [t["id"] for t in report["tests"]]
    assert len(ids) == len(set(ids)) == total
    assert report["summary"]["passed"] == total, report["summary"]
    return {t["id"]: t for t in report["tests"]}


def test_kill_9_of_a_worker_mid_assignment_runs_its_unfinished_tests_again(two_workers: LocalCluster,
                                                                            tmp_path: Path) -> None:
    project = copy_fixture("slow", tmp_path)
    report_path = tmp_path / "r.json"
    suite_id = submit_no_wait(two_workers.broker_url, project)
    name, victim = _busy_worker(two_workers)
    doomed = [victim, *victim.children(recursive=True)]
    os.killpg(victim.pid, signal.SIGKILL)  # the worker, its pool children, and their runners
    killed_at = time.monotonic()
    psutil.wait_procs(doomed, timeout=10)
    result = farm("results", suite_id, "--broker", two_workers.broker_url, "--json", str(report_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = load_report(report_path)
    tests = _check_every_test_once(report, 40)
    lost = [a for a in report["assignments"] if a["state"] == "lost"]
    assert lost, "no attempt was recorded as lost"
    for attempt in lost:
        again = [a for a in report["assignments"]
                 if a["id"] == attempt["id"] and a["attempt"] == attempt["attempt"] + 1]
        assert again and again[0]["state"] == "done"
        for test_id in again[0]["tests"]:
            assert tests[test_id]["attempts"][-1]["attempt"] == attempt["attempt"] + 1
    # Noticed within the lease (3 s) plus the sweep, far below the 30 s bound; the rest is the rerun.
    assert time.monotonic() - killed_at < 60
    _check_lost_is_infrastructure(report, lost, result.stdout)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in doomed)
    assert_nothing_left_of(suite_id)


def _check_lost_is_infrastructure(report: dict, lost: list[dict], stdout: str) -> None:
    """The failure analysis names each lost attempt as an infrastructure event, and nothing else
    (every test passed in the end), in the JSON and in the summary's failure-analysis line."""
    (infrastructure,) = report["analysis"]["classes"]
    assert infrastructure["class"] == "infrastructure" and infrastructure["count"] == len(lost)
    events = infrastructure["detail"]["events"]
    assert [(e["cause"], e["assignment"], e["attempt"], e["worker"]) for e in events] == [
        ("lost", a["id"], a["attempt"], a["worker"]) for a in lost]
    assert set(infrastructure["tests"]) == {t for a in lost for t in a["tests"]}
    words = ", ".join(f"worker {a['worker']} lost" for a in lost[:3])
    assert f"failures: {len(lost)} infrastructure ({words}" in stdout, stdout


def test_kill_9_of_a_pool_child_runs_its_tests_again_once(two_workers: LocalCluster, tmp_path: Path) -> None:
    project = copy_fixture("slow", tmp_path)
    report_path = tmp_path / "r.json"
    suite_id = submit_no_wait(two_workers.broker_url, project)
    _, worker = _busy_worker(two_workers)
    child = next(c for c in worker.children() if any(_is_runner(g) for g in c.children()))
    runner = [g for g in child.children(recursive=True)]
    child.kill()  # the pool child only: Celery's main process lives on and forks a new one
    result = farm("results", suite_id, "--broker", two_workers.broker_url, "--json", str(report_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = load_report(report_path)
    _check_every_test_once(report, 40)
    assert any(a["state"] == "lost" for a in report["assignments"])
    # Its runner died with it (parent-death signal).
    gone, alive = psutil.wait_procs(runner, timeout=10)
    assert not alive
    assert_nothing_left_of(suite_id)


def test_kill_9_of_the_worker_collecting_the_suite_collects_it_again(two_workers: LocalCluster,
                                                                     tmp_path: Path) -> None:
    _kill_the_collecting_worker(two_workers, tmp_path)


def test_kill_9_of_a_worker_collecting_in_two_runners_collects_it_again(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    # Two slots a worker: its collection is split over two runners (workers/collect_shards.py).
    monkeypatch.setenv("FARM_LEASE_S", LEASE_S)
    with running_cluster(ClusterSpec(workers=2, slots=2, loglevel="INFO")) as cluster:
        _kill_the_collecting_worker(cluster, tmp_path, collectors=2)


def _kill_the_collecting_worker(two_workers: LocalCluster, tmp_path: Path, collectors: int = 1) -> None:
    project = copy_fixture("slow_collect", tmp_path)
    report_path = tmp_path / "r.json"
    suite_id = submit_no_wait(two_workers.broker_url, project)
    deadline = time.monotonic() + 60
    victim, victim_index = None, ""
    while victim is None:
        assert time.monotonic() < deadline, "no worker ever collected the suite"
        for name, proc in two_workers.procs:
            if name.startswith("worker-") and sum(
                    runner_mode(g) == "collect" for g in psutil.Process(proc.pid).children(recursive=True)
            ) >= collectors:
                victim, victim_index = psutil.Process(proc.pid), name.removeprefix("worker-")
        time.sleep(0.1)
    os.killpg(victim.pid, signal.SIGKILL)
    result = farm("results", suite_id, "--broker", two_workers.broker_url, "--json", str(report_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = load_report(report_path)
    _check_every_test_once(report, 5)
    # Collected again, and run, by the surviving worker (cluster workers are named farm-POOL-INDEX-…).
    dead_prefix = f"farm-default-{victim_index}-"
    assert not report["collection"]["worker"].startswith(dead_prefix)
    assert all(a["worker"] and not a["worker"].startswith(dead_prefix) for a in report["assignments"])
    assert_nothing_left_of(suite_id)
