"""LocalCluster.supervise with real processes: what dies comes back, a crash loop is given up,
and a Redis without persistence is never restarted."""

from __future__ import annotations

import os
import signal
import time

import pytest

from farm.cluster import ClusterSpec, LocalCluster
from farm.errors import InfrastructureError
from farm.supervision import RestartPolicy


def _pid(cluster: LocalCluster, name: str) -> int:
    return next(p.pid for n, p in cluster.procs if n == name)


def _supervise_until_back(cluster: LocalCluster, name: str, old: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.supervise()
        pids = [p.pid for n, p in cluster.procs if n == name]
        if pids and pids[0] != old:
            return pids[0]
        time.sleep(0.05)
    raise AssertionError(f"{name} did not come back")


def test_a_process_that_keeps_dying_is_restarted_then_given_up() -> None:
    lines: list[str] = []
    cluster = LocalCluster(ClusterSpec(workers=1, slots=1), log=lines.append,
                           policy=RestartPolicy(first_delay_s=0.1, burst=2, window_s=600))
    cluster.start()
    try:
        cluster.wait_ready()
        for _ in range(2):
            old = _pid(cluster, "coordinator")
            os.kill(old, signal.SIGKILL)
            _supervise_until_back(cluster, "coordinator", old)
        os.kill(_pid(cluster, "coordinator"), signal.SIGKILL)
        given_up = r"^coordinator exited \(killed by SIGKILL\); it was restarted 2 times within 600s: giving up \("
        with pytest.raises(InfrastructureError, match=given_up) as info:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                cluster.supervise()
                time.sleep(0.05)
        assert "\n" not in str(info.value), "one line for the user"
    finally:
        cluster.stop()
    assert lines[0] == "farm: coordinator exited (killed by SIGKILL); restarting in 0.1s (restart 1)"
    assert lines[1].startswith("farm: coordinator restarted (pid ")
    assert lines[2] == "farm: coordinator exited (killed by SIGKILL); restarting in 0.2s (restart 2)"
    assert len(lines) == 4


def test_a_redis_without_append_only_file_is_not_restarted() -> None:
    cluster = LocalCluster(ClusterSpec(workers=1, slots=1, appendonly=False))
    cluster.start()
    try:
        os.kill(_pid(cluster, "redis"), signal.SIGKILL)
        with pytest.raises(InfrastructureError, match=r"^redis exited \(killed by SIGKILL\); it is not restarted"):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                cluster.supervise()
                time.sleep(0.05)
    finally:
        cluster.stop()
