"""A suite that waits for workers that never come: the submitter says so, and Ctrl-C ends it in time."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import redis
from support.helpers import FARM, LEAN, copy_fixture, stderr_lines_until

from farm import keys

#: The docs promise a canceled suite ends within 15 s; generous on a busy machine.
CANCEL_TIMEOUT_S = 60


def test_a_suite_no_worker_serves_is_said_again_and_ctrl_c_cancels_it_in_time(running_farm, tmp_path: Path) -> None:
    project = copy_fixture("correctness", tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    proc = subprocess.Popen([FARM, "submit-suite", str(project), "--broker", running_farm.broker, "--pool", "nobody",
                             "--", *LEAN, "tests"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        lines = stderr_lines_until(proc, r"no live worker serves pool 'nobody'", 2, 120)
        (suite_id,) = {m.group(1) for line in lines if (m := re.match(r"farm: suite (\S+)", line))}
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=CANCEL_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, err
    assert f"interrupted: canceling suite {suite_id}" in err
    store = redis.Redis.from_url(running_farm.broker)
    try:
        assert not store.sismember(keys.ACTIVE, suite_id), "the canceled suite is still in farm:active"
        assert keys.text(store.hget(keys.suite(suite_id), "status")) == "canceled"
    finally:
        store.close()
