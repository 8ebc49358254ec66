"""What the coordinator does at each step of a suite's life (Celery-free; state through SuiteState)."""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from coordinator.reporting import build_report
from coordinator.splitting import split
from coordinator.state import SuiteState
from farm import keys
from farm.config import Settings
from farm.errors import SuiteNotFound
from farm.model import Assignment, Collection, Completion, RecordBatch, SuiteSpec, TestRecord
from farm.nodeids import param_positions
from farm.outcomes import FAILURES, Outcome, exit_code_for, maxfail_reached
from farm.protocol import decode, encode
from farm.pytest_options import effective
from farm.states import ENDED_STATES, OUT_STATES, UNPLANNED_STATUSES, AttemptState, SuiteStatus

log = logging.getLogger("farm.coordinator")

#: Outcomes whose durations are recorded for the next split (a not_run test has no duration).
_TIMED = {Outcome.PASSED, Outcome.FAILED, Outcome.ERROR, Outcome.XFAILED, Outcome.XPASSED, Outcome.SKIPPED}
#: How long a canceled suite waits for its running assignments to report before it is closed.
CANCEL_GRACE_S = 15.0
#: How long a suite whose every test has an outcome waits for assignments' completions (they
#: follow the last record by milliseconds) before it is reported without them.
COMPLETION_GRACE_S = 5.0
#: The most attempts an assignment gets, however they ended (hand-backs included).
ATTEMPT_CAP = 10
#: A published attempt (or collection) that no worker took for this many lease periods, while
#: its pool's queue is empty, lost its message (fetched by a worker that died before it took
#: the lease, or lost in a broker crash): it is published again.
REPUBLISH_AFTER_LEASES = 3


#: The history field holding the median per-assignment overhead (not a node id: it has a NUL).
OVERHEAD_KEY = keys.HISTORY_OVERHEAD_FIELD


def assignment_overhead(assignments: list[dict[str, Any]], durations: dict[str, float]) -> float | None:
    """Median of (wall time - its tests' durations) over the assignments that ran to the end."""
    overheads = [
        max(0.0, a["wall_s"] - sum(durations.get(t, 0.0) for t in a["test_ids"]))
        for a in assignments if a.get("state") == AttemptState.DONE and "wall_s" in a
    ]
    return statistics.median(overheads) if overheads else None


def _first_error(output: str) -> str:
    """The line of a failed collection's output that says why (`No module named pytest`), if any."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "No module named" in line:
            return line[:300]
    return ""


def _deadline_at(spec: SuiteSpec) -> float:
    """The epoch time at which the suite's deadline falls (0: no deadline)."""
    return spec.submitted_at + spec.deadline_s if spec.deadline_s > 0 else 0.0


class Planner:
    """Drives suites: collection → assignments → merged records → report."""

    def __init__(self, state: SuiteState, settings: Settings,
                 publish_collect: Callable[[SuiteSpec], None],
                 publish_assignment: Callable[[str, Assignment], None],
                 queue_length: Callable[[str], int] = lambda pool: -1) -> None:
        self.state = state
        self.settings = settings
        self.publish_collect = publish_collect
        self.publish_assignment = publish_assignment
        # Messages waiting on a pool's queue (-1: unknown, and then nothing is published again).
        self.queue_length = queue_length
        self._positions: dict[str, dict[str, tuple[int, int]]] = {}  # suite -> farm.nodeids.param_positions
        self._positions_lock = threading.Lock()

    # --- publishing ----------------------------------------------------------------------

    def _budget(self, spec: SuiteSpec, expected_s: float) -> float:
        """An assignment's own deadline, from its tests' expected duration (0: none).

        Only under a suite deadline and with recorded durations: a multiple of what its tests
        took last time, never below a floor (a cold cache or a busy host is not a hang)."""
        if spec.deadline_s <= 0 or expected_s <= 0:
            return 0.0
        return max(self.settings.assignment_deadline_min_s, self.settings.assignment_deadline_factor * expected_s)

    def _publish(self, spec: SuiteSpec, row: dict[str, Any], durations: dict[str, float] | None = None) -> None:
        """Publish an attempt from its row, and note when (the sweeper watches unclaimed ones)."""
        expected = row.get("expected_s") or 0.0
        if not expected and durations:
            expected = sum(durations.get(t, 0.0) for t in row["test_ids"])
        index, count = self._param_positions(spec.suite_id, row["test_ids"])
        self.publish_assignment(spec.pool, Assignment(
            spec.suite_id, row["id"], row["attempt"], spec.bundle_digest, spec.pytest_args, tuple(row["test_ids"]),
            expected, test_timeout_s=spec.test_timeout_s, deadline_at=_deadline_at(spec),
            priority=row.get("priority", 0), budget_s=self._budget(spec, expected),
            avoid=tuple(row.get("avoid", ())), param_index=index, param_count=count))
        self.state.update_assignment(spec.suite_id, row["id"], row["attempt"], published_at=time.time())

    def _param_positions(self, sid: str, test_ids: list[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Assignment.param_index / param_count of these tests, from the suite's collection order
        (kept for the last few suites: it does not change once planned)."""
        positions = self._positions.get(sid)
        if positions is None:
            positions = param_positions(self.state.order(sid))
            with self._positions_lock:  # the coordinator's tasks run on several threads
                while len(self._positions) >= 8:
                    self._positions.pop(next(iter(self._positions)))
                self._positions[sid] = positions
        if not any(t in positions for t in test_ids):
            return (), ()
        pairs = [positions.get(t, (-1, 0)) for t in test_ids]
        return tuple(i for i, _ in pairs), tuple(n for _, n in pairs)

    # --- submitted → collecting ----------------------------------------------------------

    def submitted(self, suite_id: str) -> None:
        spec = self.state.spec(suite_id)
        if self.state.start_collecting(suite_id):
            self._publish_collect(spec)

    def _publish_collect(self, spec: SuiteSpec) -> None:
        self.publish_collect(spec)
        self.state.set_fields(spec.suite_id, collect_published=time.time())

    # --- collecting → running (or finished) ----------------------------------------------

    def collected(self, collection: Collection) -> None:
        sid = collection.suite_id
        spec = self.state.spec(sid)
        if self.state.canceled(sid):
            self._finish_without_run(spec, collection, SuiteStatus.CANCELED, 2, "suite canceled during collection")
            return
        errors = [d for d in collection.decided if d.outcome is Outcome.ERROR]
        # 3 and 4 are pytest's own failures. Any other code but 0, 2 and 5 is one too when the
        # session never reported (`python -m pytest` without pytest exits 1, a signal): exit 3.
        # (1 with a session: --continue-on-collection-errors, whose errors are decided records.)
        never_ran = collection.exit_code not in (0, 2, 5) and not collection.session.pytest
        if collection.exit_code in (3, 4) or never_ran or (collection.exit_code == 2 and not errors):
            code = collection.exit_code if collection.exit_code in (2, 3, 4) else 3
            message = f"pytest could not collect the suite (exit code {collection.exit_code})"
            why = _first_error(collection.output)
            self._finish_without_run(spec, collection, SuiteStatus.ERROR, code, f"{message}: {why}" if why else message)
            return
        if errors and collection.exit_code == 2:
            # As pytest: collection errors interrupt the session before any test runs.
            n = len(errors)
            message = f"Interrupted: {n} error{'s' if n != 1 else ''} during collection"
            self._finish_without_run(spec, collection, SuiteStatus.FINISHED, 2, message, decided=collection.decided)
            return
        test_ids = list(collection.test_ids)
        durations = self.state.durations(spec.project)
        overhead = durations.pop(OVERHEAD_KEY, None)
        slots = self.state.pool_slots(spec.pool) or 1
        planned = split(test_ids, slots=slots, dist=spec.dist, durations=durations,
                        per_slot=self.settings.assignments_per_slot, min_assignment_s=self.settings.min_assignment_s,
                        min_tests=self.settings.min_assignment_tests, overhead_s=overhead)
        rows = [{"id": f"{sid}-a{i:03d}", "attempt": 1, "state": AttemptState.QUEUED, "test_ids": list(p.test_ids),
                 "expected_s": p.expected_s, "worker": "", "node": "", "started_at": 0.0, "finished_at": 0.0,
                 "priority": i, "avoid": [], "published_at": 0.0, "planned_at": time.time()}
                for i, p in enumerate(planned)]
        # -x/--maxfail as the collecting session took them (the ini's addopts included): suite-wide.
        maxfail = effective(collection.session, spec.pytest_args).maxfail
        if not self.state.plan(collection, test_ids, rows, maxfail=maxfail):
            return  # a duplicate delivery of the collection: planned already
        if collection.decided:
            self.state.merge(sid, list(collection.decided), assignment="collection", attempt=1,
                             worker=collection.worker, node="collect")
            self._check_maxfail(sid)
        log.info("suite %s: %d tests in %d assignments over %d slots", sid, len(test_ids), len(planned), slots)
        for row in rows:
            self._publish(spec, row)
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
        if row["state"] == AttemptState.QUEUED:
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
            if any(result.deltas.get(o.value, 0) > 0 for o in FAILURES):
                self._check_maxfail(batch.suite_id)
            row = self.state.add_received(batch.suite_id, batch.assignment_id, batch.attempt, len(records)) or row
            held = row.get("held_completion")
            if held is not None and row.get("received", 0) >= decode(held, Completion).reported:
                self._settle(decode(held, Completion))  # the records it was waiting for are in
            elif result.newly_final:
                self._maybe_finish(batch.suite_id)

    def _check_maxfail(self, sid: str) -> None:
        """At the suite's N-th failure (-x/--maxfail=N; errors, timeouts and crashes count), flag it
        stopped: workers stop after their current test, and nothing more runs."""
        maxfail = self.state.maxfail(sid)
        if maxfail and maxfail_reached(self.state.counts(sid), maxfail):
            reason = f"stopped after {maxfail} failures"  # pytest's words, whatever the number
            if self.state.request_stop(sid, reason):
                log.info("suite %s: %s (-x/--maxfail): stopping its assignments", sid, reason)

    def completed(self, c: Completion) -> None:
        """An attempt ended. Held until the records it says it sent have arrived (threads reorder)."""
        held = self.state.hold_completion(c.suite_id, c.assignment_id, c.attempt, encode(c), c.reported)
        if held is None:
            log.warning("completion for unknown attempt %s#%d dropped", c.assignment_id, c.attempt)
        elif not held:
            self._settle(c)

    def _settle(self, c: Completion, *, records_lost: int = 0) -> None:
        """Record how an attempt ended; its tests still without an outcome did not run.

        Unless the attempt handed them back (it stopped early), or records it sent were lost on
        the way (`records_lost`, a broker restart): then they are queued again."""
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
        lost_on_the_way = records_lost and c.state not in (AttemptState.CANCELED, AttemptState.DEADLINE)
        if pending and (c.state == AttemptState.HANDBACK or lost_on_the_way):
            why = (c.message or "handed back") if c.state == AttemptState.HANDBACK else \
                f"{records_lost} records of attempt {c.attempt} never arrived"
            # A failed environment (a VM that panicked or would not boot): preferably elsewhere.
            self._run_again(c.suite_id, row, why, state=AttemptState.HANDBACK,
                            avoid=c.worker if c.infrastructure else "")
            return
        if pending:
            why = c.message.splitlines()[0] if c.message else "the runner ended before running this test"
            if c.state == AttemptState.DONE:
                why = "the runner ended before running this test"
            if c.state == AttemptState.DEADLINE:
                why = "not run: the suite deadline came first"
            self._not_run(c.suite_id, pending, c.assignment_id, c.attempt, c.worker, c.node, why)
        self._maybe_finish(c.suite_id)

    def lost(self, suite_id: str, row: dict[str, Any]) -> None:
        """An attempt's worker stopped renewing its lease: run its unfinished tests again, or give up."""
        why = (f"attempt {row['attempt']} lost: {row.get('worker') or 'its worker'} stopped renewing its lease "
               f"for {self.settings.lease_s:g}s")
        self._run_again(suite_id, row, why, state=AttemptState.LOST)

    def _run_again(self, suite_id: str, row: dict[str, Any], why: str, *, state: str, avoid: str = "") -> None:
        """Move an attempt's unfinished tests to a new attempt and publish it, if it may still run.

        A lost attempt counts against max_attempts; one handed back (stopped early, through no
        fault of its tests) does not, up to ATTEMPT_CAP attempts in all."""
        spec = self.state.spec(suite_id)
        moved = self.state.requeue(suite_id, row, why, state=state, avoid=avoid)
        log.warning("suite %s: %s; %d tests run again", suite_id, why.splitlines()[0] if why else "", len(moved))
        if not moved:
            self._maybe_finish(suite_id)
            return
        attempt = row["attempt"] + 1
        deadline = _deadline_at(spec)
        durations = self.state.durations(spec.project)
        expected = sum(durations.get(t, 0.0) for t in moved)
        too_late = bool(deadline) and time.time() + expected >= deadline
        rows = [r for r in self.state.assignments(suite_id) if r["id"] == row["id"]]
        losses = sum(1 for r in rows if r["state"] == AttemptState.LOST)
        stopped = self.state.stop_reason(suite_id)
        if losses >= self.settings.max_attempts or attempt > ATTEMPT_CAP or self.state.canceled(suite_id) \
                or too_late or stopped:
            # Retries never start work that cannot finish before the suite deadline.
            reason = "suite canceled" if self.state.canceled(suite_id) else stopped if stopped else \
                "not run: no time left before the suite deadline to run it again" if too_late else \
                f"not run: its assignment was lost {losses} times (workers died)" \
                if losses >= self.settings.max_attempts else \
                f"not run: its assignment was stopped {attempt - 1} times"
            self._not_run(suite_id, moved, row["id"], attempt, "", "", reason)
            # A suite stopped at -x/--maxfail: the attempt is `stopped` (as its runners' are), not failed.
            self.state.update_assignment(suite_id, row["id"], attempt,
                                         state=AttemptState.STOPPED if stopped else AttemptState.FAILED, message=reason)
            self._maybe_finish(suite_id)
            return
        new = self.state.assignment(suite_id, row["id"], attempt)
        if new is not None:
            self._publish(spec, new, durations)

    def cancel(self, suite_id: str) -> None:
        """Flag the suite canceled; one that no worker is collecting yet ends now. A collection
        under way gets CANCEL_GRACE_S to report (the sweeper ends the suite after that)."""
        self.state.request_cancel(suite_id)
        status = self.state.field(suite_id, "status")
        claimed = self.state.field(suite_id, "collect_started")
        if status == SuiteStatus.SUBMITTED or (status == SuiteStatus.COLLECTING and not claimed):
            spec = self.state.spec(suite_id)
            self._finish_without_run(spec, None, SuiteStatus.CANCELED, 2, "suite canceled before collection")

    def collection_lost(self, suite_id: str) -> None:
        """The worker collecting the suite stopped renewing its lease: collect again, or give up."""
        spec = self.state.spec(suite_id)
        tries = self.state.collection_retry(suite_id)
        log.warning("suite %s: collection lost (try %d)", suite_id, tries)
        if tries >= self.settings.max_attempts:
            message = f"the collection was lost {tries} times (workers died while collecting)"
            self._finish_without_run(spec, None, SuiteStatus.ERROR, 3, message)
            return
        self._publish_collect(spec)

    def _rerun_failures(self, spec: SuiteSpec) -> bool:
        """Run the suite's failing tests again (--rerun-failures), if any may be; True if started.

        Preferably on other workers than those where they failed (a preference: any worker takes
        them when no other is alive)."""
        tests = self.state.failing_for_rerun(spec.suite_id, spec.rerun_failures)
        avoid = sorted(set(self.state.last_workers(spec.suite_id, tests).values()))
        return self._run_tests_again(spec, [(tests, avoid)], "r", crash_retry=False)

    def _retry_crashes(self, spec: SuiteSpec) -> bool:
        """Run each crashed test once more, on another worker than the one it crashed on (one
        assignment per such worker); True if started.

        A test that crashes there too crashes its runners, whatever the worker: it stays
        `crashed`. One that does not was let down by its first worker (the report says which)."""
        tests = self.state.crashed_for_retry(spec.suite_id)
        by_worker: dict[str, list[str]] = {}
        where = self.state.last_workers(spec.suite_id, tests)
        for test_id in tests:
            by_worker.setdefault(where.get(test_id, ""), []).append(test_id)
        groups = [(ids, [w] if w else []) for w, ids in sorted(by_worker.items())]
        return self._run_tests_again(spec, groups, "c", crash_retry=True)

    def _run_tests_again(self, spec: SuiteSpec, groups: list[tuple[list[str], list[str]]], prefix: str, *,
                         crash_retry: bool) -> bool:
        """Move finished tests to new assignments SUITE-<prefix>NN, one per (tests, workers to
        avoid) group; True if any was published."""
        sid = spec.suite_id
        deadline = _deadline_at(spec)
        if deadline and time.time() >= deadline:
            return False
        round_ = len({a["id"] for a in self.state.assignments(sid) if a["id"].startswith(f"{sid}-{prefix}")})
        durations = self.state.durations(spec.project)
        started = False
        for tests, avoid in groups:
            if not tests:
                continue
            round_ += 1
            aid = f"{sid}-{prefix}{round_:02d}"
            row = {"id": aid, "attempt": 1, "state": AttemptState.QUEUED, "test_ids": tests, "expected_s": 0.0,
                   "worker": "", "node": "", "started_at": 0.0, "finished_at": 0.0, "priority": 0, "avoid": avoid,
                   "published_at": 0.0, "planned_at": time.time()}
            moved = self.state.start_rerun(sid, row, tests, crash_retry=crash_retry)
            if not moved:
                continue
            what = "crashed tests once more" if crash_retry else "failing tests again"
            log.info("suite %s: running %d %s (%s), avoiding %s", sid, len(moved), what, aid,
                     ", ".join(avoid) or "-")
            self._publish(spec, {**row, "test_ids": moved}, durations)
            started = True
        return started

    def deadline_passed(self, suite_id: str) -> None:
        """Past the deadline (and the grace workers get to report): what did not run, did not run."""
        status = self.state.field(suite_id, "status")
        spec = self.state.spec(suite_id)
        if status in UNPLANNED_STATUSES:
            self._finish_without_run(spec, None, SuiteStatus.DEADLINE, 2,
                                     "suite deadline reached before collection ended")
        elif status == SuiteStatus.RUNNING:
            self._not_run(suite_id, self.state.all_pending(suite_id), "deadline", 0, "", "",
                          "not run: the suite deadline came first")
            self._maybe_finish(suite_id, force=True)

    def sweep(self) -> None:
        """Periodic: requeue lost attempts, settle late completions, close suites in time."""
        for sid in self.state.submitted_before(time.time() - REPUBLISH_AFTER_LEASES * self.settings.lease_s):
            log.warning("suite %s: submitted but never taken up (its message was lost); taking it up", sid)
            try:
                self.submitted(sid)
            except SuiteNotFound:  # expired, or never written whole
                self.state.forget_submitted(sid)
        for sid in self.state.active_suites():
            spec = self.state.spec(sid)
            spec_deadline = _deadline_at(spec)
            if spec_deadline and time.time() > spec_deadline + self.settings.lease_s + COMPLETION_GRACE_S:
                self.deadline_passed(sid)
                continue
            if self.state.field(sid, "status") == SuiteStatus.COLLECTING:
                if not self._cancel_due(sid):  # a canceled suite is not collected again
                    self._watch_collection(spec)
                continue
            rows = self.state.assignments(sid)
            watched = [r for r in rows if r.get("held_completion") is None and r["state"] in OUT_STATES]
            holders = self.state.lease_holders(sid, watched)
            for row in rows:
                held = row.get("held_completion")
                if held is not None:
                    if time.time() - row.get("held_since", 0.0) > COMPLETION_GRACE_S:
                        completion = decode(held, Completion)
                        missing = max(1, completion.reported - row.get("received", 0))
                        log.warning("assignment %s: %d of its records never arrived", row["id"], missing)
                        self._settle(completion, records_lost=missing)
                elif row["state"] == AttemptState.QUEUED:
                    self._watch_queued(spec, row, holders.get(keys.attempt_key(row["id"], row["attempt"])))
                elif (row["state"] == AttemptState.RUNNING
                      and keys.attempt_key(row["id"], row["attempt"]) not in holders):
                    self.lost(sid, row)
            complete_at = self.state.field(sid, "complete_at")
            if complete_at and time.time() - float(complete_at) > COMPLETION_GRACE_S:
                self._maybe_finish(sid, force=True)
                continue
            self._maybe_finish(sid)  # in case the thread that could have finished it lost a race
            self._cancel_due(sid)

    def _cancel_due(self, sid: str) -> bool:
        """End a canceled suite whose grace is over, whatever its status; True if it was canceled.

        A suite not collected yet ends at once (nothing runs that could report); one collecting
        or running gets CANCEL_GRACE_S for its collection or assignments to report."""
        cancel_at = self.state.field(sid, "cancel")
        if not cancel_at:
            return False
        status = self.state.field(sid, "status")
        claimed = self.state.field(sid, "collect_started")
        unclaimed = status == SuiteStatus.SUBMITTED or (status == SuiteStatus.COLLECTING and not claimed)
        if not unclaimed and time.time() - float(cancel_at) <= CANCEL_GRACE_S:
            return True
        if status == SuiteStatus.RUNNING:
            pending = self.state.all_pending(sid)
            self._not_run(sid, pending, "cancel", 0, "", "", "suite canceled before this test ran")
            self._maybe_finish(sid)
        elif status in UNPLANNED_STATUSES:
            self._finish_without_run(self.state.spec(sid), None, SuiteStatus.CANCELED, 2, "suite canceled")
        return True

    def _watch_collection(self, spec: SuiteSpec) -> None:
        """A started collection whose lease lapsed is lost; one never taken may have lost its message."""
        sid = spec.suite_id
        if self.state.field(sid, "collect_started"):
            if not self.state.lease_alive(sid, "collect", None):
                self.collection_lost(sid)
            return
        # Published (or, if publishing failed, meant to be) this long ago.
        since = float(self.state.field(sid, "collect_published") or self.state.field(sid, "collecting_since") or 0)
        if since and self._unclaimed_too_long(since, spec.pool) and not self.state.lease_alive(sid, "collect", None):
            log.warning("suite %s: no worker took its collection and the queue is empty; publishing it again", sid)
            self._publish_collect(spec)

    def _watch_queued(self, spec: SuiteSpec, row: dict[str, Any], holder: str | None) -> None:
        """A queued attempt whose lease a worker holds (`holder`) is running (its first batch may be
        late); one that nobody took while its queue emptied lost its message: publish it again."""
        sid = spec.suite_id
        if holder is not None:
            self.state.mark_running(sid, row["id"], row["attempt"], worker=holder, started_at=time.time())
            return
        published = row.get("published_at") or 0.0
        if not published:
            # Being published right now, or its publishing failed (the broker was away): after
            # a while, publish it.
            if time.time() - (row.get("planned_at") or time.time()) > REPUBLISH_AFTER_LEASES * self.settings.lease_s:
                log.warning("suite %s: %s#%d was planned but never published; publishing it",
                            sid, row["id"], row["attempt"])
                self._publish(spec, row, self.state.durations(spec.project))
            return
        if self._unclaimed_too_long(published, spec.pool):
            log.warning("suite %s: no worker took %s#%d and the queue is empty; publishing it again",
                        sid, row["id"], row["attempt"])
            self._publish(spec, row, self.state.durations(spec.project))

    def _unclaimed_too_long(self, published_at: float, pool: str) -> bool:
        return (time.time() - published_at > REPUBLISH_AFTER_LEASES * self.settings.lease_s
                and self.queue_length(pool) == 0)

    def reconcile(self) -> int:
        """On start: finish what a coordinator that died left half done; how many suites it checked.

        Messages it had fetched come back by themselves (the coordinator's short visibility
        timeout), and are idempotent. What no message will redo: a collection or an attempt
        recorded but never published, and a suite whose finalization was claimed but not stored.
        """
        suites = self.state.active_suites()
        for sid in suites:
            try:
                spec = self.state.spec(sid)
            except SuiteNotFound:
                continue
            if self.state.field(sid, "finalized"):
                self.state.release_finalize(sid)
            status = self.state.field(sid, "status")
            if status == SuiteStatus.COLLECTING and not self.state.field(sid, "collect_published"):
                self._publish_collect(spec)
            elif status == SuiteStatus.RUNNING:
                collection = self.state.collection(sid)
                if collection is not None and collection.decided:  # merged after planning: maybe not yet
                    self.state.merge(sid, list(collection.decided), assignment="collection", attempt=1,
                                     worker=collection.worker, node="collect")
                durations = self.state.durations(spec.project)
                for row in self.state.assignments(sid):
                    if row["state"] == AttemptState.QUEUED and not row.get("published_at"):
                        self._publish(spec, row, durations)
                self._maybe_finish(sid)
        if suites:
            log.warning("reconciled %d unfinished suites left by an earlier coordinator", len(suites))
        return len(suites)

    # --- finishing -----------------------------------------------------------------------

    def _not_run(self, sid: str, test_ids: list[str], assignment: str, attempt: int, worker: str, node: str,
                 why: str) -> None:
        records = [TestRecord(t, Outcome.NOT_RUN, phase="", message=why) for t in test_ids]
        # The coordinator's own verdict: not subject to ownership fencing.
        self.state.merge(sid, records, assignment=assignment, attempt=attempt, worker=worker, node=node,
                         fence=False)

    def _maybe_finish(self, sid: str, *, force: bool = False) -> None:
        """Finalize once every test has an outcome and every assignment has ended (or waited enough).

        Crash retries and reruns are decided under the finalize claim, so that one thread
        starting them and another finalizing can never interleave (the second would report tests
        the first just moved back to pending); whoever holds the claim releases it when it did
        not finalize, and the sweeper calls this every second, so a suite is never left behind.
        """
        if not self._complete(sid, force=force):
            return
        if not self.state.claim_finalize(sid):
            return
        spec = self.state.spec(sid)
        # A suite stopped at its -x/--maxfail runs nothing again (neither crash retries nor reruns).
        halted = self.state.canceled(sid) or bool(self.state.stop_reason(sid))
        if not self._complete(sid, force=force) or (not halted and (
                self._retry_crashes(spec) or (spec.rerun_failures and self._rerun_failures(spec)))):
            self.state.release_finalize(sid)  # moved on meanwhile, or tests run again: not yet
            return
        total, _ = self.state.total_and_done(sid)
        counts = self.state.counts(sid)
        canceled = self.state.canceled(sid)
        past_deadline = bool(spec.deadline_s) and time.time() >= _deadline_at(spec) and (
            counts.get("not_run", 0) > 0
            or any(a["state"] == AttemptState.DEADLINE for a in self.state.assignments(sid)))
        if canceled:
            status, message = SuiteStatus.CANCELED, "suite canceled"
        elif past_deadline:
            status, message = SuiteStatus.DEADLINE, f"suite deadline of {spec.deadline_s:g}s reached"
        else:
            status, message = SuiteStatus.FINISHED, ""
        collection = self.state.collection(sid)
        code = exit_code_for(counts, interrupted=status != SuiteStatus.FINISHED,
                             collected=len(collection.test_ids) if collection else total,
                             strict_flaky=spec.strict_flaky)
        self._finalize(spec, status, code, message)

    def _complete(self, sid: str, *, force: bool) -> bool:
        """Every test has an outcome and (unless forced) every assignment has ended."""
        total, done = self.state.total_and_done(sid)
        if done < total or self.state.field(sid, "status") != SuiteStatus.RUNNING:
            return False
        if not force and any(a["state"] not in ENDED_STATES for a in self.state.assignments(sid)):
            self.state.note_all_tests_final(sid)
            return False
        return True

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
            workers=self.state.workers(), stopped=self.state.stop_reason(sid),
        )
        # History first: whoever sees the report (the embedded farm saving its history, the next
        # submission) sees this suite's durations too.
        timed = {t: r.duration_s for t, r in counted.items() if r.outcome in _TIMED and r.phase != "collect"}
        overhead = assignment_overhead(self.state.assignments(sid), timed)
        if overhead is not None:
            timed[OVERHEAD_KEY] = overhead
        self.state.record_durations(spec.project, timed)
        self.state.store_report(sid, json.dumps(report, ensure_ascii=False), status=status, exit_code=code,
                                finished_at=now, message=message)
        log.info("suite %s %s: exit code %d", sid, status, code)
