"""The driver: reads a suite from the store, asks the machine, carries out its decisions (Celery-free).

Every rule lives in `coordinator.machine` and `coordinator.deadlines` (pure); this module is the
only coordinator code that calls the store, the publishers and the clock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from itertools import repeat
from operator import itemgetter

from coordinator import advancing, balancing, deadlines, machine, quality, transitions
from coordinator.aggregate import Merge
from coordinator.finishing import finished
from coordinator.history_memo import DurationsMemo
from coordinator.store import SuiteStore
from coordinator.sweep import reconcile, sweep
from farm import events
from farm.attempts import Attempt
from farm.config import Settings
from farm.model import Assignment, Collection, Completion, RecordBatch, Split, SuiteSpec, TestRecord
from farm.nodeids import param_positions
from farm.outcomes import FAILURES, Outcome, maxfail_reached
from farm.protocol import decode, encode
from farm.pytest_options import effective
from farm.resources import is_memory_limit
from farm.states import AttemptState, SuiteStatus

log = logging.getLogger("farm.coordinator")


class Planner:
    """Drives suites: collection → attempts → merged records → report."""

    def __init__(self, state: SuiteStore, settings: Settings,
                 publish_collect: Callable[[SuiteSpec], None],
                 publish_assignment: Callable[[str, Assignment], None],
                 queue_length: Callable[[str], int] = lambda pool: -1,
                 clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.settings = settings
        self.publish_collect = publish_collect
        self.publish_assignment = publish_assignment
        # Messages waiting on a pool's queue (-1: unknown, and then nothing is published again).
        self.queue_length = queue_length
        self.clock = clock
        self._positions: dict[str, dict[str, tuple[int, int]]] = {}  # suite -> farm.nodeids.param_positions
        self._positions_lock = threading.Lock()
        # Attempts ("suite NUL ASSIGNMENT#N") seen started with their node: a batch of one of them
        # does not read the attempt (its test ids) unless it sends a record of a test it does not own.
        self._started: dict[str, None] = {}
        self._started_lock = threading.Lock()
        self._durations = DurationsMemo(state.durations)

    def durations(self, spec: SuiteSpec) -> Mapping[str, float]:
        """The suite's recorded durations (read-only), read once per suite (coordinator.history_memo)."""
        return self._durations.get(spec.suite_id, spec.project)

    # --- publishing ----------------------------------------------------------------------

    def publish(self, spec: SuiteSpec, a: Attempt, durations: Mapping[str, float] | None = None, *,
                start_after: float = 0.0, stage: str | None = None) -> None:
        """Publish an attempt, and note when (the sweep watches unclaimed ones); its runner starts
        no sooner than `start_after` (an epoch time; 0: at once). `stage`: the name of the stage it
        runs in (None: the suite's current one, read from the store)."""
        if stage is None:
            stage = advancing.current_stage(self, spec)
        expected = a.expected_s
        if not expected and durations:
            expected = sum(durations.get(t, 0.0) for t in a.test_ids)
        index, count = self._param_positions(spec.suite_id, a.test_ids)
        self.publish_assignment(spec.pool, Assignment(
            spec.suite_id, a.assignment_id, a.number, spec.bundle_digest, spec.pytest_args, a.test_ids,
            expected, test_timeout_s=spec.test_timeout_s, deadline_at=deadlines.deadline_at(spec),
            priority=a.priority, budget_s=deadlines.budget(spec, expected, self.settings),
            avoid=a.avoid, param_index=index, param_count=count, start_after=start_after,
            max_memory_bytes=spec.max_memory_bytes, env=spec.env, stage=stage))
        now = self.clock()
        self.state.change_attempt(spec.suite_id, a.assignment_id, a.number, lambda x: x.but(published_at=now))

    def _param_positions(self, sid: str, test_ids: tuple[str, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Assignment.param_index / param_count of these tests, from the suite's collection order
        (kept for the last few suites: it does not change once planned)."""
        positions = self._positions.get(sid)
        if positions is None:
            positions = self._remember_positions(sid, self.state.order(sid))
        if positions.keys().isdisjoint(test_ids):
            return (), ()
        pairs = list(map(positions.get, test_ids, repeat((-1, 0))))
        return tuple(map(itemgetter(0), pairs)), tuple(map(itemgetter(1), pairs))

    def _remember_positions(self, sid: str, order: list[str]) -> dict[str, tuple[int, int]]:
        """`param_positions` of the suite's order, kept for the last few suites."""
        positions = param_positions(order)
        with self._positions_lock:  # the coordinator's tasks run on several threads
            while len(self._positions) >= 8:
                self._positions.pop(next(iter(self._positions)))
            self._positions[sid] = positions
        return positions

    def publish_collection(self, spec: SuiteSpec) -> None:
        self.publish_collect(spec)
        self.state.set_fields(spec.suite_id, collect_published=self.clock())

    # --- events --------------------------------------------------------------------------

    def submitted(self, suite_id: str) -> None:
        spec = self.state.spec(suite_id)
        if self.state.start_collecting(suite_id, self.clock()):
            self.publish_collection(spec)

    def collected(self, collection: Collection) -> None:
        sid = collection.suite_id
        spec = self.state.spec(sid)
        finish = machine.collected(collection, canceled=self.state.canceled(sid))
        if finish is not None:
            self.finish_unplanned(spec, finish, collection)
            return
        test_ids = list(collection.test_ids)
        slots = self.state.pool_slots(spec.pool) or 1
        now = self.clock()
        plan = advancing.first_plan(spec, collection, now)
        first = test_ids if plan is None else list(plan.tests[plan.current]) if plan.current < len(plan.tests) else []
        attempts = machine.plan(spec, first, durations=self.state.durations(spec.project), slots=slots,
                                settings=self.settings, now=now)
        # -x/--maxfail as the collecting session took them (the ini's addopts included): suite-wide.
        maxfail = effective(collection.session, spec.pytest_args).maxfail
        # Chosen once, from the history as it is now, and kept with the suite (before the plan: a
        # duplicate delivery of the collection chooses the same again).
        quality.choose_quarantine(self.state, spec, machine.collection_order(collection, test_ids), self.settings)
        if not self.state.plan(collection, test_ids, attempts, now=now, maxfail=maxfail, stages=plan):
            return  # a duplicate delivery of the collection: planned already
        if collection.decided:
            self.state.merge(sid, list(collection.decided), assignment="collection", attempt=1,
                             worker=collection.worker, node="collect")
            self._check_maxfail(sid)
        log.info("suite %s: %d tests in %d assignments over %d slots", sid, len(test_ids), len(attempts), slots)
        # The order just stored, from memory: reading a million ids back cost as much as planning them.
        self._remember_positions(sid, machine.collection_order(collection, test_ids))
        stage = "" if plan is None or plan.current >= len(spec.stages) else spec.stages[plan.current].name
        if plan is not None:
            log.info("suite %s: stage %s starts: %d tests", sid, stage or "-", len(first))
        for a, after in zip(attempts, machine.start_after(attempts, now), strict=True):
            self.publish(spec, a, start_after=after, stage=stage)
        self.finish_if_complete(sid)

    def records(self, batch: RecordBatch) -> None:
        sid, name = batch.suite_id, f"{batch.suite_id}\0{batch.assignment_id}#{batch.attempt}"
        if name in self._started:
            # Known and started with its node: nothing to change, and its test ids are read only
            # if the batch has a record of a test it does not own (`aggregate.not_given`).
            if not batch.records:
                return
            result = self.state.merge(sid, list(batch.records), assignment=batch.assignment_id, attempt=batch.attempt,
                                      worker=batch.worker, node=batch.node, count_received=True,
                                      given=lambda: self._given(batch), batch=batch.seq)
            if result.dropped:
                log.warning("assignment %s sent %d records for tests it was not given; dropped",
                            batch.assignment_id, result.dropped)
            self._merged(batch, result)
            return
        a = self.state.attempt(sid, batch.assignment_id, batch.attempt)
        if a is None:  # the suite's status is read only then: one read less a batch
            if self.state.field(sid, "status") is None:
                log.warning("records for unknown suite %s dropped", sid)
            else:
                log.warning("records for unknown attempt %s#%d dropped", batch.assignment_id, batch.attempt)
            return
        if a.state == AttemptState.QUEUED or (a.state == AttemptState.RUNNING and not a.node and batch.node):
            # Queued, or claimed by the sweep (it saw the lease before this first batch came): the
            # attempt learns its node now, and the log says `started` (once: the node is then known).
            now = self.clock()
            a = self.state.change_attempt(sid, a.assignment_id, a.number, lambda x: transitions.started(
                x, worker=batch.worker, node=batch.node, started_at=now)) or a
        if a.state != AttemptState.QUEUED and a.node:
            with self._started_lock:
                if len(self._started) >= 4096:
                    self._started.pop(next(iter(self._started)))
                self._started[name] = None
        allowed = set(a.test_ids)
        records = [r for r in batch.records if r.test_id in allowed]
        if len(records) != len(batch.records):
            log.warning("assignment %s sent %d records for tests it was not given; dropped",
                        batch.assignment_id, len(batch.records) - len(records))
        if not records:
            return
        self._merged(batch, self.state.merge(sid, records, assignment=batch.assignment_id, attempt=batch.attempt,
                                             worker=batch.worker, node=batch.node, count_received=True,
                                             batch=batch.seq))

    def _given(self, batch: RecordBatch) -> frozenset[str]:
        """The test ids the batch's attempt was given (none if it is gone)."""
        a = self.state.attempt(batch.suite_id, batch.assignment_id, batch.attempt)
        return frozenset(a.test_ids) if a is not None else frozenset()

    def _merged(self, batch: RecordBatch, result: Merge) -> None:
        """After a batch's merge: -x, the completion held for its records, the suite's finish."""
        if result.repeated:  # the held completion may still be ready (its taker failed): checked below
            log.info("attempt %s#%d: batch %d delivered again; merged once, not counted again",
                     batch.assignment_id, batch.attempt, batch.seq)
        if result.fenced:
            log.warning("attempt %s#%d: %d late records fenced (their tests run again elsewhere)",
                        batch.assignment_id, batch.attempt, result.fenced)
        if any(result.deltas.get(o.value, 0) > 0 for o in FAILURES):
            self._check_maxfail(batch.suite_id)
        # The merge counted these records (`received`) in its own atomic step: the attempt itself
        # is neither read again nor rewritten. A completion held for them ends it now, taken by
        # exactly one of the batches that see it ready (or by the sweep that gave up on it). The
        # stores read the held completion and the suite's counts in the merge's own step
        # (`Merge.after`): no more round trips for a batch that ends nothing.
        after = result.after
        held = self.state.held_completion(batch.suite_id, batch.assignment_id, batch.attempt) if after is None \
            else after.held
        if held is not None and not transitions.still_missing(held[1], decode(held[0], Completion).reported) \
                and self.state.take_held(batch.suite_id, batch.assignment_id, batch.attempt, held[0],
                                         now=self.clock()):
            self.end_attempt(decode(held[0], Completion))  # the records it was waiting for are in
        elif result.newly_final and (after is None or after.done >= after.total):
            self.finish_if_complete(batch.suite_id)

    def _check_maxfail(self, sid: str) -> None:
        """At the suite's N-th failure (-x/--maxfail=N; errors, timeouts and crashes count), flag it
        stopped: workers stop after their current test, and nothing more runs."""
        maxfail = self.state.maxfail(sid)
        # Quarantined tests' failures do not count (`quality.counts_without_quarantined`).
        if maxfail and maxfail_reached(quality.counts_without_quarantined(self.state, sid, self.state.counts(sid)),
                                       maxfail):
            reason = f"stopped after {maxfail} failures"  # pytest's words, whatever the number
            if self.state.request_stop(sid, reason):
                log.info("suite %s: %s (-x/--maxfail): stopping its assignments", sid, reason)

    def completed(self, c: Completion) -> None:
        """An attempt's completion came: it ends once the records it says it sent have arrived
        (threads reorder messages); until then it waits on its attempt."""
        now, packed = self.clock(), encode(c)
        a = self.state.change_attempt(c.suite_id, c.assignment_id, c.attempt,
                                      lambda x: transitions.completion_arrived(x, packed, c.reported, now))
        if a is None:
            log.warning("completion for unknown attempt %s#%d dropped", c.assignment_id, c.attempt)
        elif not transitions.waits(a, c.reported):
            self.end_attempt(c)

    def end_attempt(self, c: Completion, *, records_lost: int = 0) -> None:
        """Record how an attempt ended; its tests still without an outcome did not run, or run
        again (`machine.attempt_ended`)."""
        balancing.completion_splits(self, c)  # the tails it split off move on, if not moved yet
        a = self.state.change_attempt(c.suite_id, c.assignment_id, c.attempt, lambda x: transitions.ended(x, c))
        if a is None:
            return
        self.state.mark_ended(c.suite_id, c.assignment_id, c.attempt)
        pending = self.state.pending_in(c.suite_id, list(a.test_ids), a.key)
        decision = machine.attempt_ended(c, pending, records_lost)
        if isinstance(decision, machine.RunAgain):
            self._run_again(c.suite_id, a, decision)
            return
        if isinstance(decision, machine.NotRun):
            self.mark_not_run(c.suite_id, pending, c.assignment_id, c.attempt, c.worker, c.node, decision.why)
        self.balance(c.suite_id)
        self.finish_if_complete(c.suite_id)

    # --- run-time balancing (coordinator/balance.py decides, coordinator/balancing.py carries it out) ---

    def split(self, s: Split) -> None:
        """A runner confirmed a split: it will run none of `s.test_ids`; they run as a new assignment."""
        balancing.split_tail(self, s.suite_id, s.assignment_id, s.attempt, s.seq, s.test_ids)

    def balance(self, sid: str) -> None:
        """Slots the suite leaves idle: ask the running attempts with the most time left to split."""
        balancing.balance(self, sid)

    def lost(self, suite_id: str, a: Attempt) -> None:
        """An attempt's worker stopped renewing its lease: run its unfinished tests again, or give up."""
        self._run_again(suite_id, a, machine.lost(a, self.settings.lease_s))

    def _run_again(self, suite_id: str, a: Attempt, again: machine.RunAgain) -> None:
        """Move an attempt's unfinished tests to its next attempt and publish it, if it may still run."""
        spec = self.state.spec(suite_id)
        moved = self.state.requeue(suite_id, a, again.why, now=self.clock(), state=again.state, avoid=again.avoid,
                                   from_state=again.from_state)
        log.warning("suite %s: %s; %d tests run again", suite_id, again.why.splitlines()[0] if again.why else "",
                    len(moved))
        new = self.state.attempt(suite_id, a.assignment_id, a.number + 1) if moved else None
        if new is None:
            self.finish_if_complete(suite_id)
            return
        durations = self.durations(spec)
        expected = sum(durations.get(t, 0.0) for t in moved)
        stop = self.state.stop_reason(suite_id)
        reason = machine.give_up(new, self.state.attempts(suite_id), settings=self.settings,
                                 canceled=self.state.canceled(suite_id), stop=stop,
                                 too_late=deadlines.too_late_to_retry(spec, self.clock(), expected))
        if not reason:
            self.publish(spec, new, durations)
            return
        self.mark_not_run(suite_id, moved, new.assignment_id, new.number, "", "", reason)
        # A suite stopped at -x/--maxfail: the attempt is `stopped` (as its runners' are), not failed.
        state = AttemptState.STOPPED if stop else AttemptState.FAILED
        self.state.change_attempt(suite_id, new.assignment_id, new.number,
                                  lambda x: transitions.given_up(x, state, reason))
        self.finish_if_complete(suite_id)

    def cancel(self, suite_id: str) -> None:
        """The submitter's cancel message: it flagged the suite canceled first (farm.client), and a
        suite no worker is collecting yet ends now; a collection under way gets CANCEL_GRACE_S to
        report (the sweep ends the suite after that). The message is not signed: one for a suite
        without the flag (forged) changes nothing."""
        if not self.state.canceled(suite_id):
            log.warning("suite %s: a cancel message for a suite nobody canceled dropped", suite_id)
            return
        if self.state.view(suite_id).unclaimed:
            self.finish_unplanned(self.state.spec(suite_id),
                                   machine.Finish(SuiteStatus.CANCELED, 2, "suite canceled before collection"))

    def collection_lost(self, suite_id: str) -> None:
        """The worker collecting the suite stopped renewing its lease: collect again, or give up."""
        spec = self.state.spec(suite_id)
        tries = self.state.collection_retry(suite_id)
        log.warning("suite %s: collection lost (try %d)", suite_id, tries)
        finish = machine.collection_lost(tries, self.settings)
        if finish is not None:
            self.finish_unplanned(spec, finish)
        else:
            self.publish_collection(spec)

    def deadline_passed(self, suite_id: str) -> None:
        """Past the deadline (and the grace workers get to report): what did not run, did not run."""
        status = self.state.view(suite_id).status
        finish = machine.unplanned_end(status, deadline=True)
        if finish is not None:
            self.finish_unplanned(self.state.spec(suite_id), finish)
        elif status == SuiteStatus.RUNNING:
            pending = self.state.all_pending(suite_id)
            self.mark_not_run(suite_id, pending, "deadline", 0, "", "", machine.DEADLINE_NOT_RUN,
                              kind=events.Kind.DEADLINE)
            self.finish_if_complete(suite_id, force=True)

    # --- the sweep -----------------------------------------------------------------------

    def sweep(self) -> None:
        """Periodic: requeue lost attempts, end late completions, close suites in time."""
        sweep(self)

    def reconcile(self) -> int:
        """On start: finish what a coordinator that died left half done; how many suites it checked."""
        return reconcile(self)

    # --- finishing -----------------------------------------------------------------------

    def mark_not_run(self, sid: str, test_ids: list[str], assignment: str, attempt: int, worker: str, node: str,
                     why: str, kind: events.Kind = events.Kind.RECORDS) -> None:
        records = [TestRecord(t, Outcome.NOT_RUN, phase="", message=why) for t in test_ids]
        # The coordinator's own verdict: not subject to ownership fencing.
        self.state.merge(sid, records, assignment=assignment, attempt=attempt, worker=worker, node=node,
                         fence=False, kind=kind)

    def _complete(self, sid: str, *, force: bool) -> bool:
        total, done = self.state.total_and_done(sid)
        if done < total:
            return False  # the common case, each batch: no need to read (and unpack) every attempt
        complete = machine.complete(self.state.view(sid), total, done, self.state.attempts(sid), force=force)
        if complete == machine.Complete.TESTS:
            self.state.note_complete(sid, self.clock())
        return complete == machine.Complete.YES

    def finish_if_complete(self, sid: str, *, force: bool = False) -> None:
        """Finish once every test has an outcome and every attempt has ended (or waited enough).

        Crash retries and reruns are decided under the finish claim, so that one thread starting
        them and another finishing can never interleave (the second would report tests the first
        just moved back to pending); whoever holds the claim releases it when it did not finish,
        and the sweep calls this every second, so a suite is never left behind.
        """
        if not self._complete(sid, force=force) or not self.state.claim_finish(sid):
            return
        with self._claimed(sid):
            self._finish_claimed(sid, force=force)

    @contextlib.contextmanager
    def _claimed(self, sid: str) -> Iterator[None]:
        """While we hold the finish claim: any exception (the broker away as a rerun is published,
        a Redis error) releases it before it propagates, so the sweep tries again; the suite
        would hang otherwise (we are alive: nobody else frees our claim)."""
        try:
            yield
        except BaseException:
            try:
                self.state.release_finish_claim(sid)
            except Exception as exc:  # the store is away too: its claim outlives us, not the suite
                log.warning("suite %s: could not release its finish claim: %s", sid, exc)
            raise

    def _finish_claimed(self, sid: str, *, force: bool) -> None:
        spec = self.state.spec(sid)
        # A suite stopped at its -x/--maxfail runs nothing again (neither crash retries nor reruns).
        halted = self.state.canceled(sid) or bool(self.state.stop_reason(sid))
        if not self._complete(sid, force=force) or (not halted and (
                self._retry_crashes(spec) or (spec.rerun_failures and self._rerun_failures(spec)))):
            self.state.release_finish_claim(sid)  # moved on meanwhile, or tests run again: not yet
            return
        if spec.stages and advancing.stage_ended(self, spec, halted=halted):
            self.state.release_finish_claim(sid)  # the next stage runs: not yet
            return
        total, _ = self.state.total_and_done(sid)
        collection = self.state.collection(sid)
        counts = self.state.counts(sid)
        counted = quality.counts_without_quarantined(self.state, sid, counts)  # exit code and gates
        now = self.clock()
        finish = machine.finishing(spec, canceled=self.state.canceled(sid), counts=counts,
                                   attempts=self.state.attempts(sid),
                                   collected=len(collection.test_ids) if collection else total, now=now,
                                   counted=counted)
        if spec.stages:
            finish = advancing.staged_finish(self, spec, finish)
        self._finish(spec, machine.judged(finish, quality.verdicts(self.state, spec, counted, now)))

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
        if tests and spec.max_memory_bytes:
            # Stopped at --max-memory: it would exceed the same limit on any worker.
            records = self.state.records_of(spec.suite_id, tests)
            tests = [t for t, r in zip(tests, records, strict=True) if r is None or not is_memory_limit(r.message)]
        groups = machine.crash_retry_groups(tests, self.state.last_workers(spec.suite_id, tests))
        return self._run_tests_again(spec, groups, "c", crash_retry=True)

    def _run_tests_again(self, spec: SuiteSpec, groups: list[tuple[list[str], list[str]]], prefix: str, *,
                         crash_retry: bool) -> bool:
        """Move finished tests to new assignments SUITE-<prefix>NN, one per (tests, workers to
        avoid) group; True if any was published."""
        sid = spec.suite_id
        now = self.clock()
        # Nothing to run again (the common case, at every finish): no attempt or history is read.
        if not any(tests for tests, _ in groups) or deadlines.reached(spec, now):
            return False
        round_ = len({a.assignment_id for a in self.state.attempts(sid)
                      if a.assignment_id.startswith(f"{sid}-{prefix}")})
        durations = self.durations(spec)
        started = False
        for tests, avoid in groups:
            if not tests:
                continue
            round_ += 1
            new = Attempt.planned(f"{sid}-{prefix}{round_:02d}", 1, tests, now=now, avoid=avoid)
            moved = self.state.start_rerun(sid, new, crash_retry=crash_retry)
            if not moved:
                continue
            what = "crashed tests once more" if crash_retry else "failing tests again"
            log.info("suite %s: running %d %s (%s), avoiding %s", sid, len(moved), what, new.assignment_id,
                     ", ".join(avoid) or "-")
            self.publish(spec, new.but(test_ids=tuple(moved)), durations)
            started = True
        return started

    def finish_unplanned(self, spec: SuiteSpec, finish: machine.Finish, collection: Collection | None = None) -> None:
        """Finish a suite that was never planned (or whose collection ends it)."""
        if not self.state.claim_finish(spec.suite_id):
            return
        with self._claimed(spec.suite_id):
            if collection is not None:
                self.state.set_fields(spec.suite_id, collection=encode(collection))
            self._finish(spec, finish, collection)

    def _finish(self, spec: SuiteSpec, finish: machine.Finish, collection: Collection | None = None) -> None:
        """Store the durations and the report: the suite finished (it claimed the finish). The store
        builds it under its claim and again if the log moved on meanwhile (coordinator/store.py)."""
        sid = spec.suite_id
        now = self.clock()
        # Nothing more is run or published for it (it claimed the finish): its durations and param
        # positions go before its report is built, the coordinator's peak (read again if a retry
        # or rerun comes after all: the claim released, the sweep finishing it later).
        self._durations.forget(sid)
        with self._positions_lock:
            self._positions.pop(sid, None)
        if self.state.store_report(sid, lambda: finished(self.state, spec, finish, collection, now)):
            log.info("suite %s %s: exit code %d", sid, finish.status, finish.exit_code)
