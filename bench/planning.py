"""Bench (g): plan N collected tests (split and publish, no runs) through the coordinator's real handler.

    .venv/bin/python bench/planning.py                  # 100k, 300k and 1M tests, with and without history
    .venv/bin/python bench/planning.py --sizes 1000000 --profile /tmp/plan.prof

It starts its own redis-server on a free port (`--save '' --appendonly no`, stopped on every exit
path), and for each size and history mode runs one child process (so that its peak RSS is its own)
that: stores a suite as `collecting`, a pool of `--slots` slots and (with history) recorded
durations; seals and encodes a `Collection` of N test ids as a worker would; then, timed, opens
and decodes it as the `farm.suite_collected` task does, calls `Planner.collected` with a publish
callable that records the assignments, and encodes and signs each recorded assignment as
`farm.celery_app.send_assignment` would (only the broker's own send is left out). Reported: wall
and CPU time of each part, peak RSS of the child, what Redis holds after planning, and the
Redis commands planning sent. A table goes to stderr; the last line of stdout is the JSON the
benches share (`scenario`, `rows`, `targets`). Exit 0 when every case ran (a missed target is a
result), 2 when it cannot run (no Redis server), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.private_redis import redis_server  # noqa: E402

TARGET_TESTS = 1_000_000
TARGET_S = 10.0
MODULE_TESTS = 200  # tests per module; 50 modules per package
PARAMS = 15  # parametrized functions have this many items; 3/4 of a module's tests are parametrized


def test_ids(n: int) -> list[str]:
    """N realistic node ids: packages of 50 modules of MODULE_TESTS tests each, 3/4 of them
    items of parametrized methods, the rest plain functions."""
    out: list[str] = []
    for i in range(n):
        module, k = divmod(i, MODULE_TESTS)
        pkg, mod = divmod(module, 50)
        path = f"tests/pkg_{pkg}/test_mod_{mod}.py"
        if k < MODULE_TESTS * 3 // 4:
            out.append(f"{path}::TestC{k // 60}::test_f{k // PARAMS}[param-{k % PARAMS}]")
        else:
            out.append(f"{path}::test_plain_{k}")
    return out


# --- one case, in a child process ---------------------------------------------------------------

def run_case(url: str, n: int, history: bool, slots: int, profile: str | None) -> dict[str, Any]:
    import redis

    from coordinator.planner import Planner
    from coordinator.state import SuiteState
    from farm import keys, signing
    from farm.celery_app import RUN_ASSIGNMENT, SUITE_COLLECTED
    from farm.config import Settings
    from farm.model import Assignment, Collection, SuiteSpec, WorkerInfo
    from farm.protocol import decode, encode

    client = redis.Redis.from_url(url, socket_timeout=600)
    client.flushall()
    settings = Settings(broker_url=url)
    state = SuiteState(client, settings)
    client.hset(keys.WORKERS, "w@h", encode(WorkerInfo("w@h", "h", slots, "default", "local")))
    sid = f"plan-{n}-{int(history)}"
    spec = SuiteSpec(sid, "proj", "0" * 64, "default", "load", (), time.time())
    client.hset(keys.suite(sid), mapping={"spec": encode(spec), "status": "collecting",
                                          "submitted_at": spec.submitted_at})
    ids = test_ids(n)
    if history:  # 95 % of the tests ran before
        rng = random.Random(1)
        state.record_durations("proj", {t: rng.lognormvariate(-5, 1.2) for t in ids if rng.random() < 0.95})
    keyring = signing.Keyring(signing.parse(signing.generate_secret(), "bench"))
    sealed = keyring.seal(SUITE_COLLECTED, encode(Collection(sid, "w@h", 0, tuple(ids), duration_s=1.0)))
    del ids
    published: list[Assignment] = []
    planner = Planner(state, settings, lambda s: None, lambda pool, a: published.append(a))
    client.config_resetstat()
    before_mem = int(client.info("memory")["used_memory"])
    before_cpu = _redis_cpu(client)

    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    marks = [(time.perf_counter(), time.process_time())]
    collection = decode(keyring.open(SUITE_COLLECTED, sealed), Collection)
    marks.append((time.perf_counter(), time.process_time()))
    planner.collected(collection)
    marks.append((time.perf_counter(), time.process_time()))
    message_bytes = sum(len(keyring.seal(RUN_ASSIGNMENT, encode(a))) for a in published)
    marks.append((time.perf_counter(), time.process_time()))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)

    assert client.hget(keys.suite(sid), "status") == b"running", "the suite was not planned"
    assert sum(len(a.test_ids) for a in published) == n, "not every test was published"
    stats = client.info("commandstats")
    commands = sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_"))
    parts = ("decode", "handler", "encode_sign")
    result: dict[str, Any] = {
        "n": n, "history": history, "assignments": len(published), "message_mb": message_bytes / 2**20,
        "redis_mb": (int(client.info("memory")["used_memory"]) - before_mem) / 2**20,
        "redis_commands": commands, "redis_cpu_s": _redis_cpu(client) - before_cpu,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for i, part in enumerate(parts):
        result[f"{part}_s"] = marks[i + 1][0] - marks[i][0]
        result[f"{part}_cpu_s"] = marks[i + 1][1] - marks[i][1]
    result["wall_s"] = marks[-1][0] - marks[0][0]
    result["cpu_s"] = marks[-1][1] - marks[0][1]
    return result


def _redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# --- the parent: its own Redis, one child per case ----------------------------------------------

def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/planning.py", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100000,300000,1000000", help="comma-separated test counts")
    p.add_argument("--slots", type=int, default=16, help="the pool's slots (default 16)")
    p.add_argument("--history", choices=("both", "yes", "no"), default="both")
    p.add_argument("--profile", help="cProfile output of the largest case with history (pstats file)")
    p.add_argument("--case", help=argparse.SUPPRESS)  # the child: URL,N,HISTORY
    args = p.parse_args(argv)
    if args.case:
        url, n, history = args.case.split(",")
        print(json.dumps(run_case(url, int(n), history == "1", args.slots, args.profile)))
        return 0
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",")})
    except ValueError:
        print("bench/planning.py: --sizes takes comma-separated integers", file=sys.stderr)
        return 2
    modes = {"both": [False, True], "yes": [True], "no": [False]}[args.history]
    signal.signal(signal.SIGTERM, _terminate)
    results: list[dict[str, Any]] = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]))}
    try:
        with redis_server("farm-bench-plan-") as url:
            for n in sizes:
                for history in modes:
                    profile = args.profile if args.profile and n == sizes[-1] and history == modes[-1] else None
                    cmd = [sys.executable, __file__, "--slots", str(args.slots), "--case", f"{url},{n},{int(history)}"]
                    if profile:
                        cmd += ["--profile", profile]
                    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True).stdout
                    results.append(json.loads(out.strip().splitlines()[-1]))
                    r = results[-1]
                    print(f"{n:>9} {'history' if history else 'none':>7}: {r['wall_s']:6.2f} s wall "
                          f"{r['cpu_s']:6.2f} s cpu (decode {r['decode_s']:.2f}, handler {r['handler_s']:.2f}, "
                          f"encode+sign {r['encode_sign_s']:.2f}), {r['assignments']} assignments, "
                          f"rss {r['rss_mb']:.0f} MB, redis +{r['redis_mb']:.0f} MB, "
                          f"{r['redis_commands']} commands, redis cpu {r['redis_cpu_s']:.2f} s", file=sys.stderr)
    except KeyboardInterrupt:
        print("bench/planning.py: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"bench/planning.py: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # UsageError: no Redis server found
        print(f"bench/planning.py: {exc}", file=sys.stderr)
        return 2
    rows = []
    for r in results:
        tag = f"{r['n']:,} tests, {'history' if r['history'] else 'no history'}"
        rows += [{"label": f"{tag}: plan wall", "value": round(r["wall_s"], 3), "unit": "s"},
                 {"label": f"{tag}: plan cpu", "value": round(r["cpu_s"], 3), "unit": "s"},
                 {"label": f"{tag}: peak rss", "value": round(r["rss_mb"], 1), "unit": "MB"},
                 {"label": f"{tag}: redis memory", "value": round(r["redis_mb"], 1), "unit": "MB"},
                 {"label": f"{tag}: redis cpu", "value": round(r["redis_cpu_s"], 3), "unit": "s"},
                 {"label": f"{tag}: redis commands", "value": float(r["redis_commands"]), "unit": "commands"}]
    targets = []
    for history in modes:
        by_n = {r["n"]: r for r in results if r["history"] == history}
        if len(by_n) > 1:
            lo, hi = min(by_n), max(by_n)
            rows.append({"label": f"time({hi:,})/time({lo:,}), {'history' if history else 'no history'} "
                                  f"(linear: {hi / lo:.0f})",
                         "value": round(by_n[hi]["cpu_s"] / by_n[lo]["cpu_s"], 2), "unit": "x cpu"})
        if TARGET_TESTS in by_n:
            value = by_n[TARGET_TESTS]["wall_s"]
            targets.append({"text": f"plan 1,000,000 tests ({'history' if history else 'no history'})",
                            "limit": TARGET_S, "value": round(value, 3),
                            "status": "met" if value <= TARGET_S else "missed"})
    if any(t["status"] for t in targets):
        worst = max(targets, key=lambda t: t["value"])
        targets.insert(0, {"text": "plan 1,000,000 tests", "limit": TARGET_S, "value": worst["value"],
                           "status": worst["status"]})
    width = max(len(r["label"]) for r in rows)
    for r in rows:
        print(f"{r['label']:<{width}}  {r['value']:>10}  {r['unit']}", file=sys.stderr)
    print(json.dumps({"scenario": "planning", "rows": rows, "targets": targets}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
