"""What a /metrics scrape costs on a big farm's state: `python -m bench.metrics_scrape`.

A real redis-server on a free port holding 5 running suites of 100,000 tests each (their records
hashes filled, 400 assignments, 300 of them claimed), 50 workers; the coordinator's /metrics served
by coordinator.metrics.serve and fetched 50 times over HTTP; prints the median and the slowest.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request

import redis

from coordinator import metrics
from farm import counters, keys, registry
from farm.cluster import answers_ping, free_port
from farm.model import WorkerInfo


def main() -> None:
    port, d = free_port(), tempfile.mkdtemp()
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", d],
                           stdout=subprocess.DEVNULL)
    try:
        while not answers_ping(port):
            time.sleep(0.05)
        r = redis.Redis(port=port)
        for s in range(5):  # 5 active suites of 100,000 tests, 400 assignments each
            sid = f"s{s}"
            r.sadd(keys.ACTIVE, sid)
            r.hset(keys.suite(sid), mapping={"status": "running", "spec": b""})
            r.hset(keys.counts(sid), mapping={"passed": 60000, "failed": 100, "skipped": 10})
            r.hset(keys.current(sid), mapping={f"{sid}-a{i:03d}": "1" if i % 3 else "1!" for i in range(400)})
            r.hset(keys.claims(sid), mapping={f"{sid}-a{i:03d}#1": f"w{i % 50}" for i in range(300)})
            p = r.pipeline(transaction=False)
            for i in range(0, 100000, 5000):
                p.hset(keys.records(sid), mapping={f"t.py::test_{j}": b"x" * 200 for j in range(i, i + 5000)})
            p.execute()
        for w in range(50):
            registry.announce(r, WorkerInfo(f"w{w}", "h", 8, "default", "local"))
        r.hset(keys.METRICS, mapping={counters.RECORDS: 123456, "tests:passed": 1000000})
        mport = free_port()
        metrics.serve(r, 30.0, mport)
        times = []
        for _ in range(50):
            t = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics") as response:  # noqa: S310
                body = response.read()
            times.append(time.perf_counter() - t)
        print(f"records hash: {r.hlen(keys.records('s0'))} x5 suites; scrape of {len(body)} bytes: "
              f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms over {len(times)}")
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
