"""What finishing a suite stores, read from the store as it is now: the report, the log's last event, durations."""

from __future__ import annotations

import json

from coordinator import machine
from coordinator.store import Finished, SuiteStore
from farm import events
from farm.model import Collection, SuiteSpec
from farm.report.build import build_report


def finished(state: SuiteStore, spec: SuiteSpec, finish: machine.Finish, collection: Collection | None,
             now: float) -> Finished:
    """The suite's report, last event and durations, read from the store as it is now."""
    sid = spec.suite_id
    started = float(state.field(sid, "submitted_at") or now)
    counted = state.counted(sid)
    for d in finish.decided:
        counted.setdefault(d.test_id, d)
    order = state.order(sid) or [d.test_id for d in finish.decided]
    attempts = state.attempts(sid)
    collection_now = collection or state.collection(sid)
    used = {a.worker for a in attempts} | ({collection_now.worker} if collection_now else set())
    workers = [w for w in state.workers() if w.name in used]
    stopped = state.stop_reason(sid)
    # Stored with the report: whoever sees it (the embedded farm saving its history, the next
    # submission) sees this suite's durations too. Taken before the report's text is made, so
    # that the records are not held beside it (a large suite's finish is the coordinator's peak).
    timed = machine.timed(counted)
    overhead = machine.assignment_overhead(attempts, timed)
    if overhead is not None:
        timed[machine.OVERHEAD_KEY] = overhead
    report = build_report(
        spec=spec, status=finish.status, exit_code=finish.exit_code, message=finish.message, started_at=started,
        finished_at=now, collection=collection_now, order=order, counted=counted,
        runs=state.test_runs(sid), attempts=attempts, workers=workers, stopped=stopped,
    )
    del counted, order  # the report holds what it needs of them
    # The log's last word: what the report says beyond the log's other events (farm.report.rebuild).
    event = events.finished(status=finish.status.value, exit_code=finish.exit_code, message=finish.message,
                            started_at=started, finished_at=now, stopped=stopped, workers=workers,
                            decided=finish.decided, collection=collection)
    return Finished(json.dumps(report, ensure_ascii=False), event,
                    {"status": finish.status.value, "exit_code": finish.exit_code, "finished_at": now,
                     "message": finish.message}, spec.project, timed)
