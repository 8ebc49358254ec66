"""The suite machine: what the coordinator decides at each event (pure: state, event and `now` in).

Nothing here reads Redis, Celery or the clock; `coordinator.planner` (the driver) reads the
store, calls these, and carries out what they return.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from coordinator import deadlines
from coordinator.splitting import START_HOLD_S, priorities, split, with_slack
from farm import keys
from farm.attempts import Attempt
from farm.config import Settings
from farm.model import Collection, Completion, SuiteSpec, TestRecord
from farm.outcomes import TIMED, Outcome, exit_code_for
from farm.states import ENDED_STATES, OUT_STATES, UNPLANNED_STATUSES, AttemptState, SuiteStatus

#: The most attempts an assignment gets, however they ended (hand-backs included).
ATTEMPT_CAP = 10
#: The history field holding the median per-assignment overhead (not a node id: it has a NUL).
OVERHEAD_KEY = keys.HISTORY_OVERHEAD_FIELD
DEADLINE_NOT_RUN = "not run: the suite deadline came first"
ENDED_EARLY = "the runner ended before running this test"


@dataclass(frozen=True)
class SuiteView:
    """The fields of a suite's hash the machine decides on, as the driver read them."""

    status: SuiteStatus
    cancel_at: float = 0.0  # when `farm cancel` was first asked (0: never)
    stop: str = ""  # why it stopped at -x/--maxfail ("" while it runs on)
    complete_at: float = 0.0  # when every test first had an outcome (0: not yet)
    collect_started: bool = False  # a worker took the collection
    collect_published: float = 0.0
    collecting_since: float = 0.0

    @property
    def canceled(self) -> bool:
        return bool(self.cancel_at)

    @property
    def unclaimed(self) -> bool:
        """Nothing runs for it yet that could report (not taken up, or its collection not taken)."""
        return self.status == SuiteStatus.SUBMITTED or (
            self.status == SuiteStatus.COLLECTING and not self.collect_started)


@dataclass(frozen=True)
class Finish:
    """Finish the suite with this status, exit code and message."""

    status: SuiteStatus
    exit_code: int
    message: str
    decided: tuple[TestRecord, ...] = ()  # collection-time outcomes of a suite that never ran


@dataclass(frozen=True)
class RunAgain:
    """Move an attempt's unfinished tests to its next attempt (avoiding `avoid`, if set)."""

    why: str
    state: AttemptState
    avoid: str = ""
    from_state: AttemptState | None = None  # the state the attempt ended in (None: still queued or running)


@dataclass(frozen=True)
class NotRun:
    """Mark these pending tests not run, with this message."""

    why: str


# --- collected ----------------------------------------------------------------------------

def first_error(output: str) -> str:
    """The line of a failed collection's output that says why (`No module named pytest`), if any."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "No module named" in line:
            return line[:300]
    return ""


def collected(collection: Collection, *, canceled: bool) -> Finish | None:
    """A collection came back: finish the suite without running it, or None (plan it)."""
    if canceled:
        return Finish(SuiteStatus.CANCELED, 2, "suite canceled during collection")
    if collection.infrastructure_error:
        return Finish(SuiteStatus.ERROR, 3, collection.infrastructure_error)
    errors = [d for d in collection.decided if d.outcome is Outcome.ERROR]
    # 3 and 4 are pytest's own failures. Any other code but 0, 2 and 5 is one too when the
    # session never reported (`python -m pytest` without pytest exits 1, a signal): exit 3.
    # (1 with a session: --continue-on-collection-errors, whose errors are decided records.)
    never_ran = collection.exit_code not in (0, 2, 5) and not collection.session.pytest
    if collection.exit_code in (3, 4) or never_ran or (collection.exit_code == 2 and not errors):
        code = collection.exit_code if collection.exit_code in (2, 3, 4) else 3
        message = f"pytest could not collect the suite (exit code {collection.exit_code})"
        why = first_error(collection.output)
        return Finish(SuiteStatus.ERROR, code, f"{message}: {why}" if why else message)
    if errors and collection.exit_code == 2:
        # As pytest: collection errors interrupt the session before any test runs.
        n = len(errors)
        return Finish(SuiteStatus.FINISHED, 2, f"Interrupted: {n} error{'s' if n != 1 else ''} during collection",
                      decided=collection.decided)
    return None


def plan(spec: SuiteSpec, test_ids: list[str], *, durations: Mapping[str, float], slots: int, settings: Settings,
         now: float) -> list[Attempt]:
    """The first attempts of a collected suite's assignments (`ID-a000`...), in publishing order."""
    known = dict(durations)
    overhead = known.pop(OVERHEAD_KEY, None)
    planned = split(test_ids, slots=slots, dist=spec.dist, durations=known, per_slot=settings.assignments_per_slot,
                    min_assignment_s=settings.min_assignment_s, min_tests=settings.min_assignment_tests,
                    overhead_s=overhead, small_tests=settings.small_suite_tests)
    ranks = priorities([p.expected_s for p in planned])  # without durations (all 0): the indexes
    return [Attempt.planned(f"{spec.suite_id}-a{i:03d}", 1, p.test_ids, now=now, expected_s=p.expected_s,
                            priority=rank) for i, (p, rank) in enumerate(zip(planned, ranks, strict=True))]


def start_after(attempts: Sequence[Attempt], now: float) -> list[float]:
    """When the runner of each attempt just planned (at `now`) may start (Assignment.start_after):
    those with slack against the longest START_HOLD_S later, so that the critical one starts on
    cores of its own; the others (and every attempt published later: a tail, a retry) at once."""
    return [now + START_HOLD_S if slack else 0.0 for slack in with_slack([a.expected_s for a in attempts])]


def collection_order(collection: Collection, test_ids: list[str]) -> list[str]:
    """A planned suite's order (`order`, what `SuiteStore.order` returns): its runnable tests, then
    those decided at collection that are not among them."""
    if not collection.decided:
        return test_ids
    runnable = set(test_ids)
    return test_ids + [d.test_id for d in collection.decided if d.test_id not in runnable]


def collection_lost(tries: int, settings: Settings) -> Finish | None:
    """The collecting worker stopped renewing its lease (`tries` times): give up, or None (again)."""
    if tries >= settings.max_attempts:
        return Finish(SuiteStatus.ERROR, 3, f"the collection was lost {tries} times (workers died while collecting)")
    return None


# --- attempts ending ----------------------------------------------------------------------

def attempt_ended(c: Completion, pending: Sequence[str], records_lost: int = 0) -> RunAgain | NotRun | None:
    """An attempt ended and `pending` of its tests have no outcome: what becomes of them.

    Handed back (it stopped early), or records it sent lost on the way (`records_lost`, a broker
    restart): they are queued again. Otherwise they did not run."""
    if not pending:
        return None
    state = AttemptState(c.state)
    lost_on_the_way = records_lost and state not in (AttemptState.CANCELED, AttemptState.DEADLINE)
    if state == AttemptState.HANDBACK or lost_on_the_way:
        why = (c.message or "handed back") if state == AttemptState.HANDBACK else \
            f"{records_lost} records of attempt {c.attempt} never arrived"
        # A failed environment (a VM that panicked or would not boot): preferably elsewhere.
        return RunAgain(why, AttemptState.HANDBACK, avoid=c.worker if c.infrastructure else "", from_state=state)
    if state == AttemptState.DONE:
        return NotRun(ENDED_EARLY)
    if state == AttemptState.DEADLINE:
        return NotRun(DEADLINE_NOT_RUN)
    return NotRun(c.message.splitlines()[0] if c.message else ENDED_EARLY)


def lost(attempt: Attempt, lease_s: float) -> RunAgain:
    """An attempt's worker stopped renewing its lease."""
    return RunAgain(f"attempt {attempt.number} lost: {attempt.worker or 'its worker'} stopped renewing its lease "
                    f"for {lease_s:g}s", AttemptState.LOST)


def give_up(new: Attempt, history: Iterable[Attempt], *, settings: Settings, canceled: bool, stop: str,
            too_late: bool) -> str:
    """Why the next attempt `new` must not run ("": it may), given its assignment's attempts.

    A lost attempt counts against max_attempts; one handed back (stopped early, through no fault
    of its tests) does not, up to ATTEMPT_CAP attempts in all. Retries never start work that
    cannot finish before the suite deadline."""
    losses = sum(1 for a in history if a.assignment_id == new.assignment_id and a.state == AttemptState.LOST)
    if canceled:
        return "suite canceled"
    if stop:
        return stop
    if too_late:
        return "not run: no time left before the suite deadline to run it again"
    if losses >= settings.max_attempts:
        return f"not run: its assignment was lost {losses} times (workers died)"
    if new.number > ATTEMPT_CAP:
        return f"not run: its assignment was stopped {new.number - 1} times"
    return ""


# --- the sweep's tick ---------------------------------------------------------------------

class TickKind(StrEnum):
    """What the sweep found about one attempt."""

    END_LATE = "end-late"  # its completion waited longer than the grace for its records
    RUNNING = "running"  # queued, and a worker holds its lease
    UNPUBLISHED = "unpublished"  # planned long ago, never published (the broker was away)
    UNCLAIMED = "unclaimed"  # published long ago, nobody took it
    LOST = "lost"  # running, and its lease lapsed


@dataclass(frozen=True)
class Tick:
    """What the sweep found about one attempt (see `classify`)."""

    kind: TickKind
    attempt: Attempt
    holder: str = ""  # the worker holding its lease (RUNNING)


def classify(attempts: Sequence[Attempt], holders: Mapping[str, str], *, now: float, lease_s: float) -> list[Tick]:
    """The sweep's look at a running suite's attempts.

    A completion that waited longer than the grace for its records is taken as it is (the
    rest never arrived); a queued attempt whose lease a worker holds is running (its first
    batch may be late); one never published is published; one nobody took for long is
    "unclaimed" (published again if its queue is empty: the driver asks the broker); a running
    one whose lease lapsed is lost."""
    ticks = []
    for a in attempts:
        if a.waiting_completion is not None:
            if deadlines.grace_over(a.waiting_since, now):
                ticks.append(Tick(TickKind.END_LATE, a))
        elif a.state == AttemptState.QUEUED:
            holder = holders.get(a.key)
            if holder is not None:
                ticks.append(Tick(TickKind.RUNNING, a, holder=holder))
            elif not a.published_at:
                if deadlines.never_published_too_long(a.planned_at, now, lease_s):
                    ticks.append(Tick(TickKind.UNPUBLISHED, a))
            elif deadlines.unclaimed_too_long(a.published_at, now, lease_s):
                ticks.append(Tick(TickKind.UNCLAIMED, a))
        elif a.state == AttemptState.RUNNING and a.key not in holders:
            ticks.append(Tick(TickKind.LOST, a))
    return ticks


def watched(attempts: Iterable[Attempt]) -> list[Attempt]:
    """The attempts whose leases the sweep looks up: still out, no completion waiting."""
    return [a for a in attempts if a.waiting_completion is None and a.state in OUT_STATES]


class Cancel(StrEnum):
    """Where a suite stands with a cancel."""

    NONE = ""  # not canceled
    WAIT = "wait"  # canceled, its grace runs (what runs may still report)
    END = "end"  # canceled, end it now


def cancel_due(view: SuiteView, now: float) -> Cancel:
    """Where a suite stands with a cancel (`Cancel`).

    A suite not collected yet ends at once (nothing runs that could report); one collecting or
    running gets CANCEL_GRACE_S for its collection or assignments to report."""
    if not view.canceled:
        return Cancel.NONE
    if not view.unclaimed and now - view.cancel_at <= deadlines.CANCEL_GRACE_S:
        return Cancel.WAIT
    return Cancel.END


def unplanned_end(status: SuiteStatus, *, deadline: bool) -> Finish | None:
    """How a suite not planned yet ends at its deadline (or, `deadline` False, at a cancel);
    None if it was planned."""
    if status not in UNPLANNED_STATUSES:
        return None
    if deadline:
        return Finish(SuiteStatus.DEADLINE, 2, "suite deadline reached before collection ended")
    return Finish(SuiteStatus.CANCELED, 2, "suite canceled")


# --- finishing ----------------------------------------------------------------------------

class Complete(StrEnum):
    """How complete a suite is."""

    NO = ""  # a test has no outcome yet (or the suite is not running)
    TESTS = "tests"  # every test has an outcome, an attempt is still out: wait for its completion
    YES = "yes"  # it may finish


def complete(view: SuiteView, total: int, done: int, attempts: Iterable[Attempt], *, force: bool) -> Complete:
    """How complete a running suite is (forced: whatever attempts are still out)."""
    if done < total or view.status != SuiteStatus.RUNNING:
        return Complete.NO
    if not force and any(a.state not in ENDED_STATES for a in attempts):
        return Complete.TESTS
    return Complete.YES


def finishing(spec: SuiteSpec, *, canceled: bool, counts: Mapping[str, int], attempts: Iterable[Attempt],
              collected: int, now: float) -> Finish:
    """The status, exit code and message of a suite that finishes now."""
    past_deadline = deadlines.reached(spec, now) and (
        counts.get(Outcome.NOT_RUN.value, 0) > 0 or any(a.state == AttemptState.DEADLINE for a in attempts))
    if canceled:
        status, message = SuiteStatus.CANCELED, "suite canceled"
    elif past_deadline:
        status, message = SuiteStatus.DEADLINE, f"suite deadline of {spec.deadline_s:g}s reached"
    else:
        status, message = SuiteStatus.FINISHED, ""
    code = exit_code_for(dict(counts), interrupted=status != SuiteStatus.FINISHED, collected=collected,
                         strict_flaky=spec.strict_flaky)
    return Finish(status, code, message)


def crash_retry_groups(tests: Sequence[str], where: Mapping[str, str]) -> list[tuple[list[str], list[str]]]:
    """Crashed tests, one group per worker they crashed on, each to avoid that worker."""
    by_worker: dict[str, list[str]] = {}
    for test_id in tests:
        by_worker.setdefault(where.get(test_id, ""), []).append(test_id)
    return [(ids, [w] if w else []) for w, ids in sorted(by_worker.items())]


def assignment_overhead(attempts: Iterable[Attempt], durations: Mapping[str, float]) -> float | None:
    """Median of (wall time - its tests' durations) over the attempts that ran to the end."""
    overheads = [
        max(0.0, a.wall_s - sum(durations.get(t, 0.0) for t in a.test_ids))
        for a in attempts if a.state == AttemptState.DONE and a.wall_s is not None
    ]
    return statistics.median(overheads) if overheads else None


def timed(counted: Mapping[str, TestRecord]) -> dict[str, float]:
    """The durations to record for the next split."""
    return timed_of(counted.items())


def timed_of(counted: Iterable[tuple[str, TestRecord]]) -> dict[str, float]:
    """`timed` of (test id, record) pairs given one at a time (a test given twice: its last)."""
    return {t: r.duration_s for t, r in counted if is_timed(r)}


def is_timed(record: TestRecord) -> bool:
    """Whether the record's duration is kept for the next split and in the run history's rings."""
    return record.outcome in TIMED and record.phase != "collect"
