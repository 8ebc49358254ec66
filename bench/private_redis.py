"""A private redis-server for the benches that drive the coordinator's code in-process
(bench/planning.py, bench/results_path.py): a free loopback port, no persistence, stopped and its
directory removed however the block ends."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator

import redis

from farm.cluster import free_port
from farm.errors import UsageError
from farm.redis_binary import find_server


@contextlib.contextmanager
def redis_server(prefix: str = "farm-bench-redis-") -> Iterator[str]:
    """Start one (redis-server, else valkey-server: farm.redis_binary) and yield its URL; UsageError
    when there is none or it does not answer within 20 s."""
    binary = find_server().path
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=prefix) as workdir:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir, "--save", "",
                                 "--appendonly", "no", "--daemonize", "no"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            client = redis.Redis.from_url(url)
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise UsageError(f"{binary} did not start on port {port}") from None
                    time.sleep(0.02)
            client.close()
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
