"""The report as a function of the event log: fold a suite's events into what `build_report` takes (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from farm.attempts import Attempt
from farm.errors import LogIncomplete
from farm.events import Event, Kind, collected_data
from farm.model import Collection, SuiteSpec, TestRecord, TestRun, WorkerInfo, record_from_plain
from farm.protocol import decode
from farm.report.build import build_report
from farm.stored import record_from_row, run_from_row, run_of


@dataclass
class Folded:
    """A suite as its log tells it, up to its first `finished` event."""

    spec: SuiteSpec | None = None
    collection: Collection | None = None
    order: list[str] = field(default_factory=list)
    counted: dict[str, TestRecord] = field(default_factory=dict)
    runs: dict[str, TestRun] = field(default_factory=dict)
    attempts: dict[str, Attempt] = field(default_factory=dict)
    finish: dict[str, Any] | None = None


def _attempt(prev: Attempt | None, data: dict[str, Any]) -> Attempt:
    if prev is not None and "test_ids" not in data:
        data = {**data, "test_ids": list(prev.test_ids)}
    return Attempt.from_stored(data)


def fold(events: Iterable[Event]) -> Folded:
    """Replay the log's writes, in order, as the store made them (a later write wins; a not-run
    verdict's run is written only if absent, as the store's HSETNX)."""
    f = Folded()
    for e in events:
        if f.finish is not None:
            break  # what came after the report (late records) is not in it
        d = e.data
        if e.kind == Kind.SUBMITTED:
            f.spec = decode(d["spec"], SuiteSpec)
        elif e.kind == Kind.COLLECTED:
            f.collection, f.order, planned = collected_data(d)
            for new in planned:
                f.attempts[new.key] = new
        elif "attempt" in d:
            a = d["attempt"]
            key = f"{a['id']}#{a['attempt']}"
            f.attempts[key] = _attempt(f.attempts.get(key), a)
        elif "c" in d or "counted" in d:
            _fold_records(f, e)
        elif e.kind == Kind.FINISHED:
            f.finish = dict(d)
    return f


def _fold_records(f: Folded, e: Event) -> None:
    """A `records` event (or a deadline's or cancel's): its records, then the runs it wrote
    (HSET), then its verdicts (HSETNX). Both forms: `farm.events.merged`'s and the older maps."""
    d = e.data
    counted = [record_from_row(v) for v in d["c"]] if "c" in d else [record_from_plain(v) for v in d["counted"]]
    for r in counted:
        f.counted[r.test_id] = r
    for i in d.get("derived", ()):
        run = run_of(counted[i], assignment=e.assignment, attempt=e.attempt, worker=e.worker, node=e.node)
        f.runs[run.key] = run
    for run in map(run_from_row, d["runs"]):
        f.runs[run.key] = run
    for run in map(run_from_row, d["verdicts"]):
        f.runs.setdefault(run.key, run)


def rebuild(events: list[Event], suite_id: str = "") -> dict[str, Any]:
    """The suite's report (the lean document, as stored) from its log alone; LogIncomplete if the
    log was trimmed or the suite has not finished."""
    name = suite_id or "the suite"
    if not events or events[0].kind != Kind.SUBMITTED:
        raise LogIncomplete(f"the event log of {name} was trimmed (its oldest entries are gone): "
                            "it cannot give the report")
    f = fold(events)
    if f.finish is None or f.spec is None:
        raise LogIncomplete(f"{name} has not finished: its log has no report yet")
    fin = f.finish
    decided = [record_from_plain(p) for p in fin["decided"]]
    counted = dict(f.counted)
    for r in decided:
        counted.setdefault(r.test_id, r)
    collection = decode(fin["collection"], Collection) if "collection" in fin else f.collection
    return build_report(
        spec=f.spec, status=fin["status"], exit_code=int(fin["exit_code"]), message=fin["message"],
        started_at=float(fin["started_at"]), finished_at=float(fin["finished_at"]), collection=collection,
        order=f.order or [r.test_id for r in decided], counted=counted, runs=list(f.runs.values()),
        attempts=sorted(f.attempts.values(), key=lambda a: (a.assignment_id, a.number)),
        workers=[WorkerInfo(n, h, int(s), "", "") for n, h, s in fin["workers"]], stopped=fin["stopped"],
        gates=list(fin.get("gates") or ()), quarantine={str(t): str(why) for t, why in fin.get("quarantine") or ()},
        quarantine_unknown=[str(t) for t in fin.get("quarantine_unknown") or ()], stages=fin.get("stages", ()))
