"""The states of a suite and of an attempt, named once (str-valued: stored and sent as their value)."""

from __future__ import annotations

from enum import StrEnum


class SuiteStatus(StrEnum):
    """Where a suite is in its life (the suite hash's `status` field)."""

    SUBMITTED = "submitted"  # stored by the client; no coordinator took it up yet
    COLLECTING = "collecting"  # a collection is published (or under way on a worker)
    RUNNING = "running"  # planned: its attempts run
    FINISHED = "finished"  # every test has an outcome and the report is stored
    CANCELED = "canceled"  # `farm cancel`: what had not run did not run
    DEADLINE = "deadline"  # the suite deadline came first
    ERROR = "error"  # pytest could not collect the suite, or its collection was lost too often


#: Statuses a suite never leaves: its report is stored.
FINAL_STATUSES = frozenset({SuiteStatus.FINISHED, SuiteStatus.CANCELED, SuiteStatus.DEADLINE, SuiteStatus.ERROR})
#: Statuses before the suite is planned (nothing runs that could report a test).
UNPLANNED_STATUSES = frozenset({SuiteStatus.SUBMITTED, SuiteStatus.COLLECTING})


class AttemptState(StrEnum):
    """How an attempt of an assignment stands (its stored `state`, and a Completion's `state`)."""

    QUEUED = "queued"  # published, no record or lease seen yet
    RUNNING = "running"  # a worker holds its lease or sent records
    DONE = "done"  # its runner ran to its end
    FAILED = "failed"  # its runner or its environment failed (or it was given up on)
    CANCELED = "canceled"  # the suite was canceled
    DEADLINE = "deadline"  # the suite deadline came first
    STOPPED = "stopped"  # the suite reached -x/--maxfail
    HANDBACK = "handback"  # it stopped early and handed its unstarted tests back to be queued again
    LOST = "lost"  # its worker stopped renewing the lease: its tests moved to the next attempt


#: States an attempt never leaves.
ENDED_STATES = frozenset(set(AttemptState) - {AttemptState.QUEUED, AttemptState.RUNNING})
#: States of an attempt that is still out (a worker may yet report it).
OUT_STATES = frozenset({AttemptState.QUEUED, AttemptState.RUNNING})
