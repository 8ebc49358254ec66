"""The coordinator's Planner against a real redis-server, with Celery publishing recorded.

The real publishing path is covered by test_pipeline.py; here the order of messages is chosen
by the test, to reproduce the reorderings the coordinator's threads can produce.
"""

from __future__ import annotations

import json
import time

import redis
from celery import Celery

from coordinator.peers import OrphanedClaims
from coordinator.planner import Planner
from coordinator.state import SuiteState
from coordinator.tasks import register
from farm import keys, signing
from farm.celery_app import CANCEL_SUITE, SUITE_SUBMITTED
from farm.config import Settings
from farm.model import Assignment, Collection, Completion, RecordBatch, SessionInfo, SuiteSpec, TestRecord, WorkerInfo
from farm.outcomes import Outcome
from farm.protocol import encode
from farm.report.schema import expand


class Published:
    """Records what the planner would publish on the pools' queues."""

    def __init__(self) -> None:
        self.collects: list[SuiteSpec] = []
        self.assignments: list[Assignment] = []

    def collect(self, spec: SuiteSpec) -> None:
        self.collects.append(spec)

    def assignment(self, pool: str, a: Assignment) -> None:
        self.assignments.append(a)


def _planner(url: str) -> tuple[Planner, SuiteState, Published]:
    settings = Settings(broker_url=url)
    state = SuiteState(redis.Redis.from_url(url), settings)
    state.r.hset(keys.WORKERS, "w@h", encode(WorkerInfo("w@h", "h", 1, "default", "local")))
    published = Published()
    return Planner(state, settings, published.collect, published.assignment), state, published


def _submit(state: SuiteState, planner: Planner, sid: str) -> None:
    spec = SuiteSpec(sid, "proj", "0" * 64, "default", "load", (), time.time())
    state.r.hset(keys.suite(sid), mapping={"spec": encode(spec), "status": "submitted",
                                           "submitted_at": spec.submitted_at})
    planner.submitted(sid)


def _report(state: SuiteState, sid: str) -> dict:
    data = state.r.get(keys.report(sid))
    assert data is not None, "the suite has no report"
    return expand(json.loads(data))


def test_a_completion_that_overtakes_its_records_waits_for_them(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _submit(state, planner, "s1")
    planner.collected(Collection("s1", "w@h", 0, ("t.py::a", "t.py::b")))
    (a,) = published.assignments
    now = time.time()
    # The completion (2 records sent) is handled before the batch that carries them.
    planner.completed(Completion("s1", a.assignment_id, 1, "w@h", "local:h", "done", now, now + 1, 1, 2))
    assert state.counts("s1") == {}, "tests were given up on before their records arrived"
    assert state.field("s1", "status") == "running"
    planner.records(RecordBatch("s1", a.assignment_id, 1, "w@h", "local:h", (
        TestRecord("t.py::a", Outcome.PASSED, 0.1), TestRecord("t.py::b", Outcome.FAILED, 0.2))))
    report = _report(state, "s1")
    assert report["summary"]["passed"] == 1 and report["summary"]["failed"] == 1
    assert report["summary"]["not_run"] == 0 and report["exit_code"] == 1
    assert report["assignments"][0]["state"] == "done"


def test_tests_whose_records_never_come_are_run_again_after_the_grace(redis_url: str, monkeypatch) -> None:
    """A completion says 1 record was sent; it never arrives (lost in a broker crash): after the
    grace the test is queued again as attempt 2, and counted once, from attempt 2."""
    import coordinator.deadlines as deadlines

    monkeypatch.setattr(deadlines, "COMPLETION_GRACE_S", 0.2)
    planner, state, published = _planner(redis_url)
    _submit(state, planner, "s2")
    planner.collected(Collection("s2", "w@h", 0, ("t.py::a",)))
    (a,) = published.assignments
    now = time.time()
    planner.completed(Completion("s2", a.assignment_id, 1, "w@h", "local:h", "done", now, now, 0, 1))
    time.sleep(0.3)
    planner.sweep()
    assert state.field("s2", "status") == "running"
    again = published.assignments[-1]
    assert (again.assignment_id, again.attempt, again.test_ids) == (a.assignment_id, 2, ("t.py::a",))
    planner.records(RecordBatch("s2", a.assignment_id, 2, "w@h", "local:h", (TestRecord("t.py::a", Outcome.PASSED),)))
    planner.completed(Completion("s2", a.assignment_id, 2, "w@h", "local:h", "done", now, now, 0, 1))
    report = _report(state, "s2")
    assert report["summary"]["passed"] == 1 and report["exit_code"] == 0
    states = {(r["id"], r["attempt"]): r["state"] for r in report["assignments"]}
    assert states == {(a.assignment_id, 1): "handback", (a.assignment_id, 2): "done"}


def test_a_failed_runner_leaves_its_unrun_tests_not_run(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _submit(state, planner, "s2b")
    planner.collected(Collection("s2b", "w@h", 0, ("t.py::a",)))
    (a,) = published.assignments
    now = time.time()
    planner.completed(Completion("s2b", a.assignment_id, 1, "w@h", "local:h", "failed", now, now, -9, 0,
                                 "runner exited with code -9"))
    report = _report(state, "s2b")
    assert report["tests"][0]["outcome"] == "not_run"
    assert "runner exited with code -9" in report["tests"][0]["message"]
    assert report["exit_code"] == 3  # the farm failed to run a test: an infrastructure error


def test_a_suite_of_only_a_module_level_skip_exits_5_like_pytest(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _submit(state, planner, "s3")
    skip = TestRecord("t_skip.py", Outcome.SKIPPED, phase="collect", message="whole module skipped")
    planner.collected(Collection("s3", "w@h", 5, (), (skip,)))
    report = _report(state, "s3")
    assert report["exit_code"] == 5 and report["summary"]["skipped"] == 1
    assert published.assignments == []


def test_collection_delivered_twice_publishes_assignments_once(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _submit(state, planner, "s4")
    collection = Collection("s4", "w@h", 0, tuple(f"t.py::t{i}" for i in range(50)))
    planner.collected(collection)
    first = len(published.assignments)
    planner.collected(collection)
    assert first >= 1 and len(published.assignments) == first


def test_an_attempt_whose_completion_is_held_is_not_taken_for_lost(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _submit(state, planner, "s5")
    planner.collected(Collection("s5", "w@h", 0, ("t.py::a", "t.py::b")))
    (a,) = published.assignments
    planner.records(RecordBatch("s5", a.assignment_id, 1, "w@h", "local:h", ()))  # running; no lease held
    now = time.time()
    planner.completed(Completion("s5", a.assignment_id, 1, "w@h", "local:h", "done", now, now + 1, 0, 2))
    planner.sweep()  # the lease is gone, but the attempt ended: its records are on their way
    assert len(published.assignments) == 1, "a finished attempt was run again"
    planner.records(RecordBatch("s5", a.assignment_id, 1, "w@h", "local:h", (
        TestRecord("t.py::a", Outcome.PASSED), TestRecord("t.py::b", Outcome.PASSED))))
    assert _report(state, "s5")["summary"]["passed"] == 2


def test_an_attempt_that_ends_late_never_unmarks_its_successor(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _submit(state, planner, "s6")
    planner.collected(Collection("s6", "w@h", 0, ("t.py::a",)))
    (a,) = published.assignments
    planner.records(RecordBatch("s6", a.assignment_id, 1, "w@h", "local:h", ()))
    planner.sweep()  # no lease: attempt 1 is lost, attempt 2 is published
    assert [x.attempt for x in published.assignments] == [1, 2]
    now = time.time()
    planner.completed(Completion("s6", a.assignment_id, 1, "w@h", "local:h", "done", now, now, 0, 0))
    assert state.r.hget(keys.current("s6"), a.assignment_id) == b"2"  # workers still take attempt 2
    assert state.attempt("s6", a.assignment_id, 1).state == "lost"


def _forget(state: SuiteState, sid: str) -> None:
    """Take a suite out of the sweeper's view (other tests share this Redis)."""
    state.r.srem(keys.ACTIVE, sid)
    state.r.zrem(keys.SUBMITTED, sid)


def test_a_suite_whose_submitted_message_was_lost_is_taken_up_by_the_sweeper(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    spec = SuiteSpec("s7", "proj", "0" * 64, "default", "load", (), time.time() - 100)
    state.r.hset(keys.suite("s7"), mapping={"spec": encode(spec), "status": "submitted",
                                            "submitted_at": spec.submitted_at})
    state.r.zadd(keys.SUBMITTED, {"s7": spec.submitted_at})  # as the client does; no message follows
    try:
        planner.sweep()
        assert [c.suite_id for c in published.collects].count("s7") == 1
        assert state.field("s7", "status") == "collecting"
        assert state.r.zscore(keys.SUBMITTED, "s7") is None
        planner.sweep()  # taken up once
        assert [c.suite_id for c in published.collects].count("s7") == 1
    finally:
        _forget(state, "s7")


def test_an_attempt_planned_but_never_published_is_published_by_the_sweeper(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url, lease_s=0.1)
    state = SuiteState(redis.Redis.from_url(redis_url), settings)
    state.r.hset(keys.WORKERS, "w@h", encode(WorkerInfo("w@h", "h", 1, "default", "local")))
    published = Published()
    broker_down = [True]

    def publish(pool: str, a: Assignment) -> None:
        if broker_down[0]:
            raise ConnectionError("the broker is away")
        published.assignment(pool, a)

    planner = Planner(state, settings, published.collect, publish)
    _submit(state, planner, "s8")
    try:
        try:
            planner.collected(Collection("s8", "w@h", 0, ("t.py::a", "t.py::b")))
        except ConnectionError:
            pass  # the handler failed after planning: nothing was published
        assert published.assignments == []
        broker_down[0] = False
        time.sleep(0.4)  # more than 3 lease periods
        planner.sweep()
        (a,) = published.assignments
        assert (a.attempt, a.test_ids) == (1, ("t.py::a", "t.py::b"))
        assert state.attempt("s8", a.assignment_id, 1).published_at > 0
    finally:
        _forget(state, "s8")


def test_reconcile_finishes_a_suite_whose_finalization_a_dead_coordinator_claimed(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _submit(state, planner, "s9")
    planner.collected(Collection("s9", "w@h", 0, ("t.py::a",)))
    (a,) = published.assignments
    state.r.hset(keys.suite("s9"), "finalized", 1)  # claimed by a coordinator killed before it stored the report
    now = time.time()
    planner.records(RecordBatch("s9", a.assignment_id, 1, "w@h", "local:h", (TestRecord("t.py::a", Outcome.PASSED),)))
    planner.completed(Completion("s9", a.assignment_id, 1, "w@h", "local:h", "done", now, now, 0, 1))
    assert state.r.get(keys.report("s9")) is None
    OrphanedClaims(state.r).release(state.active_suites())  # what a coordinator does on start, and each sweep
    planner.reconcile()
    report = _report(state, "s9")
    assert report["summary"]["passed"] == 1 and report["exit_code"] == 0


def test_a_rerun_and_the_finalization_never_interleave(redis_url: str) -> None:
    """The same completion handled by 4 threads at once (a redelivery, a sweep): one starts the
    rerun of the failed test, and none may finish the suite with that test still pending."""
    import threading

    planner, state, published = _planner(redis_url)
    for i in range(15):
        sid = f"race{i}"
        spec = SuiteSpec(sid, "proj", "0" * 64, "default", "load", (), time.time(), rerun_failures=1)
        state.r.hset(keys.suite(sid), mapping={"spec": encode(spec), "status": "submitted",
                                               "submitted_at": spec.submitted_at})
        planner.submitted(sid)
        planner.collected(Collection(sid, "w@h", 0, ("t.py::a", "t.py::b")))
        a = published.assignments[-1]
        planner.records(RecordBatch(sid, a.assignment_id, 1, "w@h", "local:h", (
            TestRecord("t.py::a", Outcome.FAILED), TestRecord("t.py::b", Outcome.PASSED))))
        now = time.time()
        completion = Completion(sid, a.assignment_id, 1, "w@h", "local:h", "done", now, now, 1, 2)
        barrier = threading.Barrier(4)

        def deliver(barrier: threading.Barrier = barrier, completion: Completion = completion) -> None:
            barrier.wait()
            planner.completed(completion)

        threads = [threading.Thread(target=deliver) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert state.r.get(keys.report(sid)) is None, f"{sid} finished while its rerun was pending"
        reruns = [x for x in published.assignments if x.suite_id == sid and x.assignment_id.endswith("-r01")]
        assert len(reruns) == 1 and reruns[0].test_ids == ("t.py::a",)
        planner.records(RecordBatch(sid, reruns[0].assignment_id, 1, "w@h", "local:h",
                                    (TestRecord("t.py::a", Outcome.PASSED),)))
        planner.completed(Completion(sid, reruns[0].assignment_id, 1, "w@h", "local:h", "done", now, now, 0, 1))
        report = _report(state, sid)
        assert report["summary"]["flaky"] == 1 and report["exit_code"] == 0


def test_tests_handed_back_by_a_failed_environment_avoid_its_worker(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _submit(state, planner, "s10")
    try:
        planner.collected(Collection("s10", "w@h", 0, ("t.py::a", "t.py::b")))
        (a,) = published.assignments
        now = time.time()
        planner.records(RecordBatch("s10", a.assignment_id, 1, "w@h", "vm:farm-1", (TestRecord("t.py::a",
                                                                                             Outcome.PASSED),)))
        planner.completed(Completion("s10", a.assignment_id, 1, "w@h", "vm:farm-1", "handback", now, now, -1, 1,
                                     "worker error on w@h: vm:farm-1: lost\nKernel panic - not syncing",
                                     infrastructure=True))
        again = published.assignments[-1]
        assert (again.attempt, again.test_ids, again.avoid) == (2, ("t.py::b",), ("w@h",))
        # A hand-back that is not the environment's fault (the worker stopping) avoids no one.
        planner.completed(Completion("s10", a.assignment_id, 2, "w@h", "vm:farm-2", "handback", now, now, -1, 0,
                                     "w@h stopped before the assignment ended"))
        assert published.assignments[-1].avoid == ("w@h",), "the avoid list of attempt 2 is kept"
        tries = {a.number: a for a in state.attempts("s10")}
        assert "Kernel panic - not syncing" in tries[1].message, "the console excerpt reaches the report"
    finally:
        _forget(state, "s10")


# --- -x / --maxfail: suite-wide ----------------------------------------------------------------

FOUR = ("t.py::a", "t.py::b", "t.py::c", "t.py::d")


def _maxfail_suite(state: SuiteState, planner: Planner, sid: str, args: tuple[str, ...] = (),
                   session: SessionInfo | None = None, rerun_failures: int = 0) -> None:
    state.r.hset(keys.WORKERS, "w@h", encode(WorkerInfo("w@h", "h", 2, "default", "local", seen_at=time.time())))
    spec = SuiteSpec(sid, "proj", "0" * 64, "default", "load", args, time.time(), rerun_failures=rerun_failures)
    state.r.hset(keys.suite(sid), mapping={"spec": encode(spec), "status": "submitted",
                                           "submitted_at": spec.submitted_at})
    planner.submitted(sid)
    planner.collected(Collection(sid, "w@h", 0, FOUR, session=session or SessionInfo()))


def test_the_nth_failure_anywhere_in_the_suite_stops_it_and_nothing_runs_again(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _maxfail_suite(state, planner, "m1", session=SessionInfo(maxfail=2, python="3.11.2"), rerun_failures=2)
    a1, a2 = published.assignments
    assert (a1.test_ids, a2.test_ids) == (FOUR[:2], FOUR[2:])
    planner.records(RecordBatch("m1", a1.assignment_id, 1, "w@h", "n", (TestRecord(FOUR[0], Outcome.FAILED),)))
    assert state.stop_reason("m1") == "", "one failure of two allowed stopped the suite"
    planner.records(RecordBatch("m1", a2.assignment_id, 1, "w@h", "n", (TestRecord(FOUR[2], Outcome.ERROR),)))
    assert state.stop_reason("m1") == "stopped after 2 failures"
    now = time.time()
    for a in (a1, a2):
        planner.completed(Completion("m1", a.assignment_id, 1, "w@h", "n", "stopped", now, now, -15, 1,
                                     "stopped after 2 failures"))
    report = _report(state, "m1")
    assert [a.assignment_id for a in published.assignments] == [a1.assignment_id, a2.assignment_id], \
        "a rerun was published after the stop"
    outcomes = {t["id"]: (t["outcome"], t["message"]) for t in report["tests"]}
    assert outcomes[FOUR[1]] == outcomes[FOUR[3]] == ("not_run", "stopped after 2 failures")
    assert report["exit_code"] == 1 and report["status"] == "finished"
    assert report["stopped"] == "stopped after 2 failures"


def test_without_a_report_from_the_worker_maxfail_is_read_from_the_args(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _maxfail_suite(state, planner, "m2", args=("-x", "tests"))
    planner.records(RecordBatch("m2", published.assignments[0].assignment_id, 1, "w@h", "n",
                                (TestRecord(FOUR[0], Outcome.CRASHED),)))  # crashes count
    assert state.stop_reason("m2") == "stopped after 1 failures"


def test_a_suite_without_maxfail_never_stops(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _maxfail_suite(state, planner, "m3", session=SessionInfo(python="3.11.2"))
    a1 = published.assignments[0]
    planner.records(RecordBatch("m3", a1.assignment_id, 1, "w@h", "n",
                                tuple(TestRecord(t, Outcome.FAILED) for t in FOUR[:2])))
    assert state.stop_reason("m3") == ""


def test_an_attempt_lost_after_the_stop_is_not_run_again(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _maxfail_suite(state, planner, "m4", session=SessionInfo(maxfail=1, python="3.11.2"))
    a1, a2 = published.assignments
    planner.records(RecordBatch("m4", a1.assignment_id, 1, "w@h", "n", (TestRecord(FOUR[0], Outcome.TIMEOUT),)))
    attempt = state.attempt("m4", a2.assignment_id, 1)
    assert attempt is not None
    planner.lost("m4", attempt)  # its worker died after the stop
    assert len(published.assignments) == 2, "a lost attempt was published again after the stop"
    assert [state.r.hget(keys.outcomes("m4"), t) for t in FOUR[2:]] == [b"not_run", b"not_run"]


def test_a_suite_canceled_before_any_worker_collects_it_ends_at_once(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _submit(state, planner, "s1")
    assert state.field("s1", "status") == "collecting" and published.collects, "the collection was not published"
    state.request_cancel("s1", time.time())  # the client flags it, then tells the coordinator
    planner.cancel("s1")
    assert _report(state, "s1")["status"] == "canceled"
    assert "s1" not in state.active_suites()


def test_bare_submitter_messages_not_from_a_submitter_change_nothing(redis_url: str) -> None:
    """farm.cancel_suite and farm.suite_submitted are not signed (docs/operations.md, Message
    signing): the coordinator acts on a cancel only once the suite is flagged canceled, and on a
    submission only of a suite that is stored."""
    planner, state, published = _planner(redis_url)
    app = Celery("farm", broker="memory://", set_as_current=False)
    register(app, planner, signing.Keyring(signing.parse(signing.generate_secret(), "test")))
    _submit(state, planner, "s1")
    logged = len(state.events("s1"))
    app.tasks[CANCEL_SUITE]("s1")  # forged: the suite was never flagged canceled
    assert state.field("s1", "cancel") is None and state.field("s1", "status") == "collecting"
    assert len(state.events("s1")) == logged and "s1" in state.active_suites()
    app.tasks[SUITE_SUBMITTED]("nosuch")
    assert not state.r.exists(keys.suite("nosuch")) and len(published.collects) == 1
    state.request_cancel("s1", time.time())  # as farm.client does before it sends the message
    app.tasks[CANCEL_SUITE]("s1")
    assert _report(state, "s1")["status"] == "canceled"


def test_a_suite_canceled_while_a_worker_collects_it_ends_after_the_grace(redis_url: str, monkeypatch) -> None:
    """The sweeper must not skip the cancel check of a collecting suite (it used to `continue`)."""
    import coordinator.deadlines as deadlines

    planner, state, _ = _planner(redis_url)
    _submit(state, planner, "s1")
    state.r.hset(keys.suite("s1"), "collect_started", "w@h")
    state.r.set(keys.lease("s1", "collect"), "w@h", px=60_000)  # the collection runs, its lease held
    state.request_cancel("s1", time.time())  # the client flags it, then tells the coordinator
    planner.cancel("s1")
    planner.sweep()
    assert state.field("s1", "status") == "collecting", "ended before its collection had the grace to report"
    monkeypatch.setattr(deadlines, "CANCEL_GRACE_S", 0.0)
    planner.sweep()
    assert _report(state, "s1")["status"] == "canceled"
    assert "s1" not in state.active_suites()
    # The collection reports late: the suite stays canceled.
    planner.collected(Collection("s1", "w@h", 0, ("t.py::a",)))
    assert _report(state, "s1")["status"] == "canceled"


def test_an_attempt_the_sweep_saw_running_before_its_first_batch_learns_its_node(redis_url: str) -> None:
    """The sweep can see an attempt's lease before its first batch arrives: it is then `claimed`
    with no node, and the first batch must still fill the node in and log `started`."""
    from farm import events as eventlog

    planner, state, published = _planner(redis_url)
    _submit(state, planner, "s10")
    planner.collected(Collection("s10", "w@h", 0, ("t.py::a", "t.py::b")))
    (a,) = published.assignments
    state.r.set(keys.lease("s10", keys.attempt_key(a.assignment_id, 1)), "w@h", px=60_000)
    try:
        planner.sweep()
        claimed = state.attempt("s10", a.assignment_id, 1)
        assert claimed is not None and claimed.state == "running" and claimed.node == ""
        planner.records(RecordBatch("s10", a.assignment_id, 1, "w@h", "local:h", (
            TestRecord("t.py::a", Outcome.PASSED, 0.1),)))
        got = state.attempt("s10", a.assignment_id, 1)
        assert got is not None and got.node == "local:h" and got.worker == "w@h"
        kinds = [eventlog.unpack(fields[b"e"]).kind for _, fields in state.r.xrange(keys.events("s10"))]
        assert kinds.index("claimed") < kinds.index("started") < kinds.index("records"), kinds
        assert kinds.count("started") == 1
    finally:
        state.r.delete(keys.lease("s10", keys.attempt_key(a.assignment_id, 1)))
        _forget(state, "s10")


def test_planning_publishes_param_positions_without_reading_the_order_back(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    _submit(state, planner, "s-pos")
    reads: list[str] = []
    stored_order = state.order

    def order(sid: str) -> list[str]:
        reads.append(sid)
        return stored_order(sid)

    state.order = order  # type: ignore[method-assign]
    ids = ("t.py::f[a]", "t.py::plain", "t.py::f[b]", "u.py::g[1]")
    planner.collected(Collection("s-pos", "w@h", 0, ids))
    assert reads == [], "the planner read back the order it had just stored"
    positions = {t: (i, n) for a in published.assignments
                 for t, i, n in zip(a.test_ids, a.param_index, a.param_count, strict=True)}
    assert positions == {"t.py::f[a]": (0, 2), "t.py::plain": (-1, 0), "t.py::f[b]": (1, 2), "u.py::g[1]": (0, 1)}
