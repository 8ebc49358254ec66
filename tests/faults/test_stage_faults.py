"""A worker killed for real during a staged suite's first stage: the stage's unfinished tests run
again, the rest starts after it, and every test is counted once."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from support.helpers import LEAN, assert_nothing_left_of, copy_fixture, farm, runner_mode, running_cluster

from farm.cluster import ClusterSpec, LocalCluster
from farm.report.schema import load_report

SLOW_SMOKE = '''
import time

import pytest

@pytest.mark.smoke
@pytest.mark.parametrize("n", range(8))
def test_slow_smoke(n):
    time.sleep(0.5)
'''


@pytest.fixture
def two_workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    monkeypatch.setenv("FARM_LEASE_S", "3")  # a lost attempt noticed within seconds
    with running_cluster(ClusterSpec(workers=2, slots=1, loglevel="INFO")) as cluster:
        yield cluster


def _running_worker(cluster: LocalCluster, timeout: float = 60) -> psutil.Process:
    """A worker process one of whose pool children runs a pytest runner (not a collection) now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in cluster.procs:
            if name.startswith("worker-") and any(
                    runner_mode(c) == "run" for c in psutil.Process(proc.pid).children(recursive=True)):
                return psutil.Process(proc.pid)
        time.sleep(0.1)
    raise AssertionError("no worker ever ran an assignment")


def test_kill_9_of_a_worker_in_the_first_stage_runs_every_test_once(two_workers: LocalCluster,
                                                                     tmp_path: Path) -> None:
    project = copy_fixture("stages", tmp_path)
    (project / "tests" / "test_smoke_slow.py").write_text(SLOW_SMOKE)
    submit = farm("submit-suite", str(project), "--broker", two_workers.broker_url, "--no-wait",
                  "--stage", "smoke=-m smoke", "--stage", "rest=", "--", *LEAN)
    assert submit.returncode == 0, submit.stderr
    suite_id = submit.stdout.strip()
    victim = _running_worker(two_workers)
    status = farm("status", suite_id, "--broker", two_workers.broker_url)
    assert status.stdout.startswith(f"{suite_id}: running stage smoke, "), status.stdout + status.stderr
    doomed = [victim, *victim.children(recursive=True)]
    os.killpg(victim.pid, signal.SIGKILL)  # the worker, its pool children and their runners
    psutil.wait_procs(doomed, timeout=10)
    report_path = tmp_path / "r.json"
    result = farm("results", suite_id, "--broker", two_workers.broker_url, "--json", str(report_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = load_report(report_path)
    ids = [t["id"] for t in report["tests"]]
    assert len(ids) == len(set(ids)) == 18, ids
    assert report["summary"]["passed"] == 17 and report["summary"]["skipped"] == 1, report["summary"]
    assert [(s["name"], s["status"], s["tests"]) for s in report["stages"]] == [
        ("smoke", "passed", 12), ("rest", "passed", 6)]
    lost = [a for a in report["assignments"] if a["state"] == "lost"]
    assert lost and all("-s1a" not in a["id"] for a in lost), "the lost attempt was not of the first stage"
    smoke = [a for a in report["assignments"] if "-s1a" not in a["id"]]
    rest = [a for a in report["assignments"] if "-s1a" in a["id"]]
    assert rest and min(a["started_at"] for a in rest) >= max(a["finished_at"] for a in smoke)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in doomed)
    assert_nothing_left_of(suite_id)
