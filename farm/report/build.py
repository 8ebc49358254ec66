"""Building a finished suite's JSON report (pure): from the coordinator's state, or folded from its event log."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from farm.attempts import Attempt
from farm.model import Collection, SuiteSpec, TestRecord, TestRun, WorkerInfo
from farm.outcomes import Outcome
from farm.pytest_options import effective
from farm.report.schema import SCHEMA, compact


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
) -> dict[str, Any]:
    """The report document described in docs/report-schema.md: its lean form (schema 2), as stored.

    `farm.report.schema.expand` gives its full view (every field, every run numbered)."""
    # A test's runs: one TestRun (most tests ran once), or a list of them; no list per test.
    by_test: dict[str, TestRun | list[TestRun]] = {}
    for run in runs:
        held = by_test.setdefault(run.test_id, run)
        if isinstance(held, list):
            held.append(run)
        elif held is not run:
            by_test[run.test_id] = [held, run]
    summary = {o.value: 0 for o in Outcome}
    suspects: dict[str, list[str]] = {}
    suspect_list: list[dict[str, Any]] = []

    def full_tests() -> Iterator[dict[str, Any]]:
        """Each test's full entry, one at a time: `compact` makes it lean as it goes, so a large
        suite's report never holds every test's full view at once. Once all are given, the
        summary's total and the suspect workers are known."""
        total = 0
        for test_id in order:
            record = counted.get(test_id)
            if record is None:
                continue
            total += 1
            summary[record.outcome.value] += 1
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

    used = {a.worker for a in attempts} | ({collection.worker} if collection else set())
    return compact({
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
        "tests": full_tests(),  # consumed (once) by compact, before it reads summary and suspects
        "assignments": [
            {"id": a.assignment_id, "attempt": a.number, "worker": a.worker or None, "node": a.node or None,
             "state": a.state.value, "tests": list(a.test_ids), "started_at": iso(a.started_at),
             "finished_at": iso(a.finished_at), "message": a.message}
            for a in attempts
        ],
        "workers": [{"name": w.name, "host": w.host, "slots": w.slots} for w in workers if w.name in used],
        "suspect_workers": suspect_list,
        "stopped": stopped,
        "durations": slowest_phases(counted, effective(collection.session, spec.pytest_args).durations)
        if collection else None,
    }, expanded=True)


def slowest_phases(counted: Mapping[str, TestRecord], limit: int) -> list[list[Any]] | None:
    """`--durations=N`: the slowest N phases as [seconds, phase, test id], slowest first (all for 0;
    None when not asked for, limit < 0)."""
    if limit < 0:
        return None
    phases = sorted(((seconds, when, test_id) for test_id, r in counted.items()
                     for when, seconds in (("setup", r.setup_s), ("call", r.call_s), ("teardown", r.teardown_s))
                     if seconds > 0), key=lambda p: -p[0])
    return [[round(seconds, 6), when, test_id] for seconds, when, test_id in (phases[:limit] if limit else phases)]


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
