"""Run history scenarios (farm.run_history), the same over the stub store and a real redis-server:
tests/unit/test_run_history_store.py and tests/integration/test_run_history_redis.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from coordinator.memory_store import MemoryStore
from farm.model import TestRecord
from farm.outcomes import Outcome
from farm.run_history import RunEntry, decode_run, fold, ring_durations
from support.scenarios import TESTS, World


def keep_runs(w: World, k: int) -> None:
    """The store keeps `k` runs (Settings.history_runs), set before its first finish."""
    if isinstance(w.store, MemoryStore):
        w.store.history_runs = k
    else:
        w.store.settings = replace(w.store.settings, history_runs=k)  # type: ignore[attr-defined]


def run_suite(w: World, n: int, outcomes: dict[str, Outcome], durations: dict[str, float]) -> str:
    """Suite `h{n}` of project `proj` (one bundle digest), its tests given these outcomes and durations."""
    sid = f"h{n}"
    w.submit(sid)
    w.collect(sid, TESTS)
    (a,) = [x for x in w.published if x.suite_id == sid]
    w.take(a, "w1@h")
    w.clock.advance(3.0 + n)  # its wall time
    w.send(a, "w1@h", *(TestRecord(t, outcomes.get(t, Outcome.PASSED), durations.get(t, 0.1)) for t in TESTS))
    w.complete(a, "w1@h")
    w.hold_lease(sid, f"{a.assignment_id}#{a.attempt}", None)
    w.report(sid)  # finished, and its log folds to its report
    w.clock.advance(10)
    return sid


def stored(w: World) -> tuple[list[RunEntry], dict[str, bytes]]:
    raw, rings = w.store.run_history("proj")
    runs = [decode_run(r) for r in raw]
    assert None not in runs
    return [r for r in runs if r is not None], rings


def view_wall(runs: list[RunEntry]) -> tuple[float, str]:
    wall = fold("proj", runs, {}).wall
    assert wall is not None
    return wall.median_s, wall.sparkline


def three_runs_show_a_flipping_test_and_percentiles(w: World) -> None:
    w.add_worker("w1@h")
    for n in (1, 2, 3):  # t.py::b fails on odd runs; t.py::a takes 0.1, 0.2, 0.3 s
        run_suite(w, n, {"t.py::b": Outcome.FAILED if n % 2 else Outcome.PASSED}, {"t.py::a": 0.1 * n, "t.py::c": 2.0})
    runs, rings = stored(w)
    assert [r.suite_id for r in runs] == ["h1", "h2", "h3"]
    assert [dict(r.listed) for r in runs] == [{"t.py::b": "failed"}, {}, {"t.py::b": "failed"}]
    assert [r.exit_code for r in runs] == [1, 0, 1] and runs[0].counts == {"passed": 2, "failed": 1}
    assert [r.wall_s for r in runs] == [4.0, 5.0, 6.0] and runs[0].digest == "0" * 64
    assert view_wall(runs) == (5.0, "▁▅█")
    view = fold("proj", runs, rings)
    (flake,) = view.flaky
    assert (flake.test_id, flake.flips, flake.flaky_runs, flake.runs) == ("t.py::b", 2, 0, 3)
    assert flake.rate == pytest.approx(2 / 3)
    assert [t.test_id for t in view.slowest] == ["t.py::c", "t.py::a", "t.py::b"]
    a = view.slowest[1]
    assert a.runs == 3 and a.p50_s == pytest.approx(0.2, rel=1e-3) and a.p95_s == pytest.approx(0.29, rel=1e-3)


def only_the_last_k_runs_are_kept(w: World) -> None:
    keep_runs(w, 2)
    w.add_worker("w1@h")
    for n in (1, 2, 3):
        run_suite(w, n, {}, {"t.py::a": float(n)})
    runs, rings = stored(w)
    assert [r.suite_id for r in runs] == ["h2", "h3"]
    assert ring_durations(rings["t.py::a"]) == [2.0, 3.0]
    assert sorted(rings) == sorted(TESTS)


def a_test_passing_on_its_rerun_is_a_flaky_run(w: World) -> None:
    w.add_worker("w1@h")
    w.submit("f1", rerun_failures=1)
    w.collect("f1", TESTS)
    (a,) = [x for x in w.published if x.suite_id == "f1"]
    w.run(a, "w1@h", lambda t: Outcome.FAILED if t.endswith("c") else Outcome.PASSED)
    w.run(w.published[-1], "w1@h")  # the rerun passes
    runs, rings = stored(w)
    assert [dict(r.listed) for r in runs] == [{"t.py::c": "flaky"}] and runs[0].exit_code == 0
    (flake,) = fold("proj", runs, rings).flaky
    assert (flake.test_id, flake.flaky_runs, flake.flips, flake.runs, flake.rate) == ("t.py::c", 1, 0, 1, 1.0)


HISTORY_SCENARIOS = (three_runs_show_a_flipping_test_and_percentiles, only_the_last_k_runs_are_kept,
                     a_test_passing_on_its_rerun_is_a_flaky_run)
