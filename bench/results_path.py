"""The results path alone: records in, merged suite state out (issue 10, target (d)).

Starts its own redis-server on a free loopback port (`--save '' --appendonly no`), plans a suite of
N trivial tests through the coordinator's real code (`SuiteState` + `Planner`: submitted, collected,
published to a list instead of Celery), then feeds every assignment's records as a worker sends them
(an empty first batch, then batches of `Settings.batch_records`, encoded and decoded with
`farm.protocol`, as the `farm.record_batch` task does: `Planner.records`), two slots interleaved;
then the completions, which finish the suite and build and store its report.

Measured: records/s of the merge phase (wall and the bench's own CPU), the finish + report time,
the process's peak RSS (ru_maxrss), Redis `used_memory_peak` and `used_memory` at the end, and
Redis commands per record (`INFO commandstats` over the merge phase). A table goes to stderr; the
LAST line of stdout is one JSON object, {"scenario": "results", "rows": [...], "targets": [...]},
which bench/run.py folds into its table.

    PYTHONPATH=. .venv/bin/python bench/results_path.py --tests 100000
    PYTHONPATH=. .venv/bin/python bench/results_path.py --tests 20000 --profile /tmp/results.prof
    PYTHONPATH=. .venv/bin/python bench/results_path.py --threads 4   # as the coordinator's 4 threads

`--threads N` hands the batches to N threads at once, as the coordinator's Celery thread pool
(`--concurrency`, default 4) takes messages; the default, 1, feeds them one after the other.

Exit code: 0 when it ran (a missed target is a result), 2 when it cannot run (no redis-server),
130 when interrupted. The redis-server is stopped on every exit path.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import resource
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from coordinator.planner import Planner
from coordinator.state import SuiteState
from farm import events, keys, registry
from farm.config import Settings
from farm.errors import UsageError
from farm.model import Assignment, Collection, Completion, RecordBatch, SuiteSpec, TestRecord, WorkerInfo
from farm.outcomes import Outcome
from farm.protocol import decode, encode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.private_redis import redis_server  # noqa: E402

#: Issue 10, target (d).
TARGET_RECORDS_S = 50_000.0
TARGET_RSS_MB = 250.0
SLOTS = 2
SUITE = "bench-results"


def test_ids(n: int) -> list[str]:
    """200 files of parametrized tests, as the 100,000-test suite of the issue (500 a file there)."""
    per_file = max(1, n // 200)
    return [f"tests/test_m{i // per_file:03d}.py::test_trivial[{i % per_file}]" for i in range(n)]


def records_of(a: Assignment, now: float) -> list[TestRecord]:
    return [TestRecord(t, Outcome.PASSED, 0.0004, "call", started_at=now, setup_s=0.0001, call_s=0.0002,
                       teardown_s=0.0001) for t in a.test_ids]


def batches(a: Assignment, size: int, worker: str, now: float) -> Iterator[bytes]:
    """What a worker sends for one assignment, encoded: an empty batch first, then full ones, numbered
    in order from 1 as a worker numbers them (`RecordBatch.seq`)."""
    yield encode(RecordBatch(a.suite_id, a.assignment_id, a.attempt, worker, f"local:{worker}", seq=1))
    recs = records_of(a, now)
    for n, i in enumerate(range(0, len(recs), size), start=2):
        yield encode(RecordBatch(a.suite_id, a.assignment_id, a.attempt, worker, f"local:{worker}",
                                 tuple(recs[i:i + size]), seq=n))


def command_stats(r: Any) -> dict[str, tuple[int, int]]:
    """Command name -> (calls, microseconds) so far (`INFO commandstats`: a script's own commands
    count in their own rows, and in the script's time too)."""
    return {name: (int(stats["calls"]), int(stats["usec"])) for name, stats in r.info("commandstats").items()}


@dataclass
class Figures:
    records: int
    merge_wall_s: float
    merge_cpu_s: float
    finish_wall_s: float
    finish_cpu_s: float
    rss_merged_mb: float
    rss_mb: float
    redis_peak_mb: float
    redis_end_mb: float
    redis_cpu_s: float
    commands: dict[str, int]
    command_usec: dict[str, int]
    threads: int = 1


def run(n: int, profile: str | None, threads: int = 1) -> Figures:
    with redis_server() as url:
        settings = Settings(broker_url=url)
        r = redis.Redis.from_url(url)
        state = SuiteState(r, settings, name="bench")
        published: list[Assignment] = []
        planner = Planner(state, settings, publish_collect=lambda spec: None,
                          publish_assignment=lambda pool, a: published.append(a))
        now = time.time()
        for w in range(SLOTS):
            registry.announce(r, WorkerInfo(f"w{w}", "bench", 1, "default", "local", seen_at=now))
        spec = SuiteSpec(SUITE, "bench", "0" * 64, "default", "load", (), now)
        with r.pipeline(transaction=True) as pipe:  # as farm.client.submit writes it
            pipe.hset(keys.suite(SUITE), mapping={"spec": encode(spec), "status": "submitted", "submitted_at": now})
            events.append(pipe, SUITE, events.submitted(spec), tests=0, ttl_s=settings.suite_ttl_s)
            pipe.execute()
        planner.submitted(SUITE)
        planner.collected(Collection(SUITE, "w0", 0, tuple(test_ids(n)), duration_s=1.0))
        print(f"planned {n} tests in {len(published)} assignments", file=sys.stderr)

        # Two slots: each runs its assignments one after the other; their batches interleave.
        lanes: list[list[Assignment]] = [published[i::SLOTS] for i in range(SLOTS)]
        sent = list(_interleave([[b for a in lane for b in batches(a, settings.batch_records, f"w{i}", now)]
                                 for i, lane in enumerate(lanes)]))  # the workers' side: not measured
        prof = cProfile.Profile() if profile else None
        before = command_stats(r)
        cpu_before = r.info("cpu")
        t0, c0 = time.perf_counter(), time.process_time()
        if prof:
            prof.enable()
        fed = 0
        if threads == 1:
            for message in sent:
                batch = decode(message, RecordBatch)
                planner.records(batch)
                fed += len(batch.records)
        else:  # as the coordinator's thread pool (--concurrency) takes messages: several at once
            def handle(message: bytes) -> int:
                batch = decode(message, RecordBatch)
                planner.records(batch)
                return len(batch.records)

            with ThreadPoolExecutor(threads) as pool:
                fed = sum(pool.map(handle, sent))
        del sent
        t1, c1 = time.perf_counter(), time.process_time()
        rss_merged = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        after = command_stats(r)
        cpu_after = r.info("cpu")
        for i, lane in enumerate(lanes):
            for a in lane:
                done = time.time()
                planner.completed(decode(encode(Completion(SUITE, a.assignment_id, a.attempt, f"w{i}", f"local:w{i}",
                                                           "done", now, done, 0, len(a.test_ids))), Completion))
        t2, c2 = time.perf_counter(), time.process_time()
        if prof and profile:
            prof.disable()
            prof.dump_stats(profile)
        if r.get(keys.report(SUITE)) is None:
            raise SystemExit("the suite did not finish: no report stored")
        mem = r.info("memory")
        calls = {k: v[0] - before.get(k, (0, 0))[0] for k, v in after.items() if v != before.get(k)}
        usec = {k: v[1] - before.get(k, (0, 0))[1] for k, v in after.items() if v != before.get(k)}
        redis_cpu = sum(float(cpu_after[k]) - float(cpu_before[k]) for k in ("used_cpu_sys", "used_cpu_user"))
        r.close()
    return Figures(fed, t1 - t0, c1 - c0, t2 - t1, c2 - c1, rss_merged,
                   resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   int(mem["used_memory_peak"]) / 2**20, int(mem["used_memory"]) / 2**20, redis_cpu, calls, usec,
                   threads)


def _interleave(lanes: list[list[Any]]) -> Iterator[Any]:
    iters = [iter(lane) for lane in lanes]
    while iters:
        for it in list(iters):
            try:
                yield next(it)
            except StopIteration:
                iters.remove(it)


def result(f: Figures) -> dict[str, Any]:
    per_record = sum(f.commands.values()) / max(1, f.records)
    rate = f.records / f.merge_wall_s if f.merge_wall_s else 0.0
    rows = [
        ("records merged", f.records, "records"),
        ("batches handled at once (threads)", f.threads, "threads"),
        ("merge: records/s (wall)", rate, "records/s"),
        ("merge: records/s (coordinator CPU)", f.records / f.merge_cpu_s if f.merge_cpu_s else 0.0, "records/s"),
        ("merge: coordinator CPU", f.merge_cpu_s, "s"),
        ("merge: Redis CPU", f.redis_cpu_s, "s"),
        ("merge: Redis commands per record", per_record, "commands"),
        ("finish + report (wall)", f.finish_wall_s, "s"),
        ("finish + report (CPU)", f.finish_cpu_s, "s"),
        ("coordinator peak RSS before the finish", f.rss_merged_mb, "MB"),
        ("coordinator peak RSS", f.rss_mb, "MB"),
        ("Redis used_memory_peak", f.redis_peak_mb, "MB"),
        ("Redis used_memory at the end", f.redis_end_mb, "MB"),
    ]
    targets = [
        ("results path >= 50,000 records/s", TARGET_RECORDS_S, rate, rate >= TARGET_RECORDS_S),
        ("coordinator peak RSS <= 250 MB", TARGET_RSS_MB, f.rss_mb, f.rss_mb <= TARGET_RSS_MB),
    ]
    return {"scenario": "results",
            "rows": [{"label": label, "value": round(float(v), 4), "unit": u} for label, v, u in rows],
            "targets": [{"text": t, "limit": lim, "value": round(v, 3), "status": "met" if ok else "missed"}
                        for t, lim, v, ok in targets]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=100_000, help="tests in the suite (default 100,000)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the merge and finish phases")
    parser.add_argument("--threads", type=int, default=1,
                        help="batches handled at once, as the coordinator's --concurrency threads take them "
                             "(default 1: one after the other)")
    args = parser.parse_args(argv)
    if args.tests < 1:
        print("results_path: --tests must be at least 1", file=sys.stderr)
        return 2
    if args.threads < 1:
        print("results_path: --threads must be at least 1", file=sys.stderr)
        return 2
    try:
        figures = run(args.tests, args.profile, args.threads)
    except UsageError as exc:
        print(f"results_path: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("results_path: interrupted", file=sys.stderr)
        return 130
    out = result(figures)
    for row in out["rows"]:
        print(f"{row['label']:<40} {row['value']:>14,.3f} {row['unit']}", file=sys.stderr)
    for t in out["targets"]:
        print(f"target {t['text']:<40} {t['value']:>14,.3f} {t['status']}", file=sys.stderr)
    top = sorted(figures.commands.items(), key=lambda kv: -kv[1])[:12]
    print("commands in the merge phase: " + ", ".join(f"{k.removeprefix('cmdstat_')} {v}" for k, v in top),
          file=sys.stderr)
    by_time = sorted(figures.command_usec.items(), key=lambda kv: -kv[1])[:8]
    print("their time in Redis (ms): " + ", ".join(f"{k.removeprefix('cmdstat_')} {v / 1000:.0f}" for k, v in by_time),
          file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
