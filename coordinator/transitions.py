"""How one attempt's state changes (pure: an attempt and an event in, the changed attempt out).

Every store applies these inside its read-decide-write primitive, so the rules are the same
over Redis and over the in-memory store."""

from __future__ import annotations

from collections.abc import Mapping

from coordinator.aggregate import PENDING
from farm.attempts import Attempt
from farm.model import Completion
from farm.states import AttemptState

#: The longest message an attempt keeps (a runner's output tail can be long).
MESSAGE_LIMIT = 4000


def started(a: Attempt, *, worker: str, node: str = "", started_at: float) -> Attempt:
    """queued → running, and nothing else (an attempt that ended meanwhile keeps its state).

    A running attempt whose node is not known yet (the sweep saw its lease before its first
    batch came) takes the fields it lacks."""
    if a.state == AttemptState.QUEUED:
        return a.but(state=AttemptState.RUNNING, worker=worker, node=node or a.node, started_at=started_at)
    if a.state == AttemptState.RUNNING:
        return a.but(worker=a.worker or worker, node=a.node or node, started_at=a.started_at or started_at)
    return a


def completion_arrived(a: Attempt, completion: bytes, reported: int, now: float) -> Attempt:
    """Keep a completion on its attempt until `reported` records were received (else unchanged:
    the attempt ends now, see `waits`)."""
    if not waits(a, reported):
        return a
    return a.but(waiting_completion=completion, waiting_since=now)


def waits(a: Attempt, reported: int) -> bool:
    """A completion saying `reported` records were sent waits for some of them still."""
    return still_missing(a.received, reported)


def still_missing(received: int, reported: int) -> bool:
    """Fewer records were merged from an attempt (`received`, counted by the merges themselves)
    than its completion says it sent."""
    return received < reported


def ended(a: Attempt, c: Completion) -> Attempt:
    """Record how an attempt ended; one taken for lost keeps that state (its tests moved on)."""
    return a.but(
        state=a.state if a.state == AttemptState.LOST else AttemptState(c.state),
        worker=c.worker, node=c.node, finished_at=c.finished_at, exit_code=c.exit_code,
        message=c.message[:MESSAGE_LIMIT], wall_s=max(0.0, c.finished_at - c.started_at),
        waiting_completion=None, waiting_since=0.0, started_at=c.started_at or a.started_at,
        startup_s=c.startup_s or a.startup_s, peak_rss_bytes=c.peak_rss_bytes or a.peak_rss_bytes,
        cpu_s=c.cpu_s or a.cpu_s, leaks=tuple((x.test, x.kind, x.detail) for x in c.leaks) or a.leaks)


def given_up(a: Attempt, state: AttemptState, message: str) -> Attempt:
    """An attempt that will not run: failed, or stopped (the suite reached -x/--maxfail)."""
    return a.but(state=state, message=message[:MESSAGE_LIMIT])


#: The states an attempt is given up on from when the caller expects no ended state (a lease lost).
UNENDED = (AttemptState.QUEUED, AttemptState.RUNNING)


def requeue(old: Attempt, outcomes: Mapping[str, str | None], owners: Mapping[str, str | None], *,
            state: AttemptState, why: str, avoid: str, now: float,
            from_state: AttemptState | None = None) -> tuple[Attempt, Attempt | None] | None:
    """Give up on an attempt: (the old one as it ends, the next attempt with its unfinished
    tests or None if none are left), or None if it was given up on already or is no longer in
    the state the caller decided on (`from_state`; None: still queued or running, as a lost
    lease is judged): a verdict from a stale read changes nothing (a `done` attempt stays done).

    `outcomes` and `owners` are the suite's, for the attempt's tests: only tests still pending
    and owned by the old attempt move."""
    if old.requeued or old.state not in (UNENDED if from_state is None else (from_state,)):
        return None
    moving = [t for t in old.test_ids if outcomes.get(t) == PENDING and owners.get(t) == old.key]
    ended_old = old.but(state=state, message=why[:MESSAGE_LIMIT], finished_at=old.finished_at or now, requeued=True)
    if not moving:
        return ended_old, None
    new = Attempt.planned(old.assignment_id, old.number + 1, moving, now=now,
                          avoid=[*old.avoid, *([avoid] if avoid else [])])
    return ended_old, new


def split_id(assignment_id: str, number: int, seq: int) -> str:
    """The new assignment a split of attempt `number` of `assignment_id` at request `seq` makes
    (`S-a003s1.1`): the same from the Split message and from the completion, so only the first moves."""
    return f"{assignment_id}s{number}.{seq}"


def split_off(old: Attempt, tail: tuple[str, ...], outcomes: Mapping[str, str | None],
              owners: Mapping[str, str | None], *, seq: int, now: float) -> tuple[Attempt, Attempt] | None:
    """A runner confirmed it will run none of `tail`: (the old attempt without them, the new
    assignment's first attempt owning them), or None: the old attempt was given up on (lost or
    handed back: its tests moved to its next attempt already), or none of the tail is still
    pending and owned by it (moved already: a duplicate). The old attempt may have ended (its
    completion can be handled before the Split message)."""
    if old.requeued or old.state == AttemptState.LOST:
        return None
    cut = set(tail)
    moving = [t for t in old.test_ids if t in cut and outcomes.get(t) == PENDING and owners.get(t) == old.key]
    if not moving:
        return None
    moved = set(moving)
    head = old.but(test_ids=tuple(t for t in old.test_ids if t not in moved))
    new = Attempt.planned(split_id(old.assignment_id, old.number, seq), 1, moving, now=now,
                          priority=0, avoid=old.avoid)
    return head, new
