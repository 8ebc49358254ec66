"""The HTML report at scale: a generated full-view report of N tests (default 100,000) on 16 workers
x 4 slots, rendered with `render_html`; then loaded in headless Chromium, which reports how long its
script took to render (`data-render-ms`). Usage: python -m bench.html_report [N] [OUT.html]"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from farm.outcomes import Outcome
from farm.report.html import render_html

T0 = 1_800_000_000.0
WORKERS, SLOTS, PER_ASSIGNMENT = 16, 4, 100


def _at(s: float) -> str:
    return datetime.fromtimestamp(T0 + s, UTC).isoformat()


def big_report(n: int) -> dict[str, Any]:
    tests: list[dict[str, Any]] = []
    assignments: list[dict[str, Any]] = []
    clock = {(w, k): 1.0 for w in range(WORKERS) for k in range(SLOTS)}
    for a in range(n // PER_ASSIGNMENT):
        w, k = min(clock, key=lambda slot: clock[slot])
        start = clock[(w, k)]
        t = start + 0.3
        aid, worker, ids = f"s-1-a{a:04d}", f"w{w}@host{w}", []
        for j in range(PER_ASSIGNMENT):
            i = a * PER_ASSIGNMENT + j
            tid = f"tests/pkg{i % 50}/test_mod{i % 700}.py::TestThing::test_case_{i}[param-{i % 13}]"
            d = 0.01 + (i % 37) * 0.004
            outcome = "failed" if i % 997 == 0 else "skipped" if i % 211 == 0 else "passed"
            test: dict[str, Any] = {
                "id": tid, "outcome": outcome, "phase": "call", "duration_s": d, "message": "", "crashed_on": [],
                "blame": None, "ran_as": None, "longrepr": "", "sections": [],
                "attempts": [{"assignment": aid, "attempt": 1, "worker": worker, "node": f"local:host{w}",
                              "outcome": outcome, "duration_s": d, "started_at": _at(t), "fenced": False,
                              "run": 1, "runs": 1}]}
            if outcome == "failed":
                test.update(message="AssertionError", longrepr="def test():\n>   assert x\nE   AssertionError\n" * 20,
                            sections=[["Captured stdout call", "line of output\n" * 50]])
            tests.append(test)
            ids.append(tid)
            t += d
        clock[(w, k)] = t + 0.05
        assignments.append({"id": aid, "attempt": 1, "worker": worker, "node": f"local:host{w}", "state": "done",
                            "tests": ids, "started_at": _at(start), "finished_at": _at(t), "message": ""})
    wall = max(clock.values()) + 0.5
    summary = {o.value: 0 for o in Outcome}
    for test in tests:
        summary[test["outcome"]] += 1
    return {"schema": 2, "suite_id": "s-1", "project": "big", "pool": "default", "status": "finished",
            "exit_code": 1, "message": "", "pytest_args": [], "summary": {"total": len(tests), **summary},
            "started_at": _at(0), "finished_at": _at(wall), "duration_s": wall, "tests": tests,
            "assignments": assignments, "stopped": "", "durations": None,
            "workers": [{"name": f"w{w}@host{w}", "host": f"host{w}", "slots": SLOTS} for w in range(WORKERS)]}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "html-report-bench.html")
    report = big_report(n)
    start = time.perf_counter()
    page = render_html(report, [])
    print(f"{n} tests: render_html {time.perf_counter() - start:.2f} s, {len(page.encode()) / 1e6:.1f} MB")
    out.write_text(page)
    with tempfile.TemporaryDirectory() as profile:
        start = time.perf_counter()
        dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                              "--dump-dom", out.resolve().as_uri()], capture_output=True, text=True).stdout
        took = time.perf_counter() - start
    rendered = re.search(r'data-render-ms="(\d+)"', dom)
    print(f"chromium --dump-dom {took:.1f} s; the page rendered {rendered.group(1) if rendered else '?'} ms after "
          f"navigation start; {dom.count('<tr')} table rows in the DOM")


if __name__ == "__main__":
    main()
