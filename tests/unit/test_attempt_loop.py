"""workers.attempt_loop: an attempt's decisions fed events with a clock we step (pure: no runner,
no Redis). The driver that feeds it real events: tests/unit/test_attempt_driver.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from farm.model import Assignment
from farm.outcomes import Outcome
from farm.states import AttemptState
from workers.attempt_loop import MAX_RUNNER_RESTARTS, AttemptLoop, End, StartRunner, StopRunner

T0 = 1_800_000_000.0
IDS = ("t.py::a", "t.py::b", "t.py::c", "t.py::d")


def _assignment(**changes: object) -> Assignment:
    a = Assignment("s1", "s1-a000", 1, "digest", ("-q",), IDS)
    return replace(a, **changes)  # type: ignore[arg-type]


class _Output:
    def __init__(self, output: str = "", stacks: str = "") -> None:
        self.output, self.stacks = output, stacks

    def output_tail(self, limit: int = 4000) -> str:
        return self.output[-limit:]

    def stack_dump(self) -> str:
        return self.stacks


def _start(loop: AttemptLoop, test_id: str, at: float) -> None:
    assert loop.line({"k": "start", "id": test_id, "t": at}, at) is None


def _passed(loop: AttemptLoop, test_id: str, at: float) -> None:
    record = loop.line({"k": "test", "id": test_id, "t": at, "duration_s": 0.1,
                        "phases": {"call": {"cat": "passed"}}}, at)
    assert record is not None and record.outcome is Outcome.PASSED


# The machine, event by event


def test_an_attempt_completes_at_once_when_canceled_stopped_or_past_its_deadline() -> None:
    assert AttemptLoop(_assignment(), "w").begin(T0, canceled=True, stop_reason="x") == \
        End(AttemptState.CANCELED, "suite canceled")
    assert AttemptLoop(_assignment(), "w").begin(T0, canceled=False, stop_reason="stopped after 1 failures") == \
        End(AttemptState.STOPPED, "stopped after 1 failures")
    assert AttemptLoop(_assignment(deadline_at=T0), "w").begin(T0, canceled=False, stop_reason="") == \
        End(AttemptState.DEADLINE, "suite deadline reached")
    assert AttemptLoop(_assignment(deadline_at=T0 + 1), "w").begin(T0, canceled=False, stop_reason="") == \
        StartRunner(IDS, 1)


def test_an_attempt_ends_only_in_a_state_a_worker_ends_it_in() -> None:
    assert End(AttemptState.HANDBACK).state == "handback", "the wire value"
    for state in (AttemptState.QUEUED, AttemptState.RUNNING, AttemptState.LOST):
        with pytest.raises(AssertionError):
            End(state)


def test_the_budget_counts_from_the_first_runner_start_and_never_past_the_suite_deadline() -> None:
    loop = AttemptLoop(_assignment(budget_s=30), "w")
    loop.begin(T0, canceled=False, stop_reason="")
    assert loop.tick(T0 + 1000, stopping=False) is None, "no deadline before a runner started"
    loop.runner_started(T0 + 50)  # the VM took 50 s to boot: not counted
    assert loop.deadline_at == T0 + 80
    _start(loop, IDS[0], T0 + 51)
    assert loop.tick(T0 + 79.9, stopping=False) is None
    assert loop.tick(T0 + 80, stopping=False) == StopRunner("deadline", stacks=True)
    step = loop.runner_stopped(T0 + 80.5, _Output(stacks="Thread 1"))
    assert step.then == End(AttemptState.HANDBACK, "assignment deadline of 30s reached: unstarted tests handed back")
    (record,) = step.records
    assert (record.test_id, record.outcome, record.duration_s) == (IDS[0], Outcome.TIMEOUT, pytest.approx(29.5))
    assert "30s after its runner started" in record.message and "Thread 1" in record.longrepr

    suite = AttemptLoop(_assignment(budget_s=30, deadline_at=T0 + 10), "w")
    suite.begin(T0, canceled=False, stop_reason="")
    suite.runner_started(T0)
    assert suite.deadline_at == T0 + 10
    _start(suite, IDS[0], T0)
    assert suite.tick(T0 + 10, stopping=False) == StopRunner("deadline", stacks=True)
    step = suite.runner_stopped(T0 + 10, _Output())
    assert step.then == End(AttemptState.DEADLINE, "suite deadline reached")
    assert step.records[0].message == "stopped at the suite deadline"


def test_a_restart_does_not_move_the_budget() -> None:
    loop = AttemptLoop(_assignment(budget_s=30), "w")
    loop.begin(T0, canceled=False, stop_reason="")
    loop.runner_started(T0)
    _start(loop, IDS[0], T0 + 1)
    step = loop.runner_exited(-9, T0 + 2, _Output(), stopping=False, stop_reason=lambda: "")
    assert step.then == StartRunner(IDS[1:], 2)
    loop.runner_started(T0 + 20)
    assert loop.deadline_at == T0 + 30


def test_a_runner_that_dies_during_a_test_blames_that_test_and_a_restart_takes_the_rest() -> None:
    loop = AttemptLoop(_assignment(), "w")
    assert loop.begin(T0, canceled=False, stop_reason="") == StartRunner(IDS, 1)
    loop.runner_started(T0)
    _start(loop, IDS[0], T0)
    _passed(loop, IDS[0], T0 + 1)
    _start(loop, IDS[1], T0 + 1)
    step = loop.runner_exited(-9, T0 + 3, _Output("Segmentation fault"), stopping=False, stop_reason=lambda: "")
    (record,) = step.records
    assert (record.test_id, record.outcome, record.duration_s) == (IDS[1], Outcome.CRASHED, 2.0)
    assert record.message == "the runner died while this test ran (killed by SIGKILL)"
    assert "Segmentation fault" in record.longrepr
    assert step.then == StartRunner(IDS[2:], 2)


def test_a_test_past_its_timeout_that_killed_the_runner_is_a_timeout_with_its_stacks() -> None:
    loop = AttemptLoop(_assignment(test_timeout_s=5), "w")
    loop.begin(T0, canceled=False, stop_reason="")
    loop.runner_started(T0)
    _start(loop, IDS[0], T0)
    step = loop.runner_exited(1, T0 + 5, _Output(stacks="Thread 0x1 in test_a"), stopping=False, stop_reason=lambda: "")
    assert step.records[0].outcome is Outcome.TIMEOUT
    assert step.records[0].message == "test ran past --test-timeout 5s"


def test_after_max_restarts_the_attempt_fails_naming_how_many_tests_were_left() -> None:
    ids = tuple(f"t.py::t{i}" for i in range(10))
    loop = AttemptLoop(_assignment(test_ids=ids), "w")
    step = loop.begin(T0, canceled=False, stop_reason="")
    for n in range(MAX_RUNNER_RESTARTS + 1):
        assert step == StartRunner(ids[n:], n + 1)
        loop.runner_started(T0 + n)
        _start(loop, ids[n], T0 + n)
        step = loop.runner_exited(-11, T0 + n + 0.5, _Output(), stopping=False, stop_reason=lambda: "").then
    assert step == End(AttemptState.FAILED,
                       f"runner died {MAX_RUNNER_RESTARTS + 1} times; giving up on its last 6 tests")


def test_no_restart_once_the_suite_stopped_or_nothing_is_left() -> None:
    loop = AttemptLoop(_assignment(), "w")
    loop.begin(T0, canceled=False, stop_reason="")
    loop.runner_started(T0)
    _start(loop, IDS[0], T0)
    step = loop.runner_exited(-9, T0, _Output(), stopping=False, stop_reason=lambda: "stopped after 1 failures")
    assert step.then == End(AttemptState.STOPPED, "stopped after 1 failures")

    last = AttemptLoop(_assignment(test_ids=IDS[:1]), "w")
    last.begin(T0, canceled=False, stop_reason="")
    last.runner_started(T0)
    _start(last, IDS[0], T0)
    step = last.runner_exited(-9, T0, _Output(), stopping=False, stop_reason=lambda: "")
    assert step.then == End(AttemptState.DONE) and step.records[0].outcome is Outcome.CRASHED


def test_no_restart_once_the_worker_is_stopping_but_a_record_for_the_test_that_died() -> None:
    loop = AttemptLoop(_assignment(), "w1")
    loop.begin(T0, canceled=False, stop_reason="")
    loop.runner_started(T0)
    _start(loop, IDS[0], T0)
    step = loop.runner_exited(-9, T0 + 1, _Output(), stopping=True, stop_reason=lambda: "")
    assert [(r.test_id, r.outcome) for r in step.records] == [(IDS[0], Outcome.CRASHED)]
    assert step.then == End(AttemptState.HANDBACK, "w1 stopped before the assignment ended: tests handed back")


@pytest.mark.parametrize(("code", "end"), [
    (0, AttemptState.DONE), (1, AttemptState.DONE), (5, AttemptState.DONE), (2, AttemptState.FAILED),
    (-9, AttemptState.FAILED)])
def test_a_runner_that_ends_between_tests_is_done_unless_its_exit_code_says_trouble(
        code: int, end: AttemptState) -> None:
    loop = AttemptLoop(_assignment(), "w")
    loop.begin(T0, canceled=False, stop_reason="")
    loop.runner_started(T0)
    step = loop.runner_exited(code, T0, _Output("usage: pytest"), stopping=False, stop_reason=lambda: "")
    assert step.records == () and step.then.state == end  # type: ignore[union-attr]
    if end is AttemptState.FAILED:
        assert step.then == End(AttemptState.FAILED, f"runner exited with code {code}\nusage: pytest")


def test_a_runner_that_ends_cleanly_needs_no_broker_to_end_the_attempt() -> None:
    def broker_down() -> str:
        raise ConnectionError("Redis is restarting")

    loop = AttemptLoop(_assignment(), "w")
    loop.begin(T0, canceled=False, stop_reason="")
    loop.runner_started(T0)
    for test_id in IDS:
        _start(loop, test_id, T0)
        _passed(loop, test_id, T0)
    assert loop.runner_exited(0, T0, _Output(), stopping=False, stop_reason=broker_down).then == End(AttemptState.DONE)


def test_at_maxfail_the_tests_running_then_finish_and_one_started_after_does_not_delay_the_stop() -> None:
    loop = AttemptLoop(_assignment(), "w")
    loop.begin(T0, canceled=False, stop_reason="")
    loop.runner_started(T0)
    _start(loop, IDS[0], T0)
    assert loop.wants_stop_reason
    assert loop.polled(canceled=False, stop_reason="stopped after 1 failures") is None
    assert not loop.wants_stop_reason
    assert loop.tick(T0 + 1, stopping=False) is None, "stopped while the test running then had not reported"
    _passed(loop, IDS[0], T0 + 2)
    _start(loop, IDS[1], T0 + 2)  # started between two polls: stopped with the runner
    assert loop.tick(T0 + 2, stopping=False) == StopRunner("maxfail")
    assert loop.runner_stopped(T0 + 3, _Output()).then == End(AttemptState.STOPPED, "stopped after 1 failures")


def test_a_cancel_or_the_worker_stopping_stops_the_runner_without_blaming_any_test() -> None:
    canceled = AttemptLoop(_assignment(), "w")
    canceled.begin(T0, canceled=False, stop_reason="")
    canceled.runner_started(T0)
    _start(canceled, IDS[0], T0)
    assert canceled.polled(canceled=True, stop_reason="") == StopRunner("canceled")
    assert canceled.runner_stopped(T0, _Output()) == type(canceled.runner_stopped(T0, _Output()))(
        (), End(AttemptState.CANCELED, "suite canceled"))

    stopping = AttemptLoop(_assignment(), "w1")
    stopping.begin(T0, canceled=False, stop_reason="")
    stopping.runner_started(T0)
    _start(stopping, IDS[0], T0)
    assert stopping.tick(T0, stopping=True) == StopRunner("handback")
    step = stopping.runner_stopped(T0, _Output())
    assert step.records == ()
    assert step.then == End(AttemptState.HANDBACK, "w1 stopped before the assignment ended: tests handed back")


def test_a_test_the_runner_did_not_collect_names_the_collector_that_failed() -> None:
    loop = AttemptLoop(_assignment(), "w")
    loop.begin(T0, canceled=False, stop_reason="")
    loop.runner_started(T0)
    assert loop.line({"k": "collect", "id": "t.py", "cat": "error", "longrepr": "ImportError: x"}, T0) is None
    record = loop.line({"k": "missing", "id": IDS[0]}, T0)
    assert record is not None and record.outcome is Outcome.ERROR and record.phase == "collect"
    assert record.message == "not collected on the worker: collecting t.py failed\nImportError: x"
    step = loop.runner_exited(2, T0, _Output(), stopping=False, stop_reason=lambda: "")
    assert step.then.state is AttemptState.FAILED  # type: ignore[union-attr]


def test_past_max_memory_the_running_test_crashes_with_the_limit_and_a_restart_takes_the_rest() -> None:
    loop = AttemptLoop(_assignment(max_memory_bytes=200 << 20), "w")
    assert loop.begin(T0, canceled=False, stop_reason="") == StartRunner(IDS, 1)
    loop.runner_started(T0)
    _start(loop, IDS[0], T0)
    assert loop.memory(200 << 20) is None, "at the limit is not past it"
    stop = loop.memory(301 << 20)
    assert stop == StopRunner("memory")
    step = loop.runner_stopped(T0 + 2, _Output("allocating"), stop_reason=lambda: "")
    (record,) = step.records
    assert (record.test_id, record.outcome, record.duration_s) == (IDS[0], Outcome.CRASHED, 2.0)
    assert record.message == "memory limit 200M exceeded (peak 301M)"
    assert step.then == StartRunner(IDS[1:], 2)


def test_without_max_memory_no_size_stops_the_runner() -> None:
    loop = AttemptLoop(_assignment(), "w")
    loop.begin(T0, canceled=False, stop_reason="")
    loop.runner_started(T0)
    assert loop.memory(1 << 40) is None
