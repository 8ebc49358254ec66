"""Random fault schedules run through the driver (kills, duplicates, reorders, hand-backs, restarts, cancels).

`play(world, rnd)` drives one suite through `World` (tests/support/scenarios.py) with steps drawn
from `rnd`, then lets every worker finish what is out until the suite ends; `check` asserts the
report rebuilt from the event log is the stored one and that every test is counted once. The
property test draws the `random.Random` with hypothesis (tests/unit/test_event_log_property.py);
the integration tier replays fixed seeds over a real redis-server.
"""

from __future__ import annotations

import json
import random
from typing import Any

from coordinator.deadlines import CANCEL_GRACE_S, COMPLETION_GRACE_S
from farm import keys
from farm.model import Assignment, Leak, TestRecord
from farm.outcomes import Outcome
from farm.report.rebuild import rebuild
from farm.report.schema import expand
from farm.states import OUT_STATES
from support.scenarios import LEASE_S, World

WORKERS = ("w1@h", "w2@h", "w3@h")
#: What each test does (the same on every attempt): `f` fails, `x` crashes its runner, `s` skips.
FATE = {"p": Outcome.PASSED, "f": Outcome.FAILED, "x": Outcome.CRASHED, "s": Outcome.SKIPPED}


def _outcome(test_id: str) -> Outcome:
    return FATE[test_id.rsplit("_", 1)[1][0]]


def play(w: World, rnd: random.Random, sid: str = "fs") -> tuple[str, ...]:
    """One suite under a random schedule of faults; returns its tests once it has finished."""
    tests = tuple(f"t.py::test_{i}_{rnd.choice('ppppfxs')}" for i in range(rnd.randint(1, 9)))
    for name in WORKERS:
        w.add_worker(name, slots=rnd.randint(1, 2))
    w.submit(sid, rerun_failures=rnd.choice((0, 0, 1)), deadline_s=rnd.choice((0.0, 0.0, 90.0)))
    if rnd.random() < 0.1:
        w.planner.submitted(sid)  # the submission delivered twice
    w.collect(sid, tests)
    if rnd.random() < 0.1:
        w.collect(sid, tests)  # the collection delivered twice
    sent: dict[str, int] = {}  # attempt key -> records its worker sent
    for _ in range(rnd.randint(0, 40)):
        out = [a for a in w.published if a.suite_id == sid]
        if not out or w.stored_report(sid) is not None:
            break
        a, worker = rnd.choice(out), rnd.choice(WORKERS)
        step = rnd.choice(("take", "send", "send", "complete", "kill", "tick", "restart", "handback", "cancel"))
        if step == "take":
            w.take(a, worker)
        elif step == "send":  # a batch (maybe a redelivery, maybe late for a lost attempt)
            start = rnd.randrange(len(a.test_ids))
            batch = a.test_ids[start:start + rnd.randint(1, 3)]
            w.send(a, worker, *(TestRecord(t, _outcome(t), 0.1) for t in batch))
            key = keys.attempt_key(a.assignment_id, a.attempt)
            sent[key] = sent.get(key, 0) + len(batch)
        elif step == "complete":  # maybe before its records (reorder), maybe saying more than arrived
            reported = sent.get(keys.attempt_key(a.assignment_id, a.attempt), 0) + rnd.choice((0, 0, 1))
            measured = rnd.random() < 0.5  # a worker that measures its runners (or one that cannot)
            w.complete(a, worker, reported=reported, peak_rss_bytes=rnd.randint(1, 1 << 33) if measured else 0,
                       cpu_s=rnd.random() * 9 if measured else 0.0,
                       leaks=tuple(Leak(rnd.choice(("", *a.test_ids)), "process", f"sleep {n}")
                                   for n in range(rnd.choice((0, 0, 1, 2)))))
        elif step == "handback":
            w.complete(a, worker, "handback", reported=sent.get(keys.attempt_key(a.assignment_id, a.attempt), 0),
                       message="stopped early", infrastructure=rnd.random() < 0.5)
        elif step == "kill":  # the worker dies: its lease lapses
            w.hold_lease(sid, keys.attempt_key(a.assignment_id, a.attempt), None)
            w.tick(LEASE_S + 1)
        elif step == "tick":
            w.tick(rnd.choice((1.0, COMPLETION_GRACE_S + 1, LEASE_S + 1, 45.0)))  # 45: deadlines pass
        elif step == "restart":  # the coordinator dies and a new one starts over the same store
            w.planner = w.start_coordinator()
            w.planner.reconcile()
        elif step == "cancel" and rnd.random() < 0.1:
            w.cancel(sid)
    _drain(w, sid)
    return tests


def _current(w: World, a: Assignment) -> bool:
    stored = w.store.attempt(a.suite_id, a.assignment_id, a.attempt)
    return stored is not None and stored.state in OUT_STATES


def _drain(w: World, sid: str) -> None:
    """Healthy workers run whatever is still out until the suite ends."""
    for round_ in range(60):
        if w.stored_report(sid) is not None:
            return
        out = {(a.assignment_id, a.attempt): a for a in w.published if a.suite_id == sid and _current(w, a)}
        for a in out.values():
            w.run(a, WORKERS[round_ % len(WORKERS)], _outcome)
        w.tick(max(COMPLETION_GRACE_S, LEASE_S, CANCEL_GRACE_S) + 1)
    raise AssertionError(f"suite {sid} never finished")


def check(w: World, sid: str, tests: tuple[str, ...]) -> dict[str, Any]:
    """The report from the log alone is the stored one, and every test is counted once."""
    stored = w.stored_report(sid)
    assert stored is not None
    assert rebuild(w.store.events(sid), sid) == json.loads(stored)
    report = expand(json.loads(stored))
    ids = [t["id"] for t in report.get("tests", [])]
    assert sorted(ids) == sorted(tests), "a test is missing or counted twice"
    counts = {k: v for k, v in report["summary"].items() if k != "total"}
    assert sum(counts.values()) == len(tests) == report["summary"]["total"]
    return report
