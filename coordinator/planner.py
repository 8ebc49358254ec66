"""What the coordinator does at each step of a suite's life (Celery-free; state through SuiteState)."""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

from coordinator.reporting import build_report
from coordinator.splitting import split
from coordinator.state import SuiteState
from farm.config import Settings
from farm.model import Assignment, Collection, Completion, RecordBatch, SuiteSpec, TestRecord
from farm.outcomes import Outcome, exit_code_for
from farm.protocol import decode, encode

log = logging.getLogger("farm.coordinator")

#: Outcomes whose durations are recorded for the next split (a not_run test has no duration).
_TIMED = {Outcome.PASSED, Outcome.FAILED, Outcome.ERROR, Outcome.XFAILED, Outcome.XPASSED, Outcome.SKIPPED}
#: How long a canceled suite waits for its running assignments to report before it is closed.
CANCEL_GRACE_S = 15.0
#: How long a suite whose every test has an outcome waits for assignments' completions (they
#: follow the last record by milliseconds) before it is reported without them.
COMPLETION_GRACE_S = 5.0
TERMINAL = ("done", "failed", "canceled", "deadline", "lost")


#: The history field holding the median per-assignment overhead (not a node id: it has a NUL).
OVERHEAD_KEY = "\0assignment-overhead"


def assignment_overhead(assignments: list[dict[str, Any]], durations: dict[str, float]) -> float | None:
    """Median of (wall time - its tests' durations) over the assignments that ran to the end."""
    overheads = [
        max(0.0, a["wall_s"] - sum(durations.get(t, 0.0) for t in a["test_ids"]))
        for a in assignments if a.get("state") == "done" and "wall_s" in a
    ]
    return statistics.median(overheads) if overheads else None


def _deadline_at(spec: SuiteSpec) -> float:
    """The epoch time at which the suite's deadline falls (0: no deadline)."""
    return spec.submitted_at + spec.deadline_s if spec.deadline_s > 0 else 0.0


class Planner:
    """Drives suites: collection → assignments → merged records → report."""

    def __init__(self, state: SuiteState, settings: Settings,
                 publish_collect: Callable[[SuiteSpec], None],
                 publish_assignment: Callable[[str, Assignment], None]) -> None:
        self.state = state
        self.settings = settings
        self.publish_collect = publish_collect
        self.publish_assignment = publish_assignment

    # --- submitted → collecting ----------------------------------------------------------

    def submitted(self, suite_id: str) -> None:
        spec = self.state.spec(suite_id)
        if self.state.transition(suite_id, ["submitted"], "collecting"):
            self.state.mark_active(suite_id)
            self.publish_collect(spec)

    # --- collecting → running (or finished) ----------------------------------------------

    def collected(self, collection: Collection) -> None:
        sid = collection.suite_id
        spec = self.state.spec(sid)
        if self.state.canceled(sid):
            self._finish_without_run(spec, collection, "canceled", 2, "suite canceled during collection")
            return
        errors = [d for d in collection.decided if d.outcome is Outcome.ERROR]
        if collection.exit_code in (3, 4) or (collection.exit_code == 2 and not errors):
            message = f"pytest could not collect the suite (exit code {collection.exit_code})"
            self._finish_without_run(spec, collection, "error", collection.exit_code, message)
            return
        if errors and collection.exit_code == 2:
            # As pytest: collection errors interrupt the session before any test runs.
            n = len(errors)
            message = f"Interrupted: {n} error{'s' if n != 1 else ''} during collection"
            self._finish_without_run(spec, collection, "finished", 2, message, decided=collection.decided)
            return
        test_ids = list(collection.test_ids)
        durations = self.state.durations(spec.project)
        overhead = durations.pop(OVERHEAD_KEY, None)
        slots = self.state.pool_slots(spec.pool) or 1
        planned = split(test_ids, slots=slots, dist=spec.dist, durations=durations,
                        per_slot=self.settings.assignments_per_slot, min_assignment_s=self.settings.min_assignment_s,
                        min_tests=self.settings.min_assignment_tests, overhead_s=overhead)
        rows = []
        assignments = []
        for i, p in enumerate(planned):
            a = Assignment(sid, f"{sid}-a{i:03d}", 1, spec.bundle_digest, spec.pytest_args, p.test_ids, p.expected_s,
                           test_timeout_s=spec.test_timeout_s, deadline_at=_deadline_at(spec), priority=i)
            assignments.append(a)
            rows.append({"id": a.assignment_id, "attempt": 1, "state": "queued", "test_ids": list(p.test_ids),
                         "expected_s": p.expected_s, "worker": "", "node": "", "started_at": 0.0,
                         "finished_at": 0.0})
        if not self.state.plan(collection, test_ids, rows):
            return  # a duplicate delivery of the collection: planned already
        if collection.decided:
            self.state.merge(sid, list(collection.decided), assignment="collection", attempt=1,
                             worker=collection.worker, node="collect")
        log.info("suite %s: %d tests in %d assignments over %d slots", sid, len(test_ids), len(planned), slots)
        for a in assignments:
            self.publish_assignment(spec.pool, a)
        self._maybe_finish(sid)

    # --- records and completions ---------------------------------------------------------

    def records(self, batch: RecordBatch) -> None:
        status = self.state.field(batch.suite_id, "status")
        if status is None:
            log.warning("records for unknown suite %s dropped", batch.suite_id)
            return
        row = self.state.assignment(batch.suite_id, batch.assignment_id, batch.attempt)
        if row is None:
            log.warning("records for unknown attempt %s#%d dropped", batch.assignment_id, batch.attempt)
            return
        if row["state"] == "queued":
            self.state.mark_running(batch.suite_id, batch.assignment_id, batch.attempt, worker=batch.worker,
                                    node=batch.node, started_at=time.time())
        allowed = set(row["test_ids"])
        records = [r for r in batch.records if r.test_id in allowed]
        if len(records) != len(batch.records):
            log.warning("assignment %s sent %d records for tests it was not given; dropped",
                        batch.assignment_id, len(batch.records) - len(records))
        if records:
            result = self.state.merge(batch.suite_id, records, assignment=batch.assignment_id,
                                      attempt=batch.attempt, worker=batch.worker, node=batch.node)
            if result.fenced:
                log.warning("attempt %s#%d: %d late records fenced (their tests run again elsewhere)",
                            batch.assignment_id, batch.attempt, result.fenced)
            row = self.state.add_received(batch.suite_id, batch.assignment_id, batch.attempt, len(records)) or row
            held = row.get("held_completion")
            if held is not None and row.get("received", 0) >= decode(held, Completion).reported:
                self._settle(decode(held, Completion))  # the records it was waiting for are in
            elif result.newly_final:
                self._maybe_finish(batch.suite_id)

    def completed(self, c: Completion) -> None:
        """An attempt ended. Held until the records it says it sent have arrived (threads reorder)."""
        held = self.state.hold_completion(c.suite_id, c.assignment_id, c.attempt, encode(c), c.reported)
        if held is None:
            log.warning("completion for unknown attempt %s#%d dropped", c.assignment_id, c.attempt)
        elif not held:
            self._settle(c)

    def _settle(self, c: Completion) -> None:
        """Record how an attempt ended; its tests still without an outcome did not run."""
        # An attempt given up on (lost) keeps that state: its tests belong to a newer attempt.
        row = self.state.settle_row(c.suite_id, c.assignment_id, c.attempt, c.state, worker=c.worker,
                                    node=c.node, finished_at=c.finished_at, exit_code=c.exit_code,
                                    message=c.message[:4000], wall_s=max(0.0, c.finished_at - c.started_at),
                                    held_completion=None, started_at=c.started_at)
        if row is None:
            return
        self.state.mark_finished(c.suite_id, c.assignment_id, c.attempt)
        owner = f"{c.assignment_id}#{c.attempt}"
        pending = self.state.pending_in(c.suite_id, list(row["test_ids"]), owner)
        if pending:
            why = c.message.splitlines()[0] if c.message else "the runner ended before running this test"
            if c.state == "done":
                why = "the runner ended before running this test (pytest -x or --maxfail?)"
            if c.state == "deadline":
                why = "not run: the suite deadline came first"
            self._not_run(c.suite_id, pending, c.assignment_id, c.attempt, c.worker, c.node, why)
        self._maybe_finish(c.suite_id)

    def lost(self, suite_id: str, row: dict[str, Any]) -> None:
        """An attempt's worker stopped renewing its lease: run its unfinished tests again, or give up."""
        why = (f"attempt {row['attempt']} lost: {row.get('worker') or 'its worker'} stopped renewing its lease "
               f"for {self.settings.lease_s:g}s")
        spec = self.state.spec(suite_id)
        moved = self.state.requeue(suite_id, row, why)
        log.warning("suite %s: %s; %d tests run again", suite_id, why, len(moved))
        if not moved:
            self._maybe_finish(suite_id)
            return
        attempt = row["attempt"] + 1
        deadline = _deadline_at(spec)
        expected = sum(self.state.durations(spec.project).get(t, 0.0) for t in moved)
        too_late = bool(deadline) and time.time() + expected >= deadline
        if attempt > self.settings.max_attempts or self.state.canceled(suite_id) or too_late:
            # Retries never start work that cannot finish before the suite deadline.
            reason = "suite canceled" if self.state.canceled(suite_id) else \
                "not run: no time left before the suite deadline to run it again" if too_late else \
                f"not run: its assignment was lost {row['attempt']} times (workers died)"
            self._not_run(suite_id, moved, row["id"], attempt, "", "", reason)
            self.state.update_assignment(suite_id, row["id"], attempt, state="failed", message=reason)
            self._maybe_finish(suite_id)
            return
        self.publish_assignment(spec.pool, Assignment(
            suite_id, row["id"], attempt, spec.bundle_digest, spec.pytest_args, tuple(moved),
            test_timeout_s=spec.test_timeout_s, deadline_at=deadline, priority=0))

    def cancel(self, suite_id: str) -> None:
        self.state.request_cancel(suite_id)
        status = self.state.field(suite_id, "status")
        if status == "submitted":
            spec = self.state.spec(suite_id)
            self._finish_without_run(spec, None, "canceled", 2, "suite canceled before collection")

    def collection_lost(self, suite_id: str) -> None:
        """The worker collecting the suite stopped renewing its lease: collect again, or give up."""
        spec = self.state.spec(suite_id)
        tries = self.state.collection_retry(suite_id)
        log.warning("suite %s: collection lost (try %d)", suite_id, tries)
        if tries >= self.settings.max_attempts:
            message = f"the collection was lost {tries} times (workers died while collecting)"
            self._finish_without_run(spec, None, "error", 3, message)
            return
        self.publish_collect(spec)

    def _rerun_failures(self, spec: SuiteSpec) -> bool:
        """Run the suite's failing tests again (--rerun-failures), if any may be; True if started."""
        sid = spec.suite_id
        deadline = _deadline_at(spec)
        if deadline and time.time() >= deadline:
            return False
        tests = self.state.failing_for_rerun(sid, spec.rerun_failures)
        if not tests:
            return False
        round_ = 1 + len({a["id"] for a in self.state.assignments(sid) if a["id"].startswith(f"{sid}-r")})
        aid = f"{sid}-r{round_:02d}"
        row = {"id": aid, "attempt": 1, "state": "queued", "test_ids": tests, "expected_s": 0.0, "worker": "",
               "node": "", "started_at": 0.0, "finished_at": 0.0}
        moved = self.state.start_rerun(sid, row, tests)
        if not moved:
            return False
        log.info("suite %s: running %d failing tests again (round %d)", sid, len(moved), round_)
        self.publish_assignment(spec.pool, Assignment(
            sid, aid, 1, spec.bundle_digest, spec.pytest_args, tuple(moved), test_timeout_s=spec.test_timeout_s,
            deadline_at=deadline, priority=0))
        return True

    def deadline_passed(self, suite_id: str) -> None:
        """Past the deadline (and the grace workers get to report): what did not run, did not run."""
        status = self.state.field(suite_id, "status")
        spec = self.state.spec(suite_id)
        if status in ("submitted", "collecting"):
            self._finish_without_run(spec, None, "deadline", 2, "suite deadline reached before collection ended")
        elif status == "running":
            self._not_run(suite_id, self.state.all_pending(suite_id), "deadline", 0, "", "",
                          "not run: the suite deadline came first")
            self._maybe_finish(suite_id, force=True)

    def sweep(self) -> None:
        """Periodic: requeue lost attempts, settle late completions, close suites in time."""
        for sid in self.state.active_suites():
            spec_deadline = self.state.deadline_at(sid)
            if spec_deadline and time.time() > spec_deadline + self.settings.lease_s + COMPLETION_GRACE_S:
                self.deadline_passed(sid)
                continue
            if (self.state.field(sid, "status") == "collecting" and self.state.field(sid, "collect_started")
                    and not self.state.lease_alive(sid, "collect", None)):
                self.collection_lost(sid)
                continue
            for row in self.state.assignments(sid):
                if (row["state"] == "running" and row.get("held_completion") is None
                        and not self.state.lease_alive(sid, row["id"], row["attempt"])):
                    self.lost(sid, row)
                    continue
                held = row.get("held_completion")
                if held is not None and time.time() - row.get("held_since", 0.0) > COMPLETION_GRACE_S:
                    log.warning("assignment %s: %d of its records never arrived", row["id"],
                                decode(held, Completion).reported - row.get("received", 0))
                    self._settle(decode(held, Completion))
            complete_at = self.state.field(sid, "complete_at")
            if complete_at and time.time() - float(complete_at) > COMPLETION_GRACE_S:
                self._maybe_finish(sid, force=True)
                continue
            cancel_at = self.state.field(sid, "cancel")
            if cancel_at and time.time() - float(cancel_at) > CANCEL_GRACE_S:
                status = self.state.field(sid, "status")
                if status == "running":
                    pending = self.state.all_pending(sid)
                    self._not_run(sid, pending, "cancel", 0, "", "", "suite canceled before this test ran")
                    self._maybe_finish(sid)
                elif status in ("submitted", "collecting"):
                    self._finish_without_run(self.state.spec(sid), None, "canceled", 2, "suite canceled")

    # --- finishing -----------------------------------------------------------------------

    def _not_run(self, sid: str, test_ids: list[str], assignment: str, attempt: int, worker: str, node: str,
                 why: str) -> None:
        records = [TestRecord(t, Outcome.NOT_RUN, phase="", message=why) for t in test_ids]
        # The coordinator's own verdict: not subject to ownership fencing.
        self.state.merge(sid, records, assignment=assignment, attempt=attempt, worker=worker, node=node,
                         fence=False)

    def _maybe_finish(self, sid: str, *, force: bool = False) -> None:
        """Finalize once every test has an outcome and every assignment has ended (or waited enough)."""
        total, done = self.state.total_and_done(sid)
        if done < total or self.state.field(sid, "status") != "running":
            return
        if not force and any(a["state"] not in TERMINAL for a in self.state.assignments(sid)):
            self.state.note_all_tests_final(sid)
            return
        spec = self.state.spec(sid)
        if spec.rerun_failures and not self.state.canceled(sid) and self._rerun_failures(spec):
            return  # failing tests run again; the suite finishes after them
        if not self.state.claim_finalize(sid):
            return
        counts = self.state.counts(sid)
        canceled = self.state.canceled(sid)
        past_deadline = bool(spec.deadline_s) and time.time() >= _deadline_at(spec) and (
            counts.get("not_run", 0) > 0 or any(a["state"] == "deadline" for a in self.state.assignments(sid)))
        if canceled:
            status, message = "canceled", "suite canceled"
        elif past_deadline:
            status, message = "deadline", f"suite deadline of {spec.deadline_s:g}s reached"
        else:
            status, message = "finished", ""
        collection = self.state.collection(sid)
        code = exit_code_for(counts, interrupted=status != "finished",
                             collected=len(collection.test_ids) if collection else total,
                             strict_flaky=spec.strict_flaky)
        self._finalize(spec, status, code, message)

    def _finish_without_run(self, spec: SuiteSpec, collection: Collection | None, status: str, code: int,
                            message: str, decided: tuple[TestRecord, ...] = ()) -> None:
        sid = spec.suite_id
        if not self.state.claim_finalize(sid):
            return
        if collection is not None:
            self.state.set_fields(sid, collection=encode(collection))
        self._finalize(spec, status, code, message, decided=decided, collection=collection)

    def _finalize(self, spec: SuiteSpec, status: str, code: int, message: str,
                  decided: tuple[TestRecord, ...] = (), collection: Collection | None = None) -> None:
        sid = spec.suite_id
        now = time.time()
        started = float(self.state.field(sid, "submitted_at") or now)
        counted = self.state.counted(sid)
        for d in decided:
            counted.setdefault(d.test_id, d)
        order = self.state.order(sid) or [d.test_id for d in decided]
        report = build_report(
            spec=spec, status=status, exit_code=code, message=message, started_at=started, finished_at=now,
            collection=collection or self.state.collection(sid), order=order, counted=counted,
            attempts=self.state.attempts(sid), assignments=self.state.assignments(sid),
            workers=self.state.workers(),
        )
        self.state.store_report(sid, json.dumps(report, ensure_ascii=False), status=status, exit_code=code,
                                finished_at=now, message=message)
        timed = {t: r.duration_s for t, r in counted.items() if r.outcome in _TIMED and r.phase != "collect"}
        overhead = assignment_overhead(self.state.assignments(sid), timed)
        if overhead is not None:
            timed[OVERHEAD_KEY] = overhead
        self.state.record_durations(spec.project, timed)
        log.info("suite %s %s: exit code %d", sid, status, code)
