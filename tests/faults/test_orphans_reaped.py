"""Processes tests leave behind are killed at the end of their assignment, and reaped: no zombies."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
from support.helpers import LEAN, copy_fixture, farm, running_cluster

from farm.cluster import ClusterSpec
from farm.report.schema import load_report

SUITES = 5


def _zombies_below(pid: int) -> list[str]:
    found = []
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return found
    for proc in procs:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid} (child of {proc.ppid()})")
        except psutil.Error:
            continue
    return found


def test_orphans_and_daemons_tests_leave_are_reaped_by_the_pool_children(tmp_path: Path) -> None:
    project = copy_fixture("orphans", tmp_path)
    with running_cluster(ClusterSpec(workers=1, slots=2)) as cluster:
        (worker,) = [proc for name, proc in cluster.procs if name == "worker-0"]
        for i in range(SUITES):
            report_path = tmp_path / f"r{i}.json"
            result = farm("submit-suite", str(project), "--broker", cluster.broker_url, "--json", str(report_path),
                          "--", *LEAN, "tests")
            assert result.returncode == 0, result.stdout + result.stderr
            assert load_report(report_path)["summary"]["passed"] == 4
        deadline = time.monotonic() + 30  # the attempt's environment is closed as its completion is sent
        zombies = _zombies_below(worker.pid)
        while zombies and time.monotonic() < deadline:
            time.sleep(0.2)
            zombies = _zombies_below(worker.pid)
        assert zombies == [], f"{len(zombies)} zombies below the worker after {SUITES} suites: {zombies}"
        sleeping = [p for p in psutil.Process(worker.pid).children(recursive=True) if p.name() == "sleep"]
        assert sleeping == [], "the orphans were not killed"
