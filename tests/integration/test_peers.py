"""Several coordinators on one real redis-server: one sweeps at a time, another takes over when its
lease lapses, and a finish claim is released only once its holder is dead."""

from __future__ import annotations

import threading
import time

import redis

from coordinator.peers import OrphanedClaims, Presence, SweepLease
from coordinator.planner import Planner
from coordinator.service import sweep_once
from coordinator.state import SuiteState
from farm import keys
from farm.config import Settings
from farm.model import Assignment, Collection, Completion, RecordBatch, SuiteSpec, TestRecord, WorkerInfo
from farm.outcomes import Outcome
from farm.protocol import encode


class Coordinator:
    """What `farm coordinator` builds on a store, minus Celery: its publishing is recorded."""

    def __init__(self, url: str, name: str, settings: Settings) -> None:
        self.r = redis.Redis.from_url(url)
        self.name = name
        self.state = SuiteState(self.r, settings, name=name)
        self.presence = Presence(self.r, name, settings.lease_s)
        self.presence.beat()
        self.lease = SweepLease(self.r, name, settings.lease_s)
        self.claims = OrphanedClaims(self.r)
        self.assignments: list[Assignment] = []
        self.planner = Planner(self.state, settings, lambda spec: None,
                               lambda pool, a: self.assignments.append(a), lambda pool: 0)

    def start(self) -> None:
        """What a coordinator does on start, after its first heartbeat."""
        self.claims.release(self.state.active_suites())
        self.planner.reconcile()

    def sweep(self) -> bool:
        return sweep_once(self.planner, self.lease, self.claims)


def _pair(url: str, lease_s: float = 0.1) -> tuple[Coordinator, Coordinator]:
    settings = Settings(broker_url=url, lease_s=lease_s)
    store = redis.Redis.from_url(url)
    store.hset(keys.WORKERS, "w@h", encode(WorkerInfo("w@h", "h", 1, "default", "local")))
    return Coordinator(url, "A", settings), Coordinator(url, "B", settings)


def _planned(c: Coordinator, sid: str, tests: tuple[str, ...]) -> Assignment:
    spec = SuiteSpec(sid, "proj", "0" * 64, "default", "load", (), time.time())
    c.r.hset(keys.suite(sid), mapping={"spec": encode(spec), "status": "submitted", "submitted_at": spec.submitted_at})
    c.planner.submitted(sid)
    c.planner.collected(Collection(sid, "w@h", 0, tests))
    return c.assignments[-1]


def _both_sweep(a: Coordinator, b: Coordinator) -> list[bool]:
    """Both coordinators' sweepers tick at the same moment."""
    start = threading.Barrier(2)
    swept: list[bool] = []

    def tick(c: Coordinator) -> None:
        start.wait()
        swept.append(c.sweep())

    threads = [threading.Thread(target=tick, args=(c,)) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return swept


def test_one_coordinator_sweeps_and_another_takes_over_when_its_lease_lapses(redis_url: str) -> None:
    a, b = _pair(redis_url, lease_s=2.0)
    assert a.lease.hold() and not b.lease.hold()
    assert a.lease.hold(), "the holder renews its lease"
    assert a.r.get(keys.SWEEP_LEASE) == b"A"
    # A dies: nobody renews; B takes over once the lease lapses.
    deadline = time.monotonic() + 30
    while not b.lease.hold():
        assert time.monotonic() < deadline, "B never took over the sweep lease"
        time.sleep(0.1)
    assert not a.lease.hold(), "A, back, does not sweep beside B"
    b.lease.release()
    assert a.lease.hold(), "a lease given up at shutdown is taken at the next tick"


def test_an_unclaimed_attempt_is_published_again_once_by_two_sweeping_coordinators(redis_url: str) -> None:
    """No worker took the attempts and their queue is empty: each is published again by one sweeper."""
    a, b = _pair(redis_url)
    planned = [_planned(a, f"u{i}", ("t.py::a",)) for i in range(10)]
    time.sleep(0.5)  # more than 3 lease periods unclaimed
    swept = _both_sweep(a, b)
    again = [x for x in a.assignments + b.assignments if x.attempt == 1][len(planned):]
    assert sorted(x.suite_id for x in again) == sorted(p.suite_id for p in planned), "each published again once"
    assert sorted(swept) == [False, True], "exactly one coordinator swept"


def test_a_lost_attempt_is_requeued_once_by_two_sweeping_coordinators(redis_url: str) -> None:
    a, b = _pair(redis_url)
    first = _planned(a, "l1", ("t.py::a", "t.py::b"))
    a.planner.records(RecordBatch("l1", first.assignment_id, 1, "w@h", "local:h",
                                  (TestRecord("t.py::a", Outcome.PASSED),)))  # running; its lease is gone
    for _ in range(3):
        _both_sweep(a, b)
    seconds = [x for x in a.assignments + b.assignments if x.attempt == 2]
    assert [x.test_ids for x in seconds] == [("t.py::b",)], "the lost attempt was requeued exactly once"
    tries = a.state.attempts("l1")
    assert [(t.number, t.state) for t in tries] == [(1, "lost"), (2, "queued")]


def test_a_starting_coordinator_leaves_a_live_coordinators_finalize_claim_alone(redis_url: str) -> None:
    a, b = _pair(redis_url, lease_s=30.0)  # A stays alive (no heartbeat thread here) until it leaves
    first = _planned(a, "f1", ("t.py::a",))
    assert a.state.claim_finish("f1")  # A is finishing it right now (or deciding reruns under the claim)
    now = time.time()
    a.planner.records(RecordBatch("f1", first.assignment_id, 1, "w@h", "local:h",
                                  (TestRecord("t.py::a", Outcome.PASSED),)))
    a.planner.completed(Completion("f1", first.assignment_id, 1, "w@h", "local:h", "done", now, now, 0, 1))
    b.start()  # B starts (or is restarted) meanwhile
    b.sweep()
    assert a.r.hget(keys.suite("f1"), "finalized") == b"A", "B took the claim of a live coordinator"
    assert a.r.get(keys.report("f1")) is None, "finished by two coordinators"
    # A is killed before it stored the report: once its liveness lapses, a sweeper releases its
    # claim and finishes the suite.
    a.presence.leave()
    assert b.sweep() or a.sweep()
    assert a.r.get(keys.report("f1")) is not None
    assert a.r.hget(keys.suite("f1"), "finalized") in (b"A", b"B")


def test_a_claim_on_a_finalized_suite_is_never_released(redis_url: str) -> None:
    a, b = _pair(redis_url, lease_s=30.0)  # A stays alive (no heartbeat thread here) until it leaves
    first = _planned(a, "f2", ("t.py::a",))
    now = time.time()
    a.planner.records(RecordBatch("f2", first.assignment_id, 1, "w@h", "local:h",
                                  (TestRecord("t.py::a", Outcome.PASSED),)))
    a.planner.completed(Completion("f2", first.assignment_id, 1, "w@h", "local:h", "done", now, now, 0, 1))
    assert a.r.get(keys.report("f2")) is not None
    a.presence.leave()  # the holder of its finish claim is gone, but the suite is done
    assert b.claims.release(["f2"]) == []
    assert a.r.hget(keys.suite("f2"), "finalized") == b"A"
