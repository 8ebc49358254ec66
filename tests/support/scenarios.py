"""Whole suites driven through the coordinator's Planner with a clock the test steps, faults included.

Each scenario takes a `World`: the Planner over a store, a stepped clock, and what a worker
would do (take a lease, send records, complete). The same scenarios run over the stub store
(tests/unit/test_suite_machine.py, no service) and over a real redis-server
(tests/integration/test_suite_scenarios.py), as dramatiq runs its tests over StubBroker and Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

from coordinator.deadlines import CANCEL_GRACE_S, COMPLETION_GRACE_S
from coordinator.memory_store import MemoryStore
from coordinator.peers import OrphanedClaims
from coordinator.planner import Planner
from coordinator.state import SuiteState
from coordinator.store import SuiteStore
from farm import events, keys
from farm.config import Settings
from farm.model import (
    Assignment,
    Collection,
    Completion,
    Leak,
    RecordBatch,
    SessionInfo,
    SuiteSpec,
    TestRecord,
    WorkerInfo,
)
from farm.outcomes import Outcome
from farm.protocol import encode
from farm.report.rebuild import rebuild
from farm.report.schema import expand

T0 = 1_800_000_000.0
LEASE_S = 10.0
SETTINGS = Settings(broker_url="redis://unused", lease_s=LEASE_S, max_attempts=3)


class Clock:
    """Epoch time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class World:
    """A Planner over a store, with the broker and the workers played by the test."""

    def __init__(self, store: SuiteStore) -> None:
        self.store = store
        self.clock = Clock()
        store.clock = self.clock  # type: ignore[attr-defined]  # events are stamped with the test's time
        self.collects: list[SuiteSpec] = []
        self.published: list[Assignment] = []
        self.queue_length = 0  # what the broker says waits on the pool's queue
        self.broker_down = False  # publishing raises (the coordinator dies there)
        self.planner = self.start_coordinator()

    def start_coordinator(self) -> Planner:
        """A coordinator over this store (a restarted one: same store, nothing else kept)."""
        return Planner(self.store, SETTINGS, self.collects.append, self._publish,
                       queue_length=lambda pool: self.queue_length, clock=self.clock)

    def _publish(self, pool: str, a: Assignment) -> None:
        if self.broker_down:
            raise ConnectionError("the broker is away")
        self.published.append(a)

    # what other processes write: the client, workers' announcements and leases
    def _submit(self, spec: SuiteSpec) -> None:
        raise NotImplementedError

    def add_worker(self, name: str, slots: int = 1) -> None:
        raise NotImplementedError

    def hold_lease(self, sid: str, name: str, worker: str | None) -> None:
        raise NotImplementedError

    def stored_report(self, sid: str) -> str | None:
        raise NotImplementedError

    def peer(self, name: str) -> SuiteStore:
        """The store as another coordinator, named `name`, sees it (its finish claims are its own)."""
        raise NotImplementedError

    def release_orphaned(self, sid: str) -> None:
        """Release the suite's finish claim as a sweeper does when its holder's presence lapsed."""
        raise NotImplementedError

    # --- steps ----------------------------------------------------------------------------

    def submit(self, sid: str, **spec: Any) -> SuiteSpec:
        s = SuiteSpec(sid, "proj", "0" * 64, "default", "load", (), self.clock(), **spec)
        self._submit(s)
        self.planner.submitted(sid)
        return s

    def collect(self, sid: str, tests: tuple[str, ...], *, worker: str = "w1@h", exit_code: int = 0,
                decided: tuple[TestRecord, ...] = (), session: SessionInfo | None = None) -> None:
        self.planner.collected(Collection(sid, worker, exit_code, tests, decided, session=session or SessionInfo()))

    def cancel(self, sid: str) -> None:
        """The submitter cancels: it flags the suite (as farm.client does), then tells the coordinator."""
        self.store.request_cancel(sid, self.clock())
        self.planner.cancel(sid)

    def send(self, a: Assignment, worker: str, *records: TestRecord) -> None:
        self.planner.records(RecordBatch(a.suite_id, a.assignment_id, a.attempt, worker, f"local:{worker}", records))

    def complete(self, a: Assignment, worker: str, state: str = "done", *, reported: int | None = None,
                 message: str = "", infrastructure: bool = False, peak_rss_bytes: int = 0, cpu_s: float = 0.0,
                 leaks: tuple[Leak, ...] = ()) -> None:
        now = self.clock()
        self.planner.completed(Completion(a.suite_id, a.assignment_id, a.attempt, worker, f"local:{worker}", state,
                                          now - 1, now, 0 if state == "done" else -1,
                                          len(a.test_ids) if reported is None else reported, message,
                                          infrastructure=infrastructure, peak_rss_bytes=peak_rss_bytes, cpu_s=cpu_s,
                                          leaks=leaks))

    def take(self, a: Assignment, worker: str) -> None:
        self.hold_lease(a.suite_id, keys.attempt_key(a.assignment_id, a.attempt), worker)

    def run(self, a: Assignment, worker: str, outcome: Callable[[str], Outcome] = lambda t: Outcome.PASSED) -> None:
        """A worker takes the attempt, runs every test, reports and completes."""
        self.take(a, worker)
        self.send(a, worker, *(TestRecord(t, outcome(t), 0.1) for t in a.test_ids))
        self.complete(a, worker)
        self.hold_lease(a.suite_id, keys.attempt_key(a.assignment_id, a.attempt), None)

    def tick(self, seconds: float) -> None:
        """Time passes; the sweep runs."""
        self.clock.advance(seconds)
        self.planner.sweep()

    def report(self, sid: str) -> dict[str, Any]:
        """The stored report (its full view); the one rebuilt from the event log alone is the same."""
        data = self.stored_report(sid)
        assert data is not None, f"suite {sid} has no report"
        assert rebuild(self.store.events(sid), sid) == json.loads(data), "the log disagrees with the report"
        return expand(json.loads(data))


class MemoryWorld(World):
    """Over the stub store shipped in the package."""

    def __init__(self) -> None:
        self.memory = MemoryStore()
        super().__init__(self.memory)

    def _submit(self, spec: SuiteSpec) -> None:
        self.memory.submit(spec)

    def add_worker(self, name: str, slots: int = 1) -> None:
        self.memory.add_worker(WorkerInfo(name, "h", slots, "default", "local"))

    def hold_lease(self, sid: str, name: str, worker: str | None) -> None:
        self.memory.hold_lease(sid, name, worker)

    def stored_report(self, sid: str) -> str | None:
        return self.memory.report(sid)

    def peer(self, name: str) -> SuiteStore:
        return self.memory.peer(name)

    def release_orphaned(self, sid: str) -> None:
        assert self.memory.release_finish_claim(sid)  # what OrphanedClaims does over Redis


class RedisWorld(World):
    """Over a real redis-server, written as the client and the workers write it."""

    def __init__(self, url: str) -> None:
        self.r = redis.Redis.from_url(url)
        super().__init__(SuiteState(self.r, SETTINGS))

    def _submit(self, spec: SuiteSpec) -> None:
        self.r.hset(keys.suite(spec.suite_id), mapping={"spec": encode(spec), "status": "submitted",
                                                         "submitted_at": spec.submitted_at})
        self.r.zadd(keys.SUBMITTED, {spec.suite_id: spec.submitted_at})
        with self.r.pipeline() as pipe:
            events.append(pipe, spec.suite_id, events.submitted(spec), tests=0, ttl_s=SETTINGS.suite_ttl_s)
            pipe.execute()

    def add_worker(self, name: str, slots: int = 1) -> None:
        # Heartbeats are judged by the wall clock (farm.registry), not the test's.
        self.r.hset(keys.WORKERS, name, encode(WorkerInfo(name, "h", slots, "default", "local", seen_at=time.time())))

    def hold_lease(self, sid: str, name: str, worker: str | None) -> None:
        if worker is None:
            self.r.delete(keys.lease(sid, name))
            return
        self.r.set(keys.lease(sid, name), worker)
        if name == "collect":
            self.r.hset(keys.suite(sid), "collect_started", worker)

    def stored_report(self, sid: str) -> str | None:
        data = self.r.get(keys.report(sid))
        return None if data is None else data.decode()

    def peer(self, name: str) -> SuiteStore:
        return SuiteState(self.r, SETTINGS, name=name, clock=self.clock)

    def release_orphaned(self, sid: str) -> None:
        assert OrphanedClaims(self.r).release([sid]) == [sid]  # "1" never said it was alive


# --- the scenarios ----------------------------------------------------------------------------

TESTS = ("t.py::a", "t.py::b", "t.py::c")


def _planned(w: World, sid: str, tests: tuple[str, ...] = TESTS, **spec: Any) -> list[Assignment]:
    w.add_worker("w1@h")
    w.submit(sid, **spec)
    assert w.collects and w.collects[-1].suite_id == sid, "the collection was not published"
    w.collect(sid, tests)
    return [a for a in w.published if a.suite_id == sid]


def _outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {t["id"]: t["outcome"] for t in report["tests"]}


def _states(report: dict[str, Any]) -> list[tuple[int, str]]:
    return [(a["attempt"], a["state"]) for a in report["assignments"]]


def suite_runs_to_its_end(w: World) -> None:
    (a,) = _planned(w, "ok")
    w.run(a, "w1@h", lambda t: Outcome.FAILED if t.endswith("b") else Outcome.PASSED)
    report = w.report("ok")
    assert report["status"] == "finished" and report["exit_code"] == 1
    assert _outcomes(report) == {"t.py::a": "passed", "t.py::b": "failed", "t.py::c": "passed"}
    assert _states(report) == [(1, "done")]


def lost_worker_tests_run_again_and_count_once(w: World) -> None:
    (a,) = _planned(w, "lost")
    w.take(a, "w1@h")
    w.send(a, "w1@h", TestRecord("t.py::a", Outcome.PASSED))
    w.tick(1)
    assert w.store.attempt("lost", a.assignment_id, 1).state == "running"  # type: ignore[union-attr]
    w.hold_lease("lost", keys.attempt_key(a.assignment_id, 1), None)  # the worker died: its lease lapses
    w.tick(LEASE_S)
    again = w.published[-1]
    assert (again.attempt, again.test_ids) == (2, ("t.py::b", "t.py::c"))
    w.send(a, "w1@h", TestRecord("t.py::b", Outcome.FAILED))  # the lost attempt's late record: fenced
    assert "lost" in w.store.active_suites()
    w.run(again, "w2@h")
    report = w.report("lost")
    assert _outcomes(report) == dict.fromkeys(TESTS, "passed") and report["exit_code"] == 0
    assert _states(report) == [(1, "lost"), (2, "done")]
    (b,) = [t for t in report["tests"] if t["id"] == "t.py::b"]
    assert [(r["attempt"], r["fenced"]) for r in b["attempts"]] == [(1, True), (2, False)]


def duplicate_batches_count_once(w: World) -> None:
    (a,) = _planned(w, "dup")
    w.take(a, "w1@h")
    batch = [TestRecord(t, Outcome.PASSED, 0.1) for t in TESTS]
    w.send(a, "w1@h", *batch)
    w.send(a, "w1@h", *batch)  # redelivered
    w.complete(a, "w1@h")
    w.complete(a, "w1@h")  # redelivered
    report = w.report("dup")
    assert report["summary"]["passed"] == 3 and report["summary"]["total"] == 3


def a_completion_before_its_records_waits_for_them(w: World) -> None:
    (a,) = _planned(w, "reorder")
    w.take(a, "w1@h")
    w.complete(a, "w1@h", reported=3)  # overtook its records (another coordinator thread)
    w.tick(1)
    assert w.stored_report("reorder") is None, "the suite finished before the records it waited for"
    w.send(a, "w1@h", *(TestRecord(t, Outcome.PASSED) for t in TESTS))
    report = w.report("reorder")
    assert _outcomes(report) == dict.fromkeys(TESTS, "passed") and _states(report) == [(1, "done")]


def records_that_never_come_run_again_after_the_grace(w: World) -> None:
    (a,) = _planned(w, "gone")
    w.take(a, "w1@h")
    w.send(a, "w1@h", TestRecord("t.py::a", Outcome.PASSED))
    w.complete(a, "w1@h", reported=3)  # two of its batches were lost in a broker restart
    w.tick(COMPLETION_GRACE_S / 2)
    assert len(w.published) == 1, "ran again before the grace was over"
    w.tick(COMPLETION_GRACE_S)
    again = w.published[-1]
    assert (again.attempt, again.test_ids) == (2, ("t.py::b", "t.py::c"))
    w.run(again, "w1@h")
    report = w.report("gone")
    assert _outcomes(report) == dict.fromkeys(TESTS, "passed") and _states(report) == [(1, "handback"), (2, "done")]


def a_hand_back_runs_its_tests_elsewhere(w: World) -> None:
    (a,) = _planned(w, "back")
    w.add_worker("w2@h")
    w.take(a, "w1@h")
    w.send(a, "w1@h", TestRecord("t.py::a", Outcome.PASSED))
    w.complete(a, "w1@h", "handback", reported=1, message="vm lost", infrastructure=True)
    again = w.published[-1]
    assert (again.attempt, again.test_ids, again.avoid) == (2, ("t.py::b", "t.py::c"), ("w1@h",))
    w.run(again, "w2@h")
    report = w.report("back")
    assert _outcomes(report) == dict.fromkeys(TESTS, "passed")
    assert _states(report) == [(1, "handback"), (2, "done")]


def a_worker_lost_three_times_leaves_its_tests_not_run(w: World) -> None:
    (a,) = _planned(w, "doomed")
    for n in (1, 2, 3):
        current = w.published[-1]
        assert current.attempt == n
        w.take(current, f"w{n}@h")
        w.tick(1)
        w.hold_lease("doomed", keys.attempt_key(a.assignment_id, n), None)
        w.tick(LEASE_S)
    report = w.report("doomed")
    assert _outcomes(report) == dict.fromkeys(TESTS, "not_run") and report["exit_code"] == 3
    assert "lost 3 times" in report["tests"][0]["message"]


def the_deadline_ends_a_suite_whose_worker_hangs(w: World) -> None:
    (a,) = _planned(w, "late", deadline_s=30.0)
    assert a.deadline_at == T0 + 30.0
    w.take(a, "w1@h")
    w.send(a, "w1@h", TestRecord("t.py::a", Outcome.PASSED))
    w.tick(29)
    assert w.stored_report("late") is None
    w.tick(1 + LEASE_S + COMPLETION_GRACE_S + 1)  # past the deadline and the grace workers get
    report = w.report("late")
    assert report["status"] == "deadline" and report["exit_code"] == 2
    assert _outcomes(report) == {"t.py::a": "passed", "t.py::b": "not_run", "t.py::c": "not_run"}


def a_lost_attempt_is_not_run_again_too_late_for_the_deadline(w: World) -> None:
    (a,) = _planned(w, "tight", deadline_s=12.0)
    w.take(a, "w1@h")
    w.tick(1)
    w.hold_lease("tight", keys.attempt_key(a.assignment_id, 1), None)
    w.tick(LEASE_S + 1)  # lost at T0+12: no time left to run it again
    assert len(w.published) == 1
    report = w.report("tight")
    assert report["status"] == "deadline"
    assert "no time left" in report["tests"][0]["message"]


def cancel_waits_for_running_attempts_then_ends(w: World) -> None:
    (a,) = _planned(w, "stop")
    w.take(a, "w1@h")
    w.send(a, "w1@h", TestRecord("t.py::a", Outcome.PASSED))
    w.cancel("stop")
    w.tick(CANCEL_GRACE_S / 2)
    assert w.stored_report("stop") is None, "canceled before its running attempt could report"
    w.tick(CANCEL_GRACE_S)  # its worker hangs: what did not run, did not run
    assert w.stored_report("stop") is None, "finished before the completion grace"
    w.tick(COMPLETION_GRACE_S + 1)
    report = w.report("stop")
    assert report["status"] == "canceled" and report["exit_code"] == 2
    assert _outcomes(report) == {"t.py::a": "passed", "t.py::b": "not_run", "t.py::c": "not_run"}


def cancel_before_collection_ends_at_once(w: World) -> None:
    w.add_worker("w1@h")
    w.submit("early")
    w.cancel("early")
    report = w.report("early")
    assert report["status"] == "canceled" and report["tests"] == []


def a_crashed_test_runs_once_more_on_another_worker(w: World) -> None:
    (a,) = _planned(w, "crash")
    w.add_worker("w2@h")
    w.run(a, "w1@h", lambda t: Outcome.CRASHED if t.endswith("b") else Outcome.PASSED)
    retry = w.published[-1]
    assert (retry.assignment_id, retry.test_ids, retry.avoid) == ("crash-c01", ("t.py::b",), ("w1@h",))
    assert w.stored_report("crash") is None
    w.run(retry, "w2@h")
    report = w.report("crash")
    (b,) = [t for t in report["tests"] if t["id"] == "t.py::b"]
    assert b["outcome"] == "passed" and b["blame"] == "worker" and report["exit_code"] == 0


def rerun_failures_makes_a_flaky_test(w: World) -> None:
    (a,) = _planned(w, "flaky", rerun_failures=1)
    w.run(a, "w1@h", lambda t: Outcome.FAILED if t.endswith("c") else Outcome.PASSED)
    rerun = w.published[-1]
    assert (rerun.assignment_id, rerun.test_ids) == ("flaky-r01", ("t.py::c",))
    w.run(rerun, "w1@h")
    report = w.report("flaky")
    assert _outcomes(report)["t.py::c"] == "flaky" and report["exit_code"] == 0


def a_lost_collection_is_published_again_then_given_up(w: World) -> None:
    w.add_worker("w1@h")
    w.submit("nocollect")
    for n in (1, 2, 3):
        assert len(w.collects) == n
        w.hold_lease("nocollect", "collect", f"w{n}@h")
        w.tick(1)
        w.hold_lease("nocollect", "collect", None)
        w.tick(LEASE_S)
    report = w.report("nocollect")
    assert report["status"] == "error" and report["exit_code"] == 3


def an_unclaimed_attempt_is_published_again_once_its_queue_is_empty(w: World) -> None:
    (a,) = _planned(w, "unclaimed")
    w.queue_length = 1  # still waiting on the queue: not lost
    w.tick(4 * LEASE_S)
    assert len(w.published) == 1
    w.queue_length = 0  # the queue emptied and nobody took it: its message was lost
    w.tick(1)
    assert [(p.assignment_id, p.attempt) for p in w.published] == [(a.assignment_id, 1)] * 2
    w.run(w.published[-1], "w1@h")
    assert w.report("unclaimed")["exit_code"] == 0


def the_broker_is_asked_a_pools_queue_length_once_a_sweep(w: World) -> None:
    """Assignments waiting on the queue longer than a lease are each an unclaimed tick at every
    sweep: the broker (a new connection each time) is asked once per pool, not once per attempt,
    while its answer stands; lost messages are all published again in one sweep (review: one a
    sweep took 256 s to recover 256 lost messages with idle workers)."""
    for name in ("w1@h", "w2@h", "w3@h"):
        w.add_worker(name)
    w.submit("waiting")
    w.collect("waiting", tuple(f"t.py::t{i:02d}" for i in range(30)))
    planned = [a for a in w.published if a.suite_id == "waiting"]
    assert len(planned) >= 2, planned
    asked: list[str] = []

    def length(pool: str) -> int:
        asked.append(pool)
        return len(planned)  # all of them still wait on the queue

    w.planner.queue_length = length
    w.clock.advance(4 * LEASE_S)
    w.planner.sweep()
    assert asked == ["default"] and len(w.published) == len(planned)
    # The queue emptied and nobody took them: every message lost; the idle workers take each one
    # published again at once, so the queue stays empty: all are published again in one sweep.
    asked.clear()
    w.planner.queue_length = lambda pool: asked.append(pool) or 0  # type: ignore[func-returns-value]
    w.tick(1)
    assert sorted(p.assignment_id for p in w.published[len(planned):]) == sorted(a.assignment_id for a in planned)
    assert len(asked) == len(planned)  # asked again after each publish, never once per waiting attempt
    w.planner.queue_length = lambda pool: 1  # unclaimed again, but one message waits: nothing more
    w.clock.advance(4 * LEASE_S)
    w.tick(1)
    assert len(w.published) == 2 * len(planned)


def maxfail_stops_the_suite_and_nothing_runs_again(w: World) -> None:
    forty = tuple(f"t.py::t{i:02d}" for i in range(40))
    for name in ("w1@h", "w2@h"):
        w.add_worker(name)
    w.submit("maxfail", rerun_failures=2)
    w.collect("maxfail", forty, session=SessionInfo(maxfail=1, python="3.11.2"))
    a, b = w.published
    w.take(a, "w1@h")
    w.take(b, "w2@h")
    w.send(a, "w1@h", TestRecord(a.test_ids[0], Outcome.FAILED))
    assert w.store.stop_reason("maxfail") == "stopped after 1 failures"
    w.complete(a, "w1@h", "stopped", reported=1, message="stopped after 1 failures")
    w.complete(b, "w2@h", "stopped", reported=0, message="stopped after 1 failures")
    report = w.report("maxfail")
    assert len(w.published) == 2, "a stopped suite ran tests again (rerun or retry)"
    assert report["summary"]["failed"] == 1 and report["summary"]["not_run"] == 39
    assert report["stopped"] == "stopped after 1 failures" and report["exit_code"] == 1


def a_restarted_coordinator_publishes_what_a_dead_one_planned(w: World) -> None:
    w.add_worker("w1@h")
    w.submit("restart")
    w.broker_down = True
    try:
        w.collect("restart", TESTS)  # planned, then the coordinator dies publishing
    except ConnectionError:
        pass
    assert w.published == []
    w.broker_down = False
    w.planner = w.start_coordinator()
    assert w.planner.reconcile() == 1
    (a,) = w.published
    w.run(a, "w1@h")
    assert w.report("restart")["exit_code"] == 0


SCENARIOS = [
    the_broker_is_asked_a_pools_queue_length_once_a_sweep,
    a_restarted_coordinator_publishes_what_a_dead_one_planned,
    suite_runs_to_its_end,
    lost_worker_tests_run_again_and_count_once,
    duplicate_batches_count_once,
    a_completion_before_its_records_waits_for_them,
    records_that_never_come_run_again_after_the_grace,
    a_hand_back_runs_its_tests_elsewhere,
    a_worker_lost_three_times_leaves_its_tests_not_run,
    the_deadline_ends_a_suite_whose_worker_hangs,
    a_lost_attempt_is_not_run_again_too_late_for_the_deadline,
    cancel_waits_for_running_attempts_then_ends,
    cancel_before_collection_ends_at_once,
    a_crashed_test_runs_once_more_on_another_worker,
    rerun_failures_makes_a_flaky_test,
    a_lost_collection_is_published_again_then_given_up,
    an_unclaimed_attempt_is_published_again_once_its_queue_is_empty,
    maxfail_stops_the_suite_and_nothing_runs_again,
]
