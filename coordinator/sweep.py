"""The periodic sweep and the start-up reconcile: the driver's timed events (what to do: the machine)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from coordinator import deadlines, machine, transitions
from farm import events
from farm.errors import SuiteNotFound
from farm.model import Completion, SuiteSpec
from farm.protocol import decode
from farm.states import AttemptState, SuiteStatus

if TYPE_CHECKING:
    from coordinator.planner import Planner

log = logging.getLogger("farm.coordinator")


def sweep(driver: Planner) -> None:
    """Take up suites whose submission was lost; per active suite: end it past its deadline, watch
    its collection, classify its attempts (`machine.classify`) and act, finish it in time."""
    state, settings = driver.state, driver.settings
    now = driver.clock()
    # A pool's queue length, asked of the broker once per sweep (a new broker connection each
    # time): a suite with more assignments than slots has most of them waiting on the queue, each
    # an UNCLAIMED tick at every sweep (6 connections a second at the huge bench's plan of 8 on 2 slots).
    lengths = _QueueLengths(driver.queue_length)
    for sid in state.submitted_before(now - deadlines.REPUBLISH_AFTER_LEASES * settings.lease_s):
        log.warning("suite %s: submitted but never taken up (its message was lost); taking it up", sid)
        try:
            driver.submitted(sid)
        except SuiteNotFound:  # expired, or never written whole
            state.forget_submitted(sid)
    for sid in state.active_suites():
        spec = state.spec(sid)
        if deadlines.sweep_ends_suite(spec, driver.clock(), settings.lease_s):
            driver.deadline_passed(sid)
            continue
        view = state.view(sid)
        if view.status == SuiteStatus.COLLECTING:
            if not _cancel_due(driver, sid):  # a canceled suite is not collected again
                _watch_collection(driver, spec, view)
            continue
        attempts = state.attempts(sid)
        holders = state.lease_holders(sid, machine.watched(attempts))
        for tick in machine.classify(attempts, holders, now=driver.clock(), lease_s=settings.lease_s):
            _act(driver, spec, tick, lengths)
        view = state.view(sid)
        if deadlines.grace_over(view.complete_at, driver.clock()):
            driver.finish_if_complete(sid, force=True)
            continue
        driver.finish_if_complete(sid)  # in case the thread that could have finished it lost a race
        _cancel_due(driver, sid)


class _QueueLengths:
    """`Planner.queue_length`, asked once per pool per sweep while the answer stands: after a
    message is published on a pool (`published`) it is asked again at the next unclaimed attempt,
    as before, so lost messages are all published again in one sweep when idle workers take each
    at once (the queue stays empty), and never twice while one waits."""

    def __init__(self, ask: Callable[[str], int]) -> None:
        self._ask = ask
        self._known: dict[str, int] = {}

    def __call__(self, pool: str) -> int:
        if pool not in self._known:
            self._known[pool] = self._ask(pool)
        return self._known[pool]

    def published(self, pool: str) -> None:
        self._known.pop(pool, None)


def _act(driver: Planner, spec: SuiteSpec, tick: machine.Tick, queue_length: _QueueLengths) -> None:
    a, sid = tick.attempt, spec.suite_id
    if tick.kind == machine.TickKind.END_LATE:
        assert a.waiting_completion is not None
        if not driver.state.take_held(sid, a.assignment_id, a.number, a.waiting_completion, now=driver.clock()):
            return  # the last record came meanwhile: its batch ends the attempt (or did)
        completion = decode(a.waiting_completion, Completion)
        missing = completion.reported - a.received
        if missing > 0:
            log.warning("assignment %s: %d of its records never arrived", a.assignment_id, missing)
        else:  # every record came, but whoever took the completion never ended the attempt
            log.warning("assignment %s: its completion was taken but the attempt never ended; ending it",
                        a.assignment_id)
        driver.end_attempt(completion, records_lost=max(0, missing))
    elif tick.kind == machine.TickKind.RUNNING:
        now = driver.clock()
        driver.state.change_attempt(sid, a.assignment_id, a.number,
                                    lambda x: transitions.started(x, worker=tick.holder, started_at=now))
    elif tick.kind == machine.TickKind.UNPUBLISHED:
        log.warning("suite %s: %s was planned but never published; publishing it", sid, a.key)
        driver.publish(spec, a, driver.durations(spec))
    elif tick.kind == machine.TickKind.UNCLAIMED and queue_length(spec.pool) == 0:
        log.warning("suite %s: no worker took %s and the queue is empty; publishing it again", sid, a.key)
        driver.publish(spec, a, driver.durations(spec))
        queue_length.published(spec.pool)
    elif tick.kind == machine.TickKind.LOST:
        driver.lost(sid, a)


def _cancel_due(driver: Planner, sid: str) -> bool:
    """End a canceled suite whose grace is over, whatever its status; True if it was canceled."""
    view = driver.state.view(sid)
    due = machine.cancel_due(view, driver.clock())
    if due != machine.Cancel.END:
        return due == machine.Cancel.WAIT
    if view.status == SuiteStatus.RUNNING:
        pending = driver.state.all_pending(sid)
        driver.mark_not_run(sid, pending, "cancel", 0, "", "", "suite canceled before this test ran",
                            kind=events.Kind.CANCEL)
        driver.finish_if_complete(sid)
    else:
        finish = machine.unplanned_end(view.status, deadline=False)
        if finish is not None:
            driver.finish_unplanned(driver.state.spec(sid), finish)
    return True


def _watch_collection(driver: Planner, spec: SuiteSpec, view: machine.SuiteView) -> None:
    """A started collection whose lease lapsed is lost; one never taken may have lost its message."""
    sid = spec.suite_id
    if view.collect_started:
        if not driver.state.lease_alive(sid, "collect"):
            driver.collection_lost(sid)
        return
    # Published (or, if publishing failed, meant to be) this long ago.
    since = view.collect_published or view.collecting_since
    if since and deadlines.unclaimed_too_long(since, driver.clock(), driver.settings.lease_s) \
            and driver.queue_length(spec.pool) == 0 and not driver.state.lease_alive(sid, "collect"):
        log.warning("suite %s: no worker took its collection and the queue is empty; publishing it again", sid)
        driver.publish_collection(spec)


def reconcile(driver: Planner) -> int:
    """Finish what a coordinator that died left half done; how many suites it checked.

    Messages it had fetched come back by themselves (the coordinator's short visibility
    timeout), and are idempotent. What no message will redo: a collection or an attempt
    recorded but never published. (A finish claimed but never stored is released by the
    sweeper once its holder is dead: coordinator/peers.py; another live coordinator may hold it.)
    """
    state = driver.state
    suites = state.active_suites()
    for sid in suites:
        try:
            spec = state.spec(sid)
        except SuiteNotFound:
            continue
        view = state.view(sid)
        if view.status == SuiteStatus.COLLECTING and not view.collect_published:
            driver.publish_collection(spec)
        elif view.status == SuiteStatus.RUNNING:
            collection = state.collection(sid)
            if collection is not None and collection.decided:  # merged after planning: maybe not yet
                state.merge(sid, list(collection.decided), assignment="collection", attempt=1,
                            worker=collection.worker, node="collect")
            durations = driver.durations(spec)
            for a in state.attempts(sid):
                if a.state == AttemptState.QUEUED and not a.published_at:
                    driver.publish(spec, a, durations)
            driver.finish_if_complete(sid)
    if suites:
        log.warning("reconciled %d unfinished suites left by an earlier coordinator", len(suites))
    return len(suites)
