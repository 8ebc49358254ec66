"""What the failure analysis adds to reading a report: `expand` and `analyse` on a 100,000-test full view.

python -m bench.analysis_cost [N]: a report of N tests (default 100,000) in 64 assignments, 1% of
them failing, 0.1% errors, 0.1% timeouts, a lost attempt; prints the seconds of `expand` (which
now includes `analyse`) and of `analyse` alone, the best of 5 runs each.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from farm.report.analysis import analyse
from farm.report.schema import compact, expand


def report_of(n: int, slots: int = 64) -> dict[str, Any]:
    """A lean report of `n` tests, most passed, some of each failure kind."""
    per = -(-n // slots)
    assignments = [{"id": f"s-a{k:03d}", "attempt": 1, "worker": f"w{k % 8}@h", "node": "local:h", "state": "done",
                    "tests": [f"tests/t{k}.py::test_{i}" for i in range(k * per, min(n, (k + 1) * per))],
                    "started_at": None, "finished_at": None, "message": ""} for k in range(slots)]
    assignments[0] = {**assignments[0], "state": "lost", "message": "attempt 1 lost: w0@h stopped renewing"}
    tests = []
    for k, a in enumerate(assignments):
        for i, test_id in enumerate(a["tests"]):
            outcome = ("failed" if i % 100 == 1 else "error" if i % 1000 == 2 else
                       "timeout" if i % 1000 == 3 else "passed")
            tests.append({"id": test_id, "outcome": outcome, "duration_s": 0.01, "assignment": k,
                          "started_at": None, **({"phase": "setup"} if outcome == "error" else {})})
    lean = compact({"schema": 2, "suite_id": "s", "status": "finished", "exit_code": 1, "tests": tests,
                    "assignments": assignments, "workers": []})
    return lean


def best(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    lean = report_of(n)
    full = expand(lean)
    counts = {c["class"]: c["count"] for c in full["analysis"]["classes"]}
    print(f"{n} tests, classes {counts}")
    print(f"expand (with analyse): {best(lambda: expand(lean)):.3f} s")
    print(f"analyse alone:         {best(lambda: analyse(full)):.3f} s")


if __name__ == "__main__":
    main()
