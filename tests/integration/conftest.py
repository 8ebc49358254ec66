"""Real services for integration tests: a redis-server of our own, and a local farm's processes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from support.helpers import running_cluster

from farm.cluster import ClusterSpec, LocalCluster, free_port


@pytest.fixture
def redis_url(redis_server_bin: str, tmp_path: Path) -> Iterator[str]:
    """A private redis-server on a free loopback port (never the machine's 6379)."""
    port = free_port()
    proc = subprocess.Popen([redis_server_bin, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
                             "--save", "", "--appendonly", "no", "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
    client.close()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(redis_server_bin: str) -> Iterator[LocalCluster]:
    """A real farm: redis-server, the coordinator and one worker with two slots."""
    with running_cluster(ClusterSpec(workers=1, slots=2, loglevel="INFO")) as c:
        yield c
