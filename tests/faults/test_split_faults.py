"""A worker killed during a split (run-time balancing): every test is still counted exactly once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
import redis
from support.helpers import copy_fixture, farm, running_cluster, submit_no_wait

from farm import keys
from farm.cluster import ClusterSpec, LocalCluster
from farm.report.schema import load_report

LEASE_S = "3"


@pytest.fixture
def two_workers(monkeypatch: pytest.MonkeyPatch) -> LocalCluster:
    monkeypatch.setenv("FARM_LEASE_S", LEASE_S)
    with running_cluster(ClusterSpec(workers=2, slots=1, loglevel="INFO")) as cluster:
        yield cluster


def _asked(r: redis.Redis, suite_id: str, timeout: float = 120) -> str:
    """The worker (its name) running the first attempt the coordinator asked to split."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for attempt_key in r.hkeys(keys.splits(suite_id)):
            holder = r.get(keys.lease(suite_id, keys.text(attempt_key)))
            if holder is not None:
                return keys.text(holder)
        time.sleep(0.05)
    raise AssertionError("no attempt was ever asked to split")


@pytest.mark.parametrize("delay", [0.0, 0.6], ids=["at-the-ask", "after-the-cut"])
def test_a_worker_killed_during_a_split_leaves_every_test_counted_once(two_workers: LocalCluster, tmp_path: Path,
                                                                       delay: float) -> None:
    project = copy_fixture("split_skew", tmp_path)
    r = redis.Redis.from_url(two_workers.broker_url)
    suite_id = submit_no_wait(two_workers.broker_url, project)
    holder = _asked(r, suite_id)
    time.sleep(delay)  # 0: before its runner saw the fence, most likely; 0.6 s: after it answered (polls: 0.05 s)
    index = holder.split("-")[2]  # farm-default-I-PID@host (farm.cluster)
    (victim,) = [psutil.Process(p.pid) for name, p in two_workers.procs if name == f"worker-{index}"]
    doomed = [victim, *victim.children(recursive=True)]
    os.killpg(victim.pid, signal.SIGKILL)  # the worker, its pool children and their runners
    psutil.wait_procs(doomed, timeout=10)
    out = tmp_path / "r.json"
    result = farm("results", suite_id, "--broker", two_workers.broker_url, "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = load_report(out)
    ids = [t["id"] for t in report["tests"]]
    assert len(ids) == len(set(ids)) == 40 and report["summary"]["passed"] == 40, report["summary"]
    for t in report["tests"]:  # counted once: exactly one test run that is not fenced
        assert sum(1 for run in t["attempts"] if not run["fenced"]) == 1, t
    assert any(a["state"] == "lost" for a in report["assignments"]), "the killed worker's attempt was not lost"
