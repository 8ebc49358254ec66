"""The HTML report's figures, pure: the timeline's bars and lanes (from the report and its event log),
test segments inside them, duration percentiles, throughput and each worker's utilization."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from farm.events import Event, Kind

#: Event kinds that mark an attempt on the timeline (docs/how-it-works.md, "The HTML report").
MARK_KINDS = (Kind.LEASE_LOST, Kind.HANDED_BACK, Kind.RERUN, Kind.CRASH_RETRY, Kind.SPLIT, Kind.FENCED)
#: An attempt's state that says the same as an event kind (a report without its log still shows them).
STATE_MARKS = {"lost": Kind.LEASE_LOST.value, "handback": Kind.HANDED_BACK.value}
#: Assignment ids of reruns and crash retries (docs/report-schema.md, "Attempts").
ID_MARKS = ((re.compile(r"-r\d+$"), Kind.RERUN.value), (re.compile(r"-c\d+$"), Kind.CRASH_RETRY.value))
#: Events after which an attempt no longer runs: where a bar without a finish time ends.
END_KINDS = (Kind.ENDED, Kind.LEASE_LOST, Kind.HANDED_BACK)


def epoch(iso: str | None) -> float | None:
    """Seconds since the epoch of an ISO 8601 time, None for none (or one that is not a time)."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank p-th percentile of ascending values (0.0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def pack_lanes(spans: Sequence[tuple[float, float]], minimum: int = 1) -> tuple[list[int], int]:
    """Each span's lane (first fit by start time: spans that overlap never share a lane) and the
    number of lanes, at least `minimum`."""
    order = sorted(range(len(spans)), key=lambda i: (spans[i][0], spans[i][1]))
    ends: list[float] = []
    lane = [0] * len(spans)
    for i in order:
        start, end = spans[i]
        free = next((k for k, e in enumerate(ends) if e <= start), None)
        if free is None:
            ends.append(end)
            free = len(ends) - 1
        else:
            ends[free] = end
        lane[i] = free
    return lane, max(minimum, len(ends))


@dataclass
class Bar:
    """One assignment attempt on the timeline, seconds from the suite's start."""

    assignment: str
    attempt: int
    worker: str
    node: str
    state: str
    start: float
    end: float
    marks: list[str] = field(default_factory=list)
    tests: int = 0
    resources: Mapping[str, Any] | None = None
    lane: int = 0  # index into Timeline.lanes


@dataclass
class Segment:
    """One test run inside its bar."""

    bar: int
    test: int  # index into the report's tests
    start: float
    duration: float
    outcome: str
    run: int | None
    runs: int | None
    fenced: bool
    worker: str
    node: str


@dataclass
class WorkerLoad:
    name: str
    slots: int
    lanes: int
    busy_s: float
    utilization: float  # busy_s / (lanes × wall), lanes = max(slots, lanes packed)


@dataclass
class Timeline:
    wall: float
    lanes: list[tuple[str, int]]  # (worker, slot number)
    bars: list[Bar]
    segments: list[Segment]
    workers: list[WorkerLoad]


def timeline_events(log: Iterable[Event]) -> list[Event]:
    """The events the timeline reads (marks and ends: small ones), from a log read as it goes: a
    `records` event carries whole records (100,000 tests: ~56 MB decoded), never kept here."""
    wanted = set(MARK_KINDS) | set(END_KINDS)
    return [e for e in log if e.kind in wanted]


def marks_by_attempt(events: Iterable[Event]) -> tuple[dict[tuple[str, int], list[str]], dict[tuple[str, int], float]]:
    """From the event log: the marker kinds of each (assignment, attempt), and the time each one last ended."""
    marks: dict[tuple[str, int], list[str]] = {}
    ended: dict[tuple[str, int], float] = {}
    for e in events:
        key = (e.assignment, e.attempt)
        if e.kind in MARK_KINDS and e.assignment:
            found = marks.setdefault(key, [])
            if e.kind.value not in found:
                found.append(e.kind.value)
        if e.kind in END_KINDS and e.assignment:
            ended[key] = e.at
    return marks, ended


def build_timeline(report: Mapping[str, Any], events: Sequence[Event]) -> Timeline:
    """The timeline of a full-view report (docs/report-schema.md), marked from its event log."""
    origin = epoch(report.get("started_at")) or 0.0
    wall = float(report.get("duration_s") or 0.0)
    marks, ended = marks_by_attempt(events)
    index = {(a["id"], a["attempt"]): i for i, a in enumerate(report.get("assignments") or [])}
    runs_of: dict[int, list[tuple[int, Mapping[str, Any]]]] = {}
    for t_index, test in enumerate(report.get("tests") or []):
        for run in test.get("attempts") or []:
            a = index.get((run.get("assignment"), run.get("attempt")))
            if a is not None and epoch(run.get("started_at")) is not None:
                runs_of.setdefault(a, []).append((t_index, run))
    bars: list[Bar] = []
    segments: list[Segment] = []
    for a_index, a in enumerate(report.get("assignments") or []):
        runs = runs_of.get(a_index, [])
        starts = [(epoch(r["started_at"]) or origin) - origin for _, r in runs]
        ends_ = [s + float(r.get("duration_s") or 0.0) for s, (_, r) in zip(starts, runs, strict=True)]
        start = epoch(a.get("started_at"))
        begin = start - origin if start is not None else min(starts, default=None)
        if begin is None:
            continue  # never started: nothing to draw
        finish = epoch(a.get("finished_at")) or ended.get((a["id"], a["attempt"]))
        end = finish - origin if finish is not None else max(ends_, default=wall)
        end = max(end, begin, *ends_)
        found = list(marks.get((a["id"], a["attempt"]), []))
        for state, kind in STATE_MARKS.items():
            if a.get("state") == state and kind not in found:
                found.append(kind)
        for pattern, kind in ID_MARKS:
            if pattern.search(a["id"]) and kind not in found:
                found.append(kind)
        if any(r.get("fenced") for _, r in runs) and Kind.FENCED.value not in found:
            found.append(Kind.FENCED.value)
        bar = len(bars)
        bars.append(Bar(a["id"], a["attempt"], a.get("worker") or "", a.get("node") or "", a.get("state") or "",
                        begin, end, found, len(a.get("tests") or runs), a.get("resources")))
        for s, (t_index, r) in zip(starts, runs, strict=True):
            segments.append(Segment(bar, t_index, s, float(r.get("duration_s") or 0.0), r.get("outcome") or "",
                                    r.get("run"), r.get("runs"), bool(r.get("fenced")),
                                    r.get("worker") or bars[bar].worker, r.get("node") or bars[bar].node))
    wall = max([wall, *(b.end for b in bars)])
    slots = {w["name"]: int(w.get("slots") or 1) for w in report.get("workers") or []}
    for b in bars:
        slots.setdefault(b.worker, 1)
    lanes: list[tuple[str, int]] = []
    loads: list[WorkerLoad] = []
    for worker, n in slots.items():
        mine = [i for i, b in enumerate(bars) if b.worker == worker]
        lane_of, count = pack_lanes([(bars[i].start, bars[i].end) for i in mine], n)
        for i, k in zip(mine, lane_of, strict=True):
            bars[i].lane = len(lanes) + k
        lanes.extend((worker, k) for k in range(count))
        busy = sum(bars[i].end - bars[i].start for i in mine)
        loads.append(WorkerLoad(worker, n, count, busy, busy / (count * wall) if wall > 0 else 0.0))
    return Timeline(wall, lanes, bars, segments, loads)


@dataclass(frozen=True)
class Figures:
    ran: int  # tests that ran (every outcome but not_run)
    p50: float
    p95: float
    p99: float
    throughput: float  # tests that ran per second of the suite's wall time
    slowest: list[int]  # indexes into the report's tests, slowest first


def figures(report: Mapping[str, Any], slowest: int = 20) -> Figures:
    """Duration percentiles, throughput and the slowest tests of a full-view report."""
    tests = report.get("tests") or []
    ran = [i for i, t in enumerate(tests) if t.get("outcome") != "not_run"]
    durations = sorted(float(tests[i].get("duration_s") or 0.0) for i in ran)
    wall = float(report.get("duration_s") or 0.0)
    top = sorted(ran, key=lambda i: -float(tests[i].get("duration_s") or 0.0))[:slowest]
    return Figures(len(ran), percentile(durations, 50), percentile(durations, 95), percentile(durations, 99),
                   len(ran) / wall if wall > 0 else 0.0, top)
