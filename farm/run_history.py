"""A project's run history (pure): a run entry per finished suite, a duration ring per test, and their fold.

Stored under the project's history keys (farm.keys.history_runs, history_times; docs/how-it-works.md,
"Run history"): a list of msgpack run entries, the last K, and a hash test id -> its last K
durations as little-endian float16 (2 bytes each). A run entry lists only the tests that did not
pass (at most MAX_LISTED): at 100,000 passing tests it stays a few hundred bytes.

`fold` turns them into what `farm history` shows: the runs, the slowest tests (p50/p95 over their
ring), the flaky tests with their flake rate (`flake_rates`, for the failure analysis and gates too),
and the trend of the suite's wall time.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from farm.outcomes import FAILURES, TIMED, Outcome
from farm.report.build import iso

VERSION = 1
#: Runs kept per project by default (Settings.history_runs, FARM_HISTORY_RUNS).
DEFAULT_RUNS = 50
#: Non-passing tests a run entry lists at most (a suite failing everywhere stays bounded).
MAX_LISTED = 10_000
#: Outcomes a run entry does not list: the test gave its verdict and it is not a failure.
PASSING = frozenset({Outcome.PASSED.value, Outcome.SKIPPED.value, Outcome.XFAILED.value})
#: Bytes per duration in a ring (float16: 0.05 % apart, up to 65,504 s).
RING_ITEM = 2
_HALF_MAX = 65504.0
#: Runs whose tests that are not listed passed: the others (canceled, deadline, collection error)
#: may have left tests out without a record.
_COMPLETE = "finished"
SPARK = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class RunEntry:
    """One finished suite of a project, as its run history keeps it."""

    suite_id: str
    finished_at: float
    status: str
    exit_code: int
    wall_s: float
    digest: str  # the bundle's: same digest, same code
    pool: str
    pytest_args: tuple[str, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)  # outcome -> tests
    listed: Mapping[str, str] = field(default_factory=dict)  # test id -> outcome, the non-passing ones
    complete: bool = True  # False: more than MAX_LISTED did not pass, `listed` holds the first

    @property
    def tests(self) -> int:
        return sum(self.counts.values())

    @property
    def code(self) -> tuple[str, tuple[str, ...]]:
        """What makes two runs comparable: the same bundle and the same pytest arguments."""
        return self.digest, self.pytest_args


class RunTally:
    """A suite's tests' outcomes as its finish reads them, one at a time: counts, and the non-passing."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.listed: dict[str, str] = {}
        self.complete = True

    def add(self, test_id: str, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if outcome not in PASSING:
            if len(self.listed) < MAX_LISTED:
                self.listed[test_id] = outcome
            else:
                self.complete = False

    def entry(self, *, suite_id: str, finished_at: float, started_at: float, status: str, exit_code: int,
              digest: str, pool: str, pytest_args: Sequence[str]) -> RunEntry:
        return RunEntry(suite_id, finished_at, status, exit_code, round(max(0.0, finished_at - started_at), 3),
                        digest, pool, tuple(pytest_args), dict(self.counts), dict(self.listed), self.complete)


def run_entry(*, suite_id: str, finished_at: float, started_at: float, status: str, exit_code: int, digest: str,
              pool: str, pytest_args: Sequence[str], outcomes: Iterable[tuple[str, str]]) -> RunEntry:
    """The entry of a suite from its tests' (id, outcome)."""
    tally = RunTally()
    for test_id, outcome in outcomes:
        tally.add(test_id, outcome)
    return tally.entry(suite_id=suite_id, finished_at=finished_at, started_at=started_at, status=status,
                       exit_code=exit_code, digest=digest, pool=pool, pytest_args=pytest_args)


def encode_run(run: RunEntry) -> bytes:
    data: bytes = msgpack.packb(
        {"v": VERSION, "suite": run.suite_id, "at": run.finished_at, "status": run.status, "exit": run.exit_code,
         "wall": run.wall_s, "digest": run.digest, "pool": run.pool, "args": list(run.pytest_args),
         "counts": dict(run.counts), "listed": dict(run.listed), "complete": run.complete}, use_bin_type=True)
    return data


def decode_run(data: bytes) -> RunEntry | None:
    """The entry, or None for one this farm cannot read (another version, damaged): it is left out."""
    try:
        d = msgpack.unpackb(data, raw=False)
        if not isinstance(d, dict) or d.get("v") != VERSION:
            return None
        return RunEntry(str(d["suite"]), float(d["at"]), str(d["status"]), int(d["exit"]), float(d["wall"]),
                        str(d["digest"]), str(d["pool"]), tuple(map(str, d["args"])),
                        {str(k): int(v) for k, v in d["counts"].items()},
                        {str(k): str(v) for k, v in d["listed"].items()}, bool(d["complete"]))
    except (ValueError, TypeError, KeyError, AttributeError, msgpack.UnpackException):
        return None


# --- duration rings ---------------------------------------------------------------------------


def ring_page(durations: Sequence[float]) -> bytes:
    """The durations as the items rings append, one after the other (float16, clamped to its range)."""
    return struct.pack(f"<{len(durations)}e", *(min(max(d, 0.0), _HALF_MAX) for d in durations))


def ring_items(durations: Sequence[float]) -> list[bytes]:
    """Each duration as the 2 bytes a ring appends."""
    packed = ring_page(durations)
    return [packed[i:i + RING_ITEM] for i in range(0, len(packed), RING_ITEM)]


def appended(ring: bytes | None, item: bytes, keep: int) -> bytes:
    """The ring with `item` last, its oldest dropped past `keep` durations (the Redis script's rule)."""
    joined = (ring or b"") + item
    return joined[-keep * RING_ITEM:]


def ring_durations(ring: bytes) -> list[float]:
    n = len(ring) // RING_ITEM
    return list(struct.unpack(f"<{n}e", ring[:n * RING_ITEM]))


# --- the fold ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, linearly interpolated between ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class TestTimes:
    """A test's durations over its ring."""

    __test__ = False  # not a pytest test class
    test_id: str
    runs: int
    p50_s: float
    p95_s: float
    last_s: float


@dataclass(frozen=True)
class Flake:
    """A test's flakiness over the window: `rate` = (`flaky_runs` + `flips`) / `runs`."""

    test_id: str
    rate: float
    flaky_runs: int  # runs whose outcome was `flaky` (failed, then passed when run again)
    flips: int  # pass <-> fail changes between consecutive runs of the same code (digest and arguments)
    runs: int  # runs of the window that ran the test


@dataclass(frozen=True)
class WallTrend:
    walls_s: tuple[float, ...]  # oldest first
    median_s: float
    last_s: float
    sparkline: str


@dataclass(frozen=True)
class HistoryView:
    """What `farm history PROJECT` shows."""

    project: str
    runs: tuple[RunEntry, ...]  # oldest first, the last K
    slowest: tuple[TestTimes, ...]
    flaky: tuple[Flake, ...]
    wall: WallTrend | None
    tests_timed: int


def flake_rates(runs: Sequence[RunEntry], ring_lengths: Mapping[str, int] | None = None) -> list[Flake]:
    """The flaky tests of `runs` (oldest first), most flaky first.

    A flake event is a run whose outcome for the test is `flaky`, or a change between passing
    and failing (failed, error, timeout, crashed) from one run to the next run of the same code
    (bundle digest and pytest arguments): in such a run a test not listed passed, if the run
    finished (`status` finished, every non-passing test listed). The rate is events / the runs of
    the window that ran the test: its recorded durations (`ring_lengths`: outcomes in TIMED) plus
    the runs that list it with an outcome that records none (crashed, timeout, flaky), at most the
    window, and at least the runs that list it."""
    lengths = ring_lengths or {}
    window = len(runs)
    listed_in: dict[str, int] = {}
    untimed: dict[str, int] = {}  # runs that ran it without putting a duration in its ring
    flaky_runs: dict[str, int] = {}
    timed = {o.value for o in TIMED}
    for run in runs:
        for test_id, outcome in run.listed.items():
            listed_in[test_id] = listed_in.get(test_id, 0) + 1
            if outcome not in timed and outcome != Outcome.NOT_RUN.value:
                untimed[test_id] = untimed.get(test_id, 0) + 1
            if outcome == Outcome.FLAKY.value:
                flaky_runs[test_id] = flaky_runs.get(test_id, 0) + 1
    failing = {o.value for o in FAILURES}
    groups: dict[tuple[str, tuple[str, ...]], list[RunEntry]] = {}
    for run in runs:
        groups.setdefault(run.code, []).append(run)
    flips: dict[str, int] = {}
    for group in groups.values():
        if len(group) < 2:
            continue
        for test_id in {t for run in group for t in run.listed}:
            last: bool | None = None
            for run in group:
                verdict = run.listed.get(test_id)
                if verdict is None:
                    if run.status != _COMPLETE or not run.complete:
                        continue
                    failed = False
                elif verdict in failing:
                    failed = True
                else:  # flaky, not_run, xpassed: no pass/fail verdict here
                    continue
                if last is not None and failed != last:
                    flips[test_id] = flips.get(test_id, 0) + 1
                last = failed
    out = []
    for test_id in set(flaky_runs) | set(flips):
        ran = max(min(min(lengths.get(test_id, 0), window) + untimed.get(test_id, 0), window), listed_in[test_id])
        events = flaky_runs.get(test_id, 0) + flips.get(test_id, 0)
        out.append(Flake(test_id, min(1.0, events / ran), flaky_runs.get(test_id, 0), flips.get(test_id, 0), ran))
    out.sort(key=lambda f: (-f.rate, -(f.flaky_runs + f.flips), f.test_id))
    return out


def sparkline(values: Sequence[float]) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    return "".join(SPARK[0 if span <= 0 else min(len(SPARK) - 1, int((v - low) / span * len(SPARK)))]
                   for v in values)


def fold(project: str, runs: Sequence[RunEntry], rings: Mapping[str, bytes], keep: int = DEFAULT_RUNS,
         slowest: int = 10) -> HistoryView:
    """The view of a project's history: its last `keep` runs (`runs` in any order), the `slowest`
    tests by p50 over their rings, its flaky tests, its wall time's trend."""
    window = tuple(sorted(runs, key=lambda r: r.finished_at)[-keep:]) if keep > 0 else ()
    times = []
    lengths = {}
    for test_id, ring in rings.items():
        durations = ring_durations(ring)[-keep:]
        if not durations:
            continue
        lengths[test_id] = len(durations)
        times.append(TestTimes(test_id, len(durations), percentile(durations, 50), percentile(durations, 95),
                               durations[-1]))
    times.sort(key=lambda t: (-t.p50_s, -t.p95_s, t.test_id))
    walls = tuple(r.wall_s for r in window)
    wall = WallTrend(walls, percentile(walls, 50), walls[-1], sparkline(walls)) if walls else None
    return HistoryView(project, window, tuple(times[:slowest]), tuple(flake_rates(window, lengths)), wall,
                       len(times))


def view_document(view: HistoryView) -> dict[str, Any]:
    """The `farm history PROJECT --json` document (docs/report-schema.md, "farm history --json")."""
    return {
        "schema": 1,
        "project": view.project,
        "runs": [{"suite_id": r.suite_id, "finished_at": iso(r.finished_at), "status": r.status,
                  "exit_code": r.exit_code, "summary": dict(r.counts), "tests": r.tests, "wall_s": r.wall_s,
                  "bundle_digest": r.digest, "pool": r.pool, "pytest_args": list(r.pytest_args)} for r in view.runs],
        "tests_timed": view.tests_timed,
        "slowest": [{"id": t.test_id, "runs": t.runs, "p50_s": round(t.p50_s, 4), "p95_s": round(t.p95_s, 4),
                     "last_s": round(t.last_s, 4)} for t in view.slowest],
        "flaky": [{"id": f.test_id, "rate": round(f.rate, 4), "flaky_runs": f.flaky_runs, "flips": f.flips,
                   "runs": f.runs} for f in view.flaky],
        "wall": None if view.wall is None else {
            "walls_s": list(view.wall.walls_s), "median_s": round(view.wall.median_s, 3),
            "last_s": view.wall.last_s, "sparkline": view.wall.sparkline},
    }
