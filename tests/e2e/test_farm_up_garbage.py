"""Under `farm up`, garbage pushed on a queue no longer takes the farm down."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis
from support.helpers import LEAN, farm

from farm import keys
from farm.celery_app import COORDINATOR_QUEUE, pool_queue


def test_farm_up_outlives_garbage_on_its_queues_and_runs_a_suite_after(running_farm, tmp_path: Path) -> None:
    (tmp_path / "proj" / "tests").mkdir(parents=True)
    (tmp_path / "proj" / "tests" / "test_ok.py").write_text("def test_a():\n    pass\n")
    store = redis.Redis.from_url(running_farm.broker)
    try:
        before = store.llen(keys.DEAD_LETTERS)
        for queue in (COORDINATOR_QUEUE, pool_queue("default").name):
            store.lpush(queue, b"garbage-not-json", b"[1,2,3]")
        result = farm("submit-suite", str(tmp_path / "proj"), "--broker", running_farm.broker, "--", *LEAN, "tests")
        assert result.returncode == 0, result.stdout + result.stderr
        assert store.llen(keys.DEAD_LETTERS) == before + 4
    finally:
        store.close()
    try:
        running_farm.proc.wait(timeout=1)
    except subprocess.TimeoutExpired:
        pass
    assert running_farm.proc.poll() is None, "farm up exited"
