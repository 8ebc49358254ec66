"""What the run history (farm/run_history.py) costs at 100,000 tests × K runs: Redis memory of its keys,
the finish's added time (the tally on the report's pass, the entry and the rings on the finish's
MULTI), the saved history's size, and `farm history PROJECT`'s read and fold.

    .venv/bin/python bench/run_history.py [--tests 100000] [--runs 50] [--failing 100]

Drives the coordinator's own writer (coordinator/redis_runs.py) on a private redis-server; prints one
line per figure. Times are the median of the runs' writes (first: empty rings; last: full ones).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from bench.private_redis import redis_server  # noqa: E402
from coordinator.redis_runs import RunHistoryWriter  # noqa: E402
from farm import keys  # noqa: E402
from farm.history_show import from_redis, runs_and_rings  # noqa: E402
from farm.run_history import RunTally, fold  # noqa: E402
from farm.saved_history import encode  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--failing", type=int, default=100, help="tests that do not pass in each run")
    args = ap.parse_args()
    rng = random.Random(1)
    ids = [f"tests/test_mod{i // 100:04d}.py::test_case_{i:06d}" for i in range(args.tests)]
    project = "bench"
    with redis_server() as url:
        r = redis.Redis.from_url(url)
        writer = RunHistoryWriter(r, args.runs, 90 * 24 * 3600)
        base = int(r.info("memory")["used_memory"])
        tallies, writes = [], []
        for n in range(args.runs):
            failing = set(rng.sample(range(args.tests), args.failing))
            durations = {t: rng.lognormvariate(-3, 1.5) for t in ids}
            t0 = time.perf_counter()
            tally = RunTally()
            for i, t in enumerate(ids):
                tally.add(t, "failed" if i in failing else "passed")
            run = tally.entry(suite_id=f"s-{n}", finished_at=1e9 + n * 600, started_at=1e9 + n * 600 - 120,
                              status="finished", exit_code=1, digest="d" * 64, pool="default", pytest_args=())
            tallies.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with r.pipeline() as pipe:  # MULTI, as the finish's
                writer.write(pipe, project, run, durations)
                pipe.execute()
            writes.append(time.perf_counter() - t0)
        used = int(r.info("memory")["used_memory"]) - base
        runs_bytes = int(r.memory_usage(keys.history_runs(project), samples=0) or 0)
        times_bytes = int(r.memory_usage(keys.history_times(project), samples=0) or 0)
        t0 = time.perf_counter()
        saved = from_redis(r, project)
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        entries, rings = runs_and_rings(saved)
        view = fold(project, entries, rings, args.runs)
        fold_s = time.perf_counter() - t0
        file_bytes = len(encode(saved))
        r.close()
    mb = 1024 * 1024
    print(f"tests {args.tests}, runs {args.runs}, failing per run {args.failing}")
    print(f"redis used_memory added: {used / mb:.1f} MiB (runs list {runs_bytes / mb:.2f} MiB, "
          f"duration rings {times_bytes / mb:.1f} MiB)")
    print(f"finish, tally of the outcomes (report's pass): median {statistics.median(tallies) * 1000:.0f} ms")
    print(f"finish, entry + rings on the MULTI: first run {writes[0] * 1000:.0f} ms, median "
          f"{statistics.median(writes) * 1000:.0f} ms, last (full rings) {writes[-1] * 1000:.0f} ms")
    print(f"saved history file (these keys, msgpack): {file_bytes / mb:.1f} MiB")
    print(f"farm history: read {read_s * 1000:.0f} ms, fold {fold_s * 1000:.0f} ms "
          f"({view.tests_timed} tests timed, {len(view.flaky)} flaky)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
