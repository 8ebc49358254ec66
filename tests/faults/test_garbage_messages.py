"""Garbage pushed on the farm's queues is dropped and dead-lettered; the services keep consuming."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import redis
from support.helpers import LEAN, farm, running_cluster
from support.services import wait_for

from farm import keys
from farm.celery_app import COORDINATOR_QUEUE, RUN_ASSIGNMENT, pool_queue
from farm.cluster import ClusterSpec


def _envelope(queue: str, body: str, **headers: str) -> bytes:
    """A kombu envelope as the Redis transport stores it, around `body` (claimed to be base64)."""
    return json.dumps({
        "body": body, "content-encoding": "binary", "content-type": "application/x-msgpack", "headers": headers,
        "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "farm", "routing_key": queue},
                       "delivery_mode": 2, "delivery_tag": "farm-test-garbage", "priority": 0},
    }).encode()


def _garbage(queue: str) -> list[bytes]:
    return [
        b"garbage-not-json",
        b"[1,2,3]",
        _envelope(queue, "!!!not base64!!!", task=RUN_ASSIGNMENT, id="g1"),
        # Past kombu, Celery's own checks: a body that is base64 but not msgpack (on the
        # coordinator's queue, a task it does not know, too).
        _envelope(queue, base64.b64encode(b"\xc1 not msgpack").decode(), task=RUN_ASSIGNMENT, id="g2"),
    ]


def test_garbage_on_every_queue_is_dead_lettered_and_the_farm_runs_a_suite_after(tmp_path: Path) -> None:
    (tmp_path / "proj" / "tests").mkdir(parents=True)
    (tmp_path / "proj" / "tests" / "test_ok.py").write_text("def test_a():\n    pass\n\n\ndef test_b():\n    pass\n")
    with running_cluster(ClusterSpec(workers=1, slots=1)) as cluster:
        store = redis.Redis.from_url(cluster.broker_url)
        queues = (COORDINATOR_QUEUE, pool_queue("default").name)
        for queue in queues:
            for raw in _garbage(queue):
                store.lpush(queue, raw)
        expected = len(queues) * len(_garbage(""))
        wait_for(lambda: store.llen(keys.DEAD_LETTERS) >= expected and not any(store.llen(q) for q in queues), 60,
                 f"the garbage was not consumed: {store.llen(keys.DEAD_LETTERS)} dead letters")
        cluster.check_alive()  # the coordinator and the worker outlived it

        result = farm("submit-suite", str(tmp_path / "proj"), "--broker", cluster.broker_url, "--", *LEAN, "tests")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 passed" in result.stdout
        cluster.check_alive()

        letters = [json.loads(e) for e in store.lrange(keys.DEAD_LETTERS, 0, -1)]
        assert sorted(letter["queue"] for letter in letters) == sorted(q for q in queues for _ in range(4))
        assert {letter["raw"] for letter in letters} >= {"garbage-not-json", "[1,2,3]"}
        assert any("JSONDecodeError" in letter["error"] for letter in letters)
        for name in ("coordinator", "worker-0"):
            log = cluster.log_tail(name, 100_000)
            assert log.count("dropped an unusable message") == 4, log
            assert "Traceback" not in log, log
        store.close()
