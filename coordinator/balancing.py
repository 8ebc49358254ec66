"""The driver's side of run-time balancing: ask for splits, move confirmed tails, publish them.

`coordinator.balance` decides (pure); the Planner calls these (they use its store, clock and
publishers, as `coordinator.sweep` does)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from coordinator import balance as rules
from coordinator import deadlines, machine, transitions
from farm.model import LOCAL_NODE, Completion
from farm.states import AttemptState

if TYPE_CHECKING:
    from coordinator.planner import Planner

log = logging.getLogger("farm.coordinator")


def completion_splits(planner: Planner, c: Completion) -> None:
    """The tails a completion says its attempt split off: moved now if their Split message has
    not moved them yet (threads reorder messages), so they are never taken as not run."""
    by_seq: dict[int, list[str]] = {}
    for test_id, seq in zip(c.split_off, c.split_seqs, strict=False):
        by_seq.setdefault(seq, []).append(test_id)
    for seq, tail in sorted(by_seq.items()):
        split_tail(planner, c.suite_id, c.assignment_id, c.attempt, seq, tuple(tail))


def split_tail(planner: Planner, sid: str, assignment_id: str, number: int, seq: int, tail: tuple[str, ...]) -> None:
    """Move a confirmed tail to its new assignment and publish it (or give it up, as a retry is)."""
    state = planner.state
    spec = state.spec(sid)
    now = planner.clock()
    new = state.split_off(sid, assignment_id, number, seq, tail, now=now)
    if new is None:
        return  # moved already (a duplicate), or the attempt was lost or handed back: they went with it
    log.info("suite %s: %s#%d split: %d unstarted tests run as %s", sid, assignment_id, number,
             len(new.test_ids), new.assignment_id)
    durations = planner.durations(spec)
    expected = sum(durations.get(t, 0.0) for t in new.test_ids)
    stop = state.stop_reason(sid)
    reason = machine.give_up(new, (), settings=planner.settings, canceled=state.canceled(sid), stop=stop,
                             too_late=deadlines.too_late_to_retry(spec, now, expected))
    if not reason:
        planner.publish(spec, new, durations)
        return
    planner.mark_not_run(sid, list(new.test_ids), new.assignment_id, new.number, "", "", reason)
    ended = AttemptState.STOPPED if stop else AttemptState.FAILED
    state.change_attempt(sid, new.assignment_id, new.number, lambda x: transitions.given_up(x, ended, reason))


def balance(planner: Planner, sid: str) -> None:
    """Slots the suite leaves idle: ask the running attempts with the most time left to split
    (`coordinator.balance.to_split`); their workers poll the request."""
    state = planner.state
    if state.canceled(sid) or state.stop_reason(sid):
        return
    spec = state.spec(sid)
    if spec.dist == "loadfile":
        return  # a module is never split: its tests share module fixtures and an order
    attempts = state.attempts(sid)
    asks, names = state.split_asks(sid), {a.assignment_id for a in attempts}
    # Only the local backend's runners fence (workers.backends.base.Fencing): an SSH or VM attempt
    # would never answer, and its request would hold an idle slot until it ended.
    running = [a for a in attempts if a.state == AttemptState.RUNNING and a.waiting_completion is None
               and a.node.startswith(LOCAL_NODE)]
    answered = {a.key: transitions.split_id(a.assignment_id, a.number, asks.get(a.key, 0)) in names
                for a in running}
    outstanding = sum(1 for a in running if asks.get(a.key) and not answered[a.key])
    idle = rules.idle_slots(state.pool_slots(spec.pool) or 1, attempts, outstanding)
    if idle <= 0:
        return
    durations = planner.durations(spec)  # read-only: its overhead field is never a test's id
    recorded = durations.get(machine.OVERHEAD_KEY)
    ended = [a for a in attempts if a.ended]
    overhead = rules.start_cost(ended, recorded)  # measured in this suite once an attempt ended
    now = planner.clock()
    views = []
    for a in running:
        pending = tuple(state.pending_in(sid, list(a.test_ids), a.key))
        views.append(rules.Running(a, pending, asks.get(a.key, 0), answered[a.key], rules.pace(a, len(pending), now)))
    mean = rules.mean_test_s(ended)
    for ask in rules.to_split(views, idle=idle, durations=durations, mean_s=mean, overhead_s=overhead):
        if state.ask_split(sid, ask.attempt.key, ask.seq, ask.tail):
            log.info("suite %s: asking %s to split off its last %d tests (%.1fs left, %.1fs after, start-up %.2fs)",
                     sid, ask.attempt.key, len(ask.tail), ask.left_s, ask.after_s, overhead)
