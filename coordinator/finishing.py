"""What finishing a suite stores, read from the store as it is now: the report, the log's last event,
durations, the run history's entry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from itertools import islice
from sys import intern

from coordinator import machine, quality, staging
from coordinator.advancing import stage_counts
from coordinator.store import Finished, SuiteStore
from farm import events
from farm.model import Collection, SuiteSpec, TestRecord
from farm.report.build import durations_limit, report_text, slowest_of, stage_names
from farm.run_history import RunTally

#: Tests whose records the report reads from the store at once (one HMGET), in report order.
PAGE = 1000


def finished(state: SuiteStore, spec: SuiteSpec, finish: machine.Finish, collection: Collection | None,
             now: float) -> Finished:
    """The suite's report, last event and durations, read from the store as it is now.

    A large suite's finish is the coordinator's peak (100,000 tests): the records are read in
    pages, in report order, never all held at once, and the report's text is made test by test
    (`farm.report.build.report_text`); the history's durations are taken on the way. Read once
    more, in the store's order, for `--durations` (its ties keep that order), and for the
    durations if some counted record is not among the report's tests."""
    sid = spec.suite_id
    started = float(state.field(sid, "submitted_at") or now)
    # The finish's decided records (not_run verdicts) count where the store has none.
    decided = {d.test_id: d for d in finish.decided}
    if decided:
        ids = list(decided)
        for test_id, stored in zip(ids, state.records_of(sid, ids), strict=True):
            if stored is not None:
                del decided[test_id]
    order = state.order(sid) or [d.test_id for d in finish.decided]
    # Their test ids as the records and order hold them (interned): one string per test.
    attempts = [a.but(test_ids=tuple(map(intern, a.test_ids))) for a in state.attempts(sid)]
    collection_now = collection or state.collection(sid)
    stage_of = stage_names(spec, collection_now)  # by test id: a staged suite's only use of them
    if collection_now is not None:  # the report needs none of its (100,000) test ids
        collection_now = replace(collection_now, test_ids=())
    used = {a.worker for a in attempts} | ({collection_now.worker} if collection_now else set())
    workers = [w for w in state.workers() if w.name in used]
    stopped = state.stop_reason(sid)

    def counted() -> Iterator[tuple[str, TestRecord]]:
        """(test id, record) of every counted record, then the decided ones the store has none
        of; a record HSCAN gives twice, once (at its first place: `--durations` keeps its ties in
        the store's order). The durations take it from here too (`state.counted`'s dict kept the
        later of two reads of one field: the same record unless it was written between them)."""
        given: set[str] = set()
        for r in state.each_counted(sid):
            if r.test_id not in given:
                given.add(r.test_id)
                yield r.test_id, r
        yield from decided.items()

    limit = durations_limit(spec, collection_now)
    if limit >= 0:
        durations = slowest_of(counted(), limit)  # a pass of its own, in the store's order (ties)
    else:
        durations = None
    # The durations (`machine.timed`) are taken as the report reads the records, in its order;
    # if the report's tests were not every counted record, again from all of them.
    timed: dict[str, float] = {}
    tally = RunTally()  # the run history's entry, taken on the same pass
    seen = [0, 0]  # stored records, decided ones

    def in_order() -> Iterator[tuple[str, TestRecord]]:
        ids = iter(order)
        while page := list(islice(ids, PAGE)):
            for test_id, stored in zip(page, state.records_of(sid, page), strict=True):
                if stored is not None:
                    seen[0] += 1
                    record = stored
                elif test_id in decided:
                    seen[1] += 1
                    record = decided[test_id]
                else:
                    continue
                if machine.is_timed(record):
                    timed[test_id] = record.duration_s
                tally.add(test_id, record.outcome.value)
                yield test_id, record

    held = quality.quarantined(state, sid)  # as chosen at planning: every report shows the same set
    gates = [v.as_dict() for v in finish.gates]
    stage_rows = _stage_rows(state, spec, now)
    report = report_text(
        spec=spec, status=finish.status, exit_code=finish.exit_code, message=finish.message, started_at=started,
        finished_at=now, collection=collection_now, records=in_order(), runs=state.test_runs(sid),
        attempts=attempts, workers=workers, stopped=stopped, durations=durations, gates=gates,
        quarantine=held.tests, quarantine_unknown=held.unknown, stages=stage_rows, stage_of=stage_of,
    )
    if seen != [state.records_count(sid), len(decided)]:
        timed = {}
        tally = RunTally()
        for test_id, record in counted():  # one more pass, not two (a rare path: records changed meanwhile)
            if machine.is_timed(record):
                timed[test_id] = record.duration_s
            tally.add(test_id, record.outcome.value)
    overhead = machine.assignment_overhead(attempts, timed)
    if overhead is not None:
        timed[machine.OVERHEAD_KEY] = overhead
    # The log's last word: what the report says beyond the log's other events (farm.report.rebuild).
    event = events.finished(status=finish.status.value, exit_code=finish.exit_code, message=finish.message,
                            started_at=started, finished_at=now, stopped=stopped, workers=workers,
                            decided=finish.decided, collection=collection, gates=gates, quarantine=held.tests,
                            quarantine_unknown=held.unknown, stages=stage_rows)
    run = tally.entry(suite_id=sid, finished_at=now, started_at=started, status=finish.status.value,
                      exit_code=finish.exit_code, digest=spec.bundle_digest, pool=spec.pool,
                      pytest_args=spec.pytest_args)
    return Finished(report, event,
                    {"status": finish.status.value, "exit_code": finish.exit_code, "finished_at": now,
                     "message": finish.message}, spec.project, timed, run)


def _stage_rows(state: SuiteStore, spec: SuiteSpec, now: float) -> list[dict[str, object]]:
    """A staged suite's `stages` section: each stage's counts read from its tests' records (in pages)."""
    plan = state.stages(spec.suite_id) if spec.stages else None
    if plan is None:
        return []
    counts = [stage_counts(state, spec.suite_id, ids) for ids in plan.tests]
    return staging.report_rows(plan, spec, counts, now=now)
