"""The long test's start-up when 16 runners start at once (target (b), run 2): the niceness of the
15 others by publish index (1…10, main before round 3) or all at 10 (`coordinator.splitting.priorities`).

    .venv/bin/python bench/critical_start.py --python /work/wt/bench-venv/bin/python --pairs 10

Each process imports pytest first (as a standby does), then all start `pytest.main` at once; the
long test's process, at niceness 0, says how long it took from the start to its test's call.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import suites  # noqa: E402

ONE = r"""
import os, sys, time
nice, out, test, hold = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
import pytest
from _pytest.config import default_plugins
import importlib
for n in default_plugins:
    try: importlib.import_module("_pytest." + n)
    except ImportError: pass
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
t0 = time.time()
if nice: os.nice(nice)
if hold: time.sleep(hold)
class P:
    def pytest_runtest_call(self, item):
        if out != "-":
            open(out, "w").write("%.4f" % (time.time() - t0))
        os._exit(0)
pytest.main(["-q", "-p", "no:cacheprovider", test], plugins=[P()])
"""


#: "hold": how long the 15 others wait (at niceness 10) before they start pytest.
HOLD_S = 0.3


def trial(python: str, suite: Path, long_id: str, others: list[str], mode: str) -> float:
    out = suite / "critical.txt"
    script = suite / "one_runner.py"
    script.write_text(ONE)
    argv = [python, str(script)]
    hold = HOLD_S if mode == "hold" else 0.0
    procs = [subprocess.Popen([*argv, "0", str(out), long_id, "0"], cwd=suite, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)]
    for i, f in enumerate(others, 1):
        nice = min(10, i) if mode == "index" else 10
        procs.append(subprocess.Popen([*argv, str(nice), "-", f, str(hold)], cwd=suite, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True))
    for p in procs:
        p.stdout.readline()  # type: ignore[union-attr]
    for p in procs:
        p.stdin.write("go\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
    for p in procs:
        p.wait()
    return float(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--pairs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "skewed"
        durations = suites.skewed(suite, n=400, total_s=120.0, modules=20)
        longest = durations.index(max(durations))
        files = sorted(p.name for p in suite.glob("test_*.py"))
        long_file = next(f for f in files if f"def test_{longest:04d}" in (suite / f).read_text())
        others = [f for f in files if f != long_file][:15]
        got: dict[str, list[float]] = {"index": [], "slack": [], "hold": []}
        for _ in range(args.pairs):
            for mode in got:
                got[mode].append(trial(args.python, suite, f"{long_file}::test_{longest:04d}", others, mode))
        load = Path("/proc/loadavg").read_text().split()[0]
        for mode, xs in got.items():
            print(f"{mode}: median {statistics.median(xs):.2f} s, range {min(xs):.2f}–{max(xs):.2f} s")
        for mode in ("slack", "hold"):
            ratios = [s / i for i, s in zip(got["index"], got[mode], strict=True)]
            print(f"{mode} / index, paired: median {statistics.median(ratios):.2f}")
        ratios = [h / s for s, h in zip(got["slack"], got["hold"], strict=True)]
        print(f"hold / slack, paired: median {statistics.median(ratios):.2f}; 1-min load at the end {load}")


if __name__ == "__main__":
    main()
