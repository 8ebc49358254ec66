"""Scenarios of races around finishing: a stalled claim holder, a publish that fails under the claim,
a merge landing while the report is built, a lost verdict from a stale read. They run over both
stores, as `support.scenarios` do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from coordinator.planner import Planner
from farm import events
from farm.model import TestRecord
from farm.outcomes import Outcome
from support.scenarios import LEASE_S, SETTINGS, World, _planned, _states


class Hooked:
    """A store whose method `name` runs `hook` once, before it (or just after it returned)."""

    def __init__(self, store: Any, name: str, hook: Callable[[], object], *, after: bool = False) -> None:
        self._store = store
        self._hooks = {name: hook}
        self._after = after

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        hook = self._hooks.pop(name, None)
        if hook is None:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if not self._after:
                hook()
            result = attr(*args, **kwargs)
            if self._after:
                hook()
            return result
        return call


def _planner(w: World, store: Any) -> Planner:
    return Planner(store, SETTINGS, w.collects.append, w._publish, queue_length=lambda pool: w.queue_length,
                   clock=w.clock)


def _finished_events(w: World, sid: str) -> int:
    return sum(e.kind == events.Kind.FINISHED for e in w.store.events(sid))


def a_claim_released_while_its_holder_stalls_is_finished_once(w: World) -> None:
    (a,) = _planned(w, "stall")
    other = _planner(w, w.peer("B"))

    def stall() -> None:  # A claimed, then stalled past its presence: B finishes the suite
        w.release_orphaned("stall")
        other.finish_if_complete("stall")
        assert w.stored_report("stall") is not None and w.store.field("stall", "finalized") == "B"

    w.planner = _planner(w, Hooked(w.store, "store_report", stall))
    w.run(a, "w1@h")  # A claims on the completion, stalls, then resumes and would store its report
    assert _finished_events(w, "stall") == 1, "two coordinators finished the suite"
    assert w.report("stall")["exit_code"] == 0
    assert not w.store.release_finish_claim("stall"), "A released B's claim"
    assert w.store.field("stall", "finalized") == "B"


def a_publish_failing_under_the_finish_claim_releases_it(w: World) -> None:
    (a,) = _planned(w, "away", rerun_failures=1)
    w.take(a, "w1@h")
    w.send(a, "w1@h", *(TestRecord(t, Outcome.FAILED if t.endswith("c") else Outcome.PASSED, 0.1)
                        for t in a.test_ids))
    w.broker_down = True  # the rerun is decided under the claim; publishing it fails
    with pytest.raises(ConnectionError):
        w.complete(a, "w1@h")
    w.broker_down = False
    assert w.store.field("away", "finalized") is None, "the finish claim leaked: the suite would hang"
    for _ in range(5):  # the sweep publishes the rerun nobody received
        w.tick(LEASE_S)
        if w.published[-1].assignment_id == "away-r01":
            break
    w.run(w.published[-1], "w1@h")
    report = w.report("away")
    assert report["exit_code"] == 0 and _finished_events(w, "away") == 1


def a_merge_while_the_report_is_built_is_in_the_stored_report(w: World) -> None:
    (a,) = _planned(w, "late")

    def merge() -> None:  # a late batch of another attempt lands just after the driver read the runs
        w.store.merge("late", [TestRecord("t.py::a", Outcome.PASSED, 0.2)], assignment="late-x", attempt=1,
                      worker="w2@h", node="local:w2@h", fence=False)

    w.planner = _planner(w, Hooked(w.store, "test_runs", merge, after=True))
    w.run(a, "w1@h")
    w.report("late")  # the stored report is the one the log folds to
    assert _finished_events(w, "late") == 1


def a_lost_verdict_from_a_stale_read_leaves_a_done_attempt_alone(w: World) -> None:
    (a,) = _planned(w, "stale")
    w.take(a, "w1@h")
    w.send(a, "w1@h", *(TestRecord(t, Outcome.PASSED, 0.1) for t in a.test_ids[:2]))
    (seen,) = w.store.attempts("stale")  # the sweep reads it running, its lease gone: lost
    assert seen.state == "running"
    w.complete(a, "w1@h", reported=2)  # meanwhile its `done` completion lands: it ended
    w.planner.lost("stale", seen)  # the sweep acts on what it read
    assert [(t.number, t.state) for t in w.store.attempts("stale")] == [(1, "done")]
    report = w.report("stale")
    assert _states(report) == [(1, "done")] and _finished_events(w, "stale") == 1


FINISH_SCENARIOS = [
    a_lost_verdict_from_a_stale_read_leaves_a_done_attempt_alone,
    a_claim_released_while_its_holder_stalls_is_finished_once,
    a_publish_failing_under_the_finish_claim_releases_it,
    a_merge_while_the_report_is_built_is_in_the_stored_report,
]
