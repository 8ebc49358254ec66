"""The only worker of a pool dies mid-run: the submitter says so, again, and Ctrl-C still ends the suite."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import psutil
import redis
from support.helpers import FARM, LEAN, copy_fixture, running_cluster, stderr_lines_until

from farm import keys
from farm.cluster import ClusterSpec
from farm.processes import signal_group


def test_when_the_only_worker_dies_mid_run_the_submitter_says_so_every_so_often(tmp_path: Path) -> None:
    project = copy_fixture("slow", tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    with running_cluster(ClusterSpec(workers=1, slots=1)) as cluster:
        proc = subprocess.Popen([FARM, "submit-suite", str(project), "--broker", cluster.broker_url, "--", *LEAN,
                                 "tests"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            stderr_lines_until(proc, r"running: \d+/40", 1, 120)
            (worker,) = [p for name, p in cluster.procs if name == "worker-0"]
            below = psutil.Process(worker.pid).children(recursive=True)
            signal_group(worker.pid, signal.SIGKILL)  # kill -9: no goodbye, its heartbeat goes stale
            for child in below:
                try:
                    child.kill()
                except psutil.Error:
                    pass
            stderr_lines_until(proc, r"no live worker serves pool 'default'", 2, 180)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 2, err
        suite_id = re.search(r"canceling suite (\S+)", err)
        assert suite_id, err
        store = redis.Redis.from_url(cluster.broker_url)
        assert not store.sismember(keys.ACTIVE, suite_id.group(1))
        store.close()
