"""`farm history`'s reading and text: a project's run history (farm.run_history) from a running farm's
Redis or from the embedded farm's saved history, folded and printed."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from farm import keys
from farm.outcomes import SUMMARY_ORDER
from farm.run_history import HistoryView, RunEntry, decode_run
from farm.saved_history import ProjectHistory


def runs_and_rings(history: ProjectHistory) -> tuple[list[RunEntry], dict[str, bytes]]:
    """A project's run entries (oldest first; unreadable ones left out) and duration rings, as saved."""
    runs: list[RunEntry] = []
    rings: dict[str, bytes] = {}
    for k in history.keys:
        if k.suffix == keys.HISTORY_RUNS and k.kind == "list":
            runs = [r for r in map(decode_run, k.value) if r is not None]
        elif k.suffix == keys.HISTORY_TIMES and k.kind == "hash":
            rings = {keys.text(t): v for t, v in k.value.items()}
    return runs, rings


def last_run(history: ProjectHistory) -> RunEntry | None:
    for k in history.keys:
        if k.suffix == keys.HISTORY_RUNS and k.kind == "list":
            for raw in reversed(k.value):
                run = decode_run(raw)
                if run is not None:
                    return run
    return None


def from_redis(r: Any, project: str) -> ProjectHistory:
    """The project's run history keys in this Redis (not its durations hash)."""
    from farm.history_redis import export_keys

    return export_keys(r, project, keys.history(project),
                       (keys.scan_literal(keys.history_runs(project)), keys.scan_literal(keys.history_times(project))))


def projects_in_redis(r: Any) -> list[str]:
    """The projects that have a run history in this Redis, by name."""
    head, tail = keys.history(""), keys.HISTORY_RUNS
    names = {keys.text(n) for n in r.scan_iter(match=keys.scan_literal(head) + "*" + tail, count=1000)}
    return sorted(n[len(head):-len(tail)] for n in names)


# --- text ---------------------------------------------------------------------------------------


def when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def counts_text(counts: dict[str, int] | Any) -> str:
    parts = [f"{counts[o.value]} {o.value}" for o in SUMMARY_ORDER if counts.get(o.value)]
    return ", ".join(parts) or "no tests"


def run_line(run: RunEntry) -> str:
    return (f"{run.suite_id}  {when(run.finished_at)}  {run.status} (exit {run.exit_code})  "
            f"{counts_text(run.counts)}  wall {run.wall_s:.2f}s")


def view_lines(view: HistoryView, keep: int) -> Iterable[str]:
    n = len(view.runs)
    yield f"{view.project}: {n} run{'s' if n != 1 else ''} (the last {keep} are kept), {view.tests_timed} tests timed"
    yield "runs, oldest first:"
    for run in view.runs:
        yield "  " + run_line(run)
    if view.slowest:
        yield "slowest tests (p50 / p95 of their durations over these runs):"
        for t in view.slowest:
            yield f"  {t.p50_s:8.3f}s / {t.p95_s:8.3f}s  ({t.runs} run{'s' if t.runs != 1 else ''})  {t.test_id}"
    if view.flaky:
        yield "flaky tests (rate = (flaky runs + pass/fail flips between runs of one bundle digest) / runs):"
        for f in view.flaky:
            yield (f"  {f.rate:4.0%}  {f.flips} flip{'s' if f.flips != 1 else ''}, {f.flaky_runs} flaky "
                   f"in {f.runs} run{'s' if f.runs != 1 else ''}  {f.test_id}")
    else:
        yield "flaky tests: none"
    if view.wall is not None:
        w = view.wall
        change = f" ({(w.last_s - w.median_s) / w.median_s:+.0%})" if w.median_s > 0 else ""
        yield f"wall time: {w.sparkline}  median {w.median_s:.2f}s, last {w.last_s:.2f}s{change}"
