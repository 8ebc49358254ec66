"""Building a finished suite's JSON report (pure): from the coordinator's state, or folded from its event log."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from farm.attempts import Attempt
from farm.model import Collection, SuiteSpec, TestRecord, TestRun, WorkerInfo
from farm.outcomes import Outcome
from farm.pytest_options import effective
from farm.report.schema import SCHEMA, assignment_index, compact, drop_empty_lists, lean_assignments, lean_test


def iso(ts: float | None) -> str | None:
    """An epoch time as ISO 8601 in UTC (None stays None)."""
    if not ts:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def build_report(
    *,
    spec: SuiteSpec,
    status: str,
    exit_code: int,
    message: str,
    started_at: float,
    finished_at: float,
    collection: Collection | None,
    order: Sequence[str],
    counted: Mapping[str, TestRecord],
    runs: Iterable[TestRun],
    attempts: Sequence[Attempt],
    workers: Sequence[WorkerInfo],
    stopped: str = "",
    gates: Sequence[Mapping[str, Any]] = (),
    quarantine: Mapping[str, str] | None = None,
    quarantine_unknown: Sequence[str] = (),
    stages: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The report document described in docs/report-schema.md: its lean form (schema 2), as stored.

    `farm.report.schema.expand` gives its full view (every field, every run numbered). `gates`:
    the verdicts' dicts (farm.gates.Verdict.as_dict); `quarantine`: the quarantined tests (id ->
    why) and `quarantine_unknown` the listed ids not collected (farm.quarantine.Quarantine)."""
    summary = {o.value: 0 for o in Outcome}
    suspect_list: list[dict[str, Any]] = []
    kept: list[dict[str, str]] = []
    # Consumed (once) by compact, before it reads summary and suspects.
    tests = _full_tests(((t, counted[t]) for t in order if t in counted), runs_by_test(runs), summary, suspect_list,
                        quarantine or {}, kept, stage_names(spec, collection))
    return compact(_document(spec=spec, status=status, exit_code=exit_code, message=message,
                             started_at=started_at, finished_at=finished_at, collection=collection,
                             summary=summary, tests=tests, attempts=attempts, workers=workers,
                             suspects=suspect_list, stopped=stopped,
                             durations=slowest_phases(counted, durations_limit(spec, collection)),
                             gates=gates, quarantined=kept, quarantine_unknown=quarantine_unknown, stages=stages),
                   expanded=True)


#: json.dumps(..., ensure_ascii=False) without a new encoder per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def report_text(
    *,
    spec: SuiteSpec,
    status: str,
    exit_code: int,
    message: str,
    started_at: float,
    finished_at: float,
    collection: Collection | None,
    records: Iterable[tuple[str, TestRecord]],
    runs: Iterable[TestRun],
    attempts: Sequence[Attempt],
    workers: Sequence[WorkerInfo],
    stopped: str = "",
    durations: list[list[Any]] | None = None,
    page: int = 1000,
    gates: Sequence[Mapping[str, Any]] = (),
    quarantine: Mapping[str, str] | None = None,
    quarantine_unknown: Sequence[str] = (),
    stages: Sequence[Mapping[str, Any]] = (),
    stage_of: Mapping[str, str] | None = None,
) -> list[bytes]:
    """`build_report`'s document as its JSON text (`json.dumps(..., ensure_ascii=False)`, UTF-8),
    in pieces whose concatenation is that text byte for byte, made test by test: `records` are
    (test id, counted record) in report order (a store can page them in), each test's lean entry is
    turned into text as it comes and dropped, so a large suite's finish never holds every test's
    record, entry and the report's text at once. `durations`: `slowest_phases`' list, computed by
    the caller over every counted record (None when not asked for); `gates`, `quarantine` and
    `quarantine_unknown` as `build_report`'s; `stage_of`: each test's stage (`stage_names`), given
    by a caller whose `collection` no longer holds its test ids."""
    summary = {o.value: 0 for o in Outcome}
    suspect_list: list[dict[str, Any]] = []
    kept: list[dict[str, str]] = []
    by_test = runs_by_test(runs)
    doc = _document(spec=spec, status=status, exit_code=exit_code, message=message, started_at=started_at,
                    finished_at=finished_at, collection=collection, summary=summary, tests=iter(()),
                    attempts=attempts, workers=workers, suspects=suspect_list, stopped=stopped,
                    durations=durations, gates=gates, quarantined=kept, quarantine_unknown=quarantine_unknown,
                    stages=stages)
    assignments: list[dict[str, Any]] = doc["assignments"]
    index = assignment_index(assignments)
    referenced: dict[int, list[str]] = {}
    pieces: list[bytes] = []
    lean: list[dict[str, Any]] = []

    def flush() -> None:
        # A list's text is "[" + its items' texts joined by ", " + "]": a page's items, one C call.
        pieces.append(((", " if pieces else "") + _ENCODE(lean)[1:-1]).encode())
        lean.clear()

    for test in _full_tests(records, by_test, summary, suspect_list, quarantine or {}, kept,
                            stage_names(spec, collection) if stage_of is None else stage_of):
        lean.append(lean_test(test, index, assignments, referenced))
        if len(lean) >= page:
            flush()
    if lean:
        flush()
    del by_test
    doc["assignments"] = lean_assignments(assignments, referenced)
    del referenced
    drop_empty_lists(doc)
    # json.dumps of a dict is "{" + '"key": value' joined by ", " + "}", a list's "[" ... "]".
    head: list[str] = []
    tail: list[str] = []
    into = head
    for key, value in doc.items():
        if key == "tests":
            head.append(f"{json.dumps(key)}: [")
            into = tail
            continue
        into.append(f"{_ENCODE(key)}: {_ENCODE(value)}")
    head_text = "{" + ", ".join(head)
    tail_text = "]" + "".join(f", {t}" for t in tail) + "}"
    return [head_text.encode(), *pieces, tail_text.encode()]


def durations_limit(spec: SuiteSpec, collection: Collection | None) -> int:
    """`--durations=N` as the collecting session saw it (-1: not asked for, or nothing collected)."""
    return effective(collection.session, spec.pytest_args).durations if collection else -1


def runs_by_test(runs: Iterable[TestRun]) -> dict[str, TestRun | list[TestRun]]:
    """A test's runs: one TestRun (most tests ran once), or a list of them; no list per test."""
    by_test: dict[str, TestRun | list[TestRun]] = {}
    for run in runs:
        held = by_test.setdefault(run.test_id, run)
        if isinstance(held, list):
            held.append(run)
        elif held is not run:
            by_test[run.test_id] = [held, run]
    return by_test


def stage_names(spec: SuiteSpec, collection: Collection | None) -> dict[str, str]:
    """A staged suite's stage name for each of its runnable tests (`Collection.stage_of`, parallel
    to its `test_ids`); {} for a suite without stages, or a collection that does not say each
    test's stage (a worker older than --stage, or an index outside the stages: farm ran them all
    in the first stage)."""
    if not spec.stages or collection is None:
        return {}
    names = [s.name for s in spec.stages]
    stage_of = collection.stage_of
    if len(stage_of) != len(collection.test_ids):
        return {}
    if any(not 0 <= k < len(names) for k in stage_of):
        return {}
    return {test_id: names[k] for test_id, k in zip(collection.test_ids, stage_of, strict=True)}


def _full_tests(records: Iterable[tuple[str, TestRecord]], by_test: Mapping[str, TestRun | list[TestRun]],
                summary: dict[str, int], suspect_list: list[dict[str, Any]], quarantine: Mapping[str, str],
                quarantined: list[dict[str, str]], stages: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """Each test's full entry, one at a time: `compact` (or `lean_test`) makes it lean as it
    goes, so a large suite's report never holds every test's full view at once. Once all are
    given, the summary's total, the suspect workers and the quarantined tests' outcomes
    (`quarantined`, in report order) are known. `stages`: each runnable test's stage
    (`stage_names`); the others (decided at collection) belong to none."""
    total = 0
    suspects: dict[str, list[str]] = {}
    for test_id, record in records:
        stage = stages.get(test_id)
        total += 1
        summary[record.outcome.value] += 1
        if quarantine and test_id in quarantine:
            quarantined.append({"test_id": test_id, "outcome": record.outcome.value, "reason": quarantine[test_id]})
        held = by_test.get(test_id)
        runs_of: list[TestRun] = [] if held is None else [held] if not isinstance(held, list) else \
            sorted(held, key=lambda r: (r.started_at, r.assignment, r.attempt))
        crashed_on, blame = crash_blame(record.outcome, runs_of)
        test_message = record.message
        if blame == "test":
            test_message += f" [crashed its runner on {len(crashed_on)} workers: the test, not a worker]"
        elif blame == "worker":
            for worker in crashed_on:
                suspects.setdefault(worker, []).append(test_id)
        yield {
            "id": test_id,
            "outcome": record.outcome.value,
            "phase": record.phase,
            "duration_s": round(record.duration_s, 6),
            "message": test_message,
            "crashed_on": crashed_on,
            "blame": blame,
            "ran_as": record.ran_as or None,
            "stage": stage,
            "longrepr": record.longrepr,
            "sections": [list(s) for s in record.sections],
            "attempts": [
                {"assignment": r.assignment, "attempt": r.attempt, "worker": r.worker, "node": r.node,
                 "outcome": r.outcome, "duration_s": round(r.duration_s, 6), "started_at": iso(r.started_at),
                 "fenced": r.fenced}
                for r in runs_of
            ],
        }
    summary["total"] = total
    suspect_list.extend({"worker": w, "tests": ids} for w, ids in sorted(suspects.items()))


def _document(*, spec: SuiteSpec, status: str, exit_code: int, message: str, started_at: float,
              finished_at: float, collection: Collection | None, summary: dict[str, int],
              tests: Iterator[dict[str, Any]], attempts: Sequence[Attempt], workers: Sequence[WorkerInfo],
              suspects: list[dict[str, Any]], stopped: str, durations: list[list[Any]] | None,
              gates: Sequence[Mapping[str, Any]] = (), quarantined: list[dict[str, str]] | None = None,
              quarantine_unknown: Sequence[str] = (), stages: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The report's full view, its tests given one at a time (`_full_tests`; it fills `quarantined`)."""
    used = {a.worker for a in attempts} | ({collection.worker} if collection else set())
    return {
        "schema": SCHEMA,
        "suite_id": spec.suite_id,
        "project": spec.project,
        "pool": spec.pool,
        "status": status,
        "exit_code": exit_code,
        "message": message,
        "pytest_args": list(spec.pytest_args),
        "summary": summary,
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "duration_s": round(max(0.0, finished_at - started_at), 3),
        "collection": {
            "worker": collection.worker,
            "exit_code": collection.exit_code,
            "duration_s": round(collection.duration_s, 3),
            "output": collection.output,
        } if collection else None,
        "tests": tests,
        "assignments": [
            {"id": a.assignment_id, "attempt": a.number, "worker": a.worker or None, "node": a.node or None,
             "state": a.state.value, "tests": list(a.test_ids), "started_at": iso(a.started_at),
             "finished_at": iso(a.finished_at), "message": a.message, "resources": resources_of(a)}
            for a in attempts
        ],
        "leaks": leaks_of(attempts),
        "workers": [{"name": w.name, "host": w.host, "slots": w.slots} for w in workers if w.name in used],
        "suspect_workers": suspects,
        "stopped": stopped,
        "durations": durations,
        "gates": [dict(v) for v in gates],
        "quarantined": quarantined if quarantined is not None else [],
        "quarantine_unknown": list(quarantine_unknown),
        "stages": [dict(row) for row in stages],  # a staged suite's (--stage): farm.stages.row
    }


def resources_of(a: Attempt) -> dict[str, Any] | None:
    """An attempt's `resources` in the report: its runners' peak RSS and CPU seconds, None if not measured."""
    if not a.peak_rss_bytes:
        return None
    return {"peak_rss_bytes": a.peak_rss_bytes, "cpu_s": round(a.cpu_s, 3)}


def leaks_of(attempts: Iterable[Attempt]) -> list[dict[str, Any]]:
    """The report's `leaks`: what each attempt's tests left behind, in the attempts' order."""
    return [{"test": test or None, "kind": kind, "detail": detail, "assignment": a.assignment_id,
             "attempt": a.number} for a in attempts for test, kind, detail in a.leaks]


def slowest_phases(counted: Mapping[str, TestRecord], limit: int) -> list[list[Any]] | None:
    """`--durations=N`: the slowest N phases as [seconds, phase, test id], slowest first (all for 0;
    None when not asked for, limit < 0)."""
    return slowest_of(counted.items(), limit)


def slowest_of(counted: Iterable[tuple[str, TestRecord]], limit: int) -> list[list[Any]] | None:
    """`slowest_phases` of (test id, record) pairs given one at a time (a store's pages): with
    N > 0 only the N slowest are held (`heapq.nsmallest` is `sorted(...)[:N]`, ties in order)."""
    if limit < 0:
        return None
    all_phases = ((seconds, when, test_id) for test_id, r in counted
                  for when, seconds in (("setup", r.setup_s), ("call", r.call_s), ("teardown", r.teardown_s))
                  if seconds > 0)
    phases = heapq.nsmallest(limit, all_phases, key=_slowest) if limit else sorted(all_phases, key=_slowest)
    return [[round(seconds, 6), when, test_id] for seconds, when, test_id in phases]


def _slowest(phase: tuple[float, str, str]) -> float:
    return -phase[0]


def crash_blame(outcome: Outcome, runs: Sequence[TestRun]) -> tuple[list[str], str | None]:
    """The workers where a test crashed its runner, and whom that blames.

    "test": it crashed on two or more workers (it crashes whatever runs it); "worker": it crashed
    on a worker and did not when run again on another; "unknown": it crashed on one worker only
    and was not run elsewhere (or ran there again without crashing); None: it never crashed.
    `runs` are in the order they ran.
    """
    counted = [r for r in runs if not r.fenced]
    crashed_on = sorted({r.worker for r in counted if r.outcome == Outcome.CRASHED.value})
    if not crashed_on:
        return [], None
    if outcome is not Outcome.CRASHED:
        # It did not crash last time: the worker is to blame only if that was another worker.
        return crashed_on, "unknown" if counted[-1].worker in crashed_on else "worker"
    return crashed_on, "test" if len(crashed_on) >= 2 else "unknown"
