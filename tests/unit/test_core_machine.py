"""The suite machine's rules and the deadline arithmetic, pure (no store, no clock)."""

from __future__ import annotations

from coordinator import deadlines, machine, transitions
from coordinator.aggregate import PENDING
from farm.attempts import Attempt
from farm.config import Settings
from farm.model import Collection, Completion, SessionInfo, SuiteSpec, TestRecord
from farm.outcomes import Outcome
from farm.states import AttemptState, SuiteStatus

T0 = 1_800_000_000.0
SETTINGS = Settings(broker_url="redis://unused", lease_s=10.0, max_attempts=3)


def _spec(deadline_s: float = 0.0) -> SuiteSpec:
    return SuiteSpec("s", "p", "0" * 64, "default", "load", (), T0, deadline_s=deadline_s)


def _completion(state: str, *, message: str = "", infrastructure: bool = False) -> Completion:
    return Completion("s", "s-a000", 1, "w1@h", "n", state, T0, T0 + 1, 0, 0, message, infrastructure)


def test_deadline_arithmetic() -> None:
    assert deadlines.deadline_at(_spec()) == 0.0 and not deadlines.reached(_spec(), T0 + 10**6)
    spec = _spec(60.0)
    assert deadlines.deadline_at(spec) == T0 + 60
    assert not deadlines.reached(spec, T0 + 59.9) and deadlines.reached(spec, T0 + 60)
    assert deadlines.too_late_to_retry(spec, T0 + 50, expected_s=10) and not deadlines.too_late_to_retry(
        spec, T0 + 50, expected_s=9)
    # The sweep gives workers a lease and the completion grace past the deadline to report.
    assert not deadlines.sweep_ends_suite(spec, T0 + 60 + 10 + deadlines.COMPLETION_GRACE_S, lease_s=10)
    assert deadlines.sweep_ends_suite(spec, T0 + 60 + 10 + deadlines.COMPLETION_GRACE_S + 0.1, lease_s=10)


def test_an_assignment_budget_is_a_multiple_of_its_durations_above_a_floor() -> None:
    assert deadlines.budget(_spec(), 100.0, SETTINGS) == 0.0  # no suite deadline: no budget
    assert deadlines.budget(_spec(60), 0.0, SETTINGS) == 0.0  # no durations known
    assert deadlines.budget(_spec(60), 1.0, SETTINGS) == SETTINGS.assignment_deadline_min_s
    assert deadlines.budget(_spec(60), 100.0, SETTINGS) == 100.0 * SETTINGS.assignment_deadline_factor


def test_an_unclaimed_attempt_is_republished_only_after_three_leases() -> None:
    assert not deadlines.unclaimed_too_long(T0, T0 + 30, lease_s=10)
    assert deadlines.unclaimed_too_long(T0, T0 + 30.1, lease_s=10)
    assert not deadlines.never_published_too_long(0.0, T0, lease_s=10)  # no plan time: from now on


def test_the_ending_of_an_attempt_decides_its_pending_tests() -> None:
    assert machine.attempt_ended(_completion("done"), []) is None
    assert machine.attempt_ended(_completion("done"), ["t"]) == machine.NotRun(machine.ENDED_EARLY)
    assert machine.attempt_ended(_completion("deadline"), ["t"]) == machine.NotRun(machine.DEADLINE_NOT_RUN)
    assert machine.attempt_ended(_completion("failed", message="runner exited with code -9\ntail"), ["t"]) == \
        machine.NotRun("runner exited with code -9")
    assert machine.attempt_ended(_completion("handback", infrastructure=True), ["t"]) == \
        machine.RunAgain("handed back", AttemptState.HANDBACK, avoid="w1@h", from_state=AttemptState.HANDBACK)
    again = machine.attempt_ended(_completion("done"), ["t"], records_lost=2)
    assert isinstance(again, machine.RunAgain) and again.avoid == "" and again.from_state == AttemptState.DONE
    # Canceled: records lost on the way do not bring its tests back.
    assert isinstance(machine.attempt_ended(_completion("canceled"), ["t"], records_lost=2), machine.NotRun)


def test_give_up_counts_losses_not_hand_backs() -> None:
    lost = [Attempt("s-a000", n, AttemptState.LOST, ("t",)) for n in (1, 2, 3)]
    new = Attempt.planned("s-a000", 4, ["t"], now=T0)
    kwargs = {"settings": SETTINGS, "canceled": False, "stop": "", "too_late": False}
    assert "lost 3 times" in machine.give_up(new, lost, **kwargs)
    back = [a.but(state=AttemptState.HANDBACK) for a in lost]
    assert machine.give_up(new, back, **kwargs) == ""
    assert "stopped 10 times" in machine.give_up(new.but(number=11), back, **kwargs)
    assert machine.give_up(new, [], **{**kwargs, "canceled": True}) == "suite canceled"


def test_the_sweep_classifies_each_attempt() -> None:
    queued = Attempt.planned("s-a000", 1, ["t"], now=T0).but(published_at=T0)
    running = queued.but(assignment_id="s-a001", state=AttemptState.RUNNING)
    waiting = running.but(assignment_id="s-a002", waiting_completion=b"x", waiting_since=T0)
    ticks = machine.classify([queued, running, waiting], {}, now=T0 + 1, lease_s=10)
    assert [(t.kind, t.attempt.assignment_id) for t in ticks] == [("lost", "s-a001")]
    ticks = machine.classify([queued, running, waiting], {queued.key: "w1@h", running.key: "w2@h"},
                             now=T0 + 31, lease_s=10)
    assert [(t.kind, t.holder) for t in ticks] == [("running", "w1@h"), ("end-late", "")]
    assert [t.kind for t in machine.classify([queued], {}, now=T0 + 31, lease_s=10)] == ["unclaimed"]


def test_cancel_waits_only_for_what_runs() -> None:
    assert machine.cancel_due(machine.SuiteView(SuiteStatus.RUNNING), T0) == ""
    running = machine.SuiteView(SuiteStatus.RUNNING, cancel_at=T0)
    assert machine.cancel_due(running, T0 + deadlines.CANCEL_GRACE_S) == "wait"
    assert machine.cancel_due(running, T0 + deadlines.CANCEL_GRACE_S + 0.1) == "end"
    assert machine.cancel_due(machine.SuiteView(SuiteStatus.COLLECTING, cancel_at=T0), T0) == "end"


def test_finishing_status_and_exit_code() -> None:
    done = [Attempt("s-a000", 1, AttemptState.DONE, ("t",))]
    ok = machine.finishing(_spec(), canceled=False, counts={"passed": 1}, attempts=done, collected=1, now=T0)
    assert ok == machine.Finish(SuiteStatus.FINISHED, 0, "")
    late = machine.finishing(_spec(10), canceled=False, counts={"passed": 1, "not_run": 1}, attempts=done,
                             collected=2, now=T0 + 11)
    assert (late.status, late.exit_code) == (SuiteStatus.DEADLINE, 2)
    # Every test ran before the deadline: finished, even if it is past.
    assert machine.finishing(_spec(10), canceled=False, counts={"passed": 1}, attempts=done, collected=1,
                             now=T0 + 11).status == SuiteStatus.FINISHED
    assert machine.finishing(_spec(), canceled=True, counts={"passed": 1}, attempts=done, collected=1,
                             now=T0).status == SuiteStatus.CANCELED


def test_a_collection_decides_whether_the_suite_runs() -> None:
    ok = Collection("s", "w", 0, ("t",), session=SessionInfo(pytest="8.0"))
    assert machine.collected(ok, canceled=False) is None
    assert machine.collected(ok, canceled=True) == machine.Finish(SuiteStatus.CANCELED, 2,
                                                                  "suite canceled during collection")
    broken = Collection("s", "w", 1, (), output="E   ModuleNotFoundError: No module named 'x'\n")
    finish = machine.collected(broken, canceled=False)
    assert finish is not None and (finish.status, finish.exit_code) == (SuiteStatus.ERROR, 3)
    assert "No module named 'x'" in finish.message
    error = TestRecord("t_bad.py", Outcome.ERROR, phase="collect")
    with_error = Collection("s", "w", 2, (), (error,), session=SessionInfo(pytest="8"))
    interrupted = machine.collected(with_error, canceled=False)
    assert interrupted == machine.Finish(SuiteStatus.FINISHED, 2, "Interrupted: 1 error during collection", (error,))


def test_requeue_moves_only_pending_tests_it_owns_and_happens_once() -> None:
    old = Attempt("s-a000", 1, AttemptState.RUNNING, ("a", "b", "c"), avoid=("w0@h",))
    outcomes = {"a": "passed", "b": PENDING, "c": PENDING}
    owners = {"a": old.key, "b": old.key, "c": "s-a000#9"}
    change = transitions.requeue(old, outcomes, owners, state=AttemptState.HANDBACK, why="vm lost", avoid="w1@h",
                                 now=T0)
    assert change is not None
    ended, new = change
    assert (ended.state, ended.requeued, ended.finished_at) == (AttemptState.HANDBACK, True, T0)
    assert new is not None and (new.number, new.test_ids, new.avoid) == (2, ("b",), ("w0@h", "w1@h"))
    assert transitions.requeue(ended, outcomes, owners, state=AttemptState.LOST, why="", avoid="", now=T0) is None


def test_an_attempt_given_up_on_keeps_its_lost_state_when_its_completion_comes() -> None:
    lost = Attempt("s-a000", 1, AttemptState.LOST, ("a",))
    c = Completion("s", "s-a000", 1, "w1@h", "n", "done", T0, T0 + 2, 0, 1)
    assert transitions.ended(lost, c).state == AttemptState.LOST
    assert transitions.ended(lost.but(state=AttemptState.RUNNING), c).state == AttemptState.DONE
    assert transitions.ended(lost, c).wall_s == 2.0


def test_an_attempt_round_trips_through_its_stored_form() -> None:
    a = Attempt.planned("s-a000", 1, ["a", "b"], now=T0, expected_s=1.5, priority=3, avoid=["w@h"])
    assert Attempt.from_stored(a.to_stored()) == a
    ended = a.but(state=AttemptState.DONE, exit_code=0, wall_s=2.0, waiting_completion=b"c", waiting_since=T0,
                  requeued=True)
    assert Attempt.unpack(ended.pack()) == ended
    # farm 1's keys, which stored suites and the client's ETA read.
    assert {"id", "attempt", "state", "test_ids", "expected_s", "priority", "held_completion", "held_since",
            "wall_s"} <= set(ended.to_stored())
    assert Attempt.from_stored({"id": "x", "attempt": 2, "state": "queued", "test_ids": ["t"]}).avoid == ()


def test_requeue_only_from_the_state_its_verdict_was_decided_on() -> None:
    done = Attempt("s-a000", 1, AttemptState.DONE, ("a",))
    outcomes, owners = {"a": PENDING}, {"a": done.key}
    lost = dict(state=AttemptState.LOST, why="lost", avoid="", now=T0)
    assert transitions.requeue(done, outcomes, owners, **lost) is None  # a stale `lost`: it ended meanwhile
    handed = Attempt("s-a000", 1, AttemptState.HANDBACK, ("a",))
    back = dict(state=AttemptState.HANDBACK, why="handed back", avoid="", now=T0)
    assert transitions.requeue(handed, outcomes, owners, **back, from_state=AttemptState.HANDBACK) is not None
    assert transitions.requeue(done, outcomes, owners, **back, from_state=AttemptState.HANDBACK) is None
