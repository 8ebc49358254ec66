"""Deadline arithmetic of a suite and its attempts (pure: the spec, settings and `now` in)."""

from __future__ import annotations

from farm.config import Settings
from farm.model import SuiteSpec

#: How long a canceled suite waits for its running assignments to report before it is closed.
CANCEL_GRACE_S = 15.0
#: How long a suite whose every test has an outcome waits for its attempts' completions (they
#: follow the last record by milliseconds) before it is finished without them; also how long a
#: completion waits for the records it says were sent.
COMPLETION_GRACE_S = 5.0
#: A published attempt (or collection) that no worker took for this many lease periods, while
#: its pool's queue is empty, lost its message (fetched by a worker that died before it took
#: the lease, or lost in a broker crash): it is published again.
REPUBLISH_AFTER_LEASES = 3


def deadline_at(spec: SuiteSpec) -> float:
    """The epoch time at which the suite's deadline falls (0: no deadline)."""
    return spec.submitted_at + spec.deadline_s if spec.deadline_s > 0 else 0.0


def budget(spec: SuiteSpec, expected_s: float, settings: Settings) -> float:
    """An assignment's own deadline, from its tests' expected duration (0: none).

    Only under a suite deadline and with recorded durations: a multiple of what its tests took
    last time, never below a floor (a cold cache or a busy host is not a hang)."""
    if spec.deadline_s <= 0 or expected_s <= 0:
        return 0.0
    return max(settings.assignment_deadline_min_s, settings.assignment_deadline_factor * expected_s)


def reached(spec: SuiteSpec, now: float) -> bool:
    """The suite has a deadline and it has come."""
    deadline = deadline_at(spec)
    return bool(deadline) and now >= deadline


def too_late_to_retry(spec: SuiteSpec, now: float, expected_s: float) -> bool:
    """A retry expected to take `expected_s` could not end before the suite deadline."""
    deadline = deadline_at(spec)
    return bool(deadline) and now + expected_s >= deadline


def sweep_ends_suite(spec: SuiteSpec, now: float, lease_s: float) -> bool:
    """Past the deadline and the grace its workers get to report (a lease, then the completion
    grace): the sweep ends the suite, whatever is still out."""
    deadline = deadline_at(spec)
    return bool(deadline) and now > deadline + lease_s + COMPLETION_GRACE_S


def unclaimed_too_long(published_at: float, now: float, lease_s: float) -> bool:
    """Published this long ago and nobody took it (it lost its message if its queue is empty too)."""
    return now - published_at > REPUBLISH_AFTER_LEASES * lease_s


def never_published_too_long(planned_at: float, now: float, lease_s: float) -> bool:
    """Planned, but its publishing failed (the broker was away) this long ago."""
    return now - (planned_at or now) > REPUBLISH_AFTER_LEASES * lease_s


def grace_over(since: float, now: float) -> bool:
    """The completion grace that began at `since` (0: none began) is over."""
    return bool(since) and now - since > COMPLETION_GRACE_S


#: A held completion taken to end its attempt (`SuiteState.take_held`) whose attempt has not ended
#: this long after: its taker died or failed before writing the end, and the sweep takes it again.
#: Far longer than ending an attempt takes, so a slow live taker is never doubled.
TAKEN_RETRY_S = 60.0


def taken_too_long(taken_at: float, now: float) -> bool:
    """A held completion taken at `taken_at` may be taken again: its taker never ended the attempt."""
    return now - taken_at > TAKEN_RETRY_S
