"""workers.runner.run_assignment, the attempt's driver, over the stub backend's scripted runners (no
process, no Redis, no real time). Its decisions: tests/unit/test_attempt_loop.py; the same driver over
real runners: tests/faults/test_runner_faults.py, tests/integration/test_*_backend.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from farm.config import Settings
from farm.errors import InfrastructureError
from farm.model import Assignment, Completion
from farm.outcomes import Outcome
from workers.attempt_loop import MAX_RUNNER_RESTARTS
from workers.backends.stub import STOP_STACKS, Call, Crash, Exit, Fail, Hang, Pass, PassRest, Refuse, StubBackend
from workers.runner import KeptRecords, run_assignment

IDS = ("t.py::a", "t.py::b", "t.py::c", "t.py::d")


def _assignment(**changes: object) -> Assignment:
    a = Assignment("s1", "s1-a000", 1, "digest", ("-q",), IDS)
    return replace(a, **changes)  # type: ignore[arg-type]



class _Flags:
    """What the callbacks read (Redis and the worker's signals, in the real thing)."""

    def __init__(self) -> None:
        self.canceled = self.stopping = False
        self.stop = ""

    def cancel(self) -> None:
        self.canceled = True

    def hand_back(self) -> None:
        self.stopping = True

    def maxfail(self) -> None:
        self.stop = "stopped after 1 failures"


def _run(backend: StubBackend, a: Assignment | None = None, flags: _Flags | None = None,
         settings: Settings | None = None) -> tuple[Completion, KeptRecords]:
    sink, flags = KeptRecords(), flags or _Flags()
    completion = run_assignment(
        a or _assignment(), backend=backend, bundle=lambda digest: "/bundle.tar.gz", sink=sink, worker="w1",
        settings=settings or Settings(), is_canceled=lambda: flags.canceled,
        is_stopping=lambda: flags.stopping, stop_reason=lambda: flags.stop, clock=backend.clock)
    assert sink.completions == [completion]
    return completion, sink


def test_a_runner_that_records_its_tests_and_exits_0_completes_done() -> None:
    backend = StubBackend([Pass(), Fail(), PassRest()])
    completion, sink = _run(backend)
    assert (completion.state, completion.exit_code, completion.reported, completion.node) == ("done", 0, 4, "stub:1")
    assert type(completion.state) is str, "Completion.state is the state's value on the wire"
    assert sink.batches[0].records == (), "an empty first batch marks the attempt running"
    assert sink.outcomes() == {IDS[0]: Outcome.PASSED, IDS[1]: Outcome.FAILED, IDS[2]: Outcome.PASSED,
                               IDS[3]: Outcome.PASSED}
    (request,) = backend.requests
    assert request.test_ids == IDS and request.label == "s1-a000-runner1"
    assert backend.runs[0].closed


def test_an_attempts_batches_are_numbered_from_1_in_the_order_they_are_sent() -> None:
    """`RecordBatch.seq` tells a batch delivered again from the next one (the merge counts each once),
    across a runner restart too: the numbers are the attempt's, not the runner's."""
    backend = StubBackend([Pass(), Crash(-9)], [PassRest()])
    _, sink = _run(backend, settings=Settings(batch_records=1))
    assert [b.seq for b in sink.batches] == list(range(1, len(sink.batches) + 1))
    assert len(sink.batches) >= 4


def test_a_runner_that_ends_before_the_first_poll_does_not_ask_the_broker_again() -> None:
    asked: list[str] = []

    def stop_reason() -> str:
        asked.append("stop")
        if len(asked) > 1:
            raise ConnectionError("Redis is restarting")
        return ""

    backend = StubBackend([PassRest(duration_s=0.1)])  # 0.4 s in all: before the first poll (0.5 s)
    completion = run_assignment(_assignment(), backend=backend, bundle=lambda d: "/b", sink=KeptRecords(), worker="w1",
                                settings=Settings(), is_canceled=lambda: False, stop_reason=stop_reason,
                                clock=backend.clock)
    assert completion.state == "done" and asked == ["stop"]


def test_a_runner_that_crashes_mid_test_is_restarted_for_the_tests_left() -> None:
    backend = StubBackend([Pass(), Crash(-9)], [PassRest()], output="Fatal Python error")
    completion, sink = _run(backend)
    assert completion.state == "done" and completion.node == "stub:2" and completion.reported == 4
    assert sink.outcomes() == {IDS[0]: Outcome.PASSED, IDS[1]: Outcome.CRASHED, IDS[2]: Outcome.PASSED,
                               IDS[3]: Outcome.PASSED}
    assert [r.label for r in backend.requests] == ["s1-a000-runner1", "s1-a000-runner2"]
    assert backend.requests[1].test_ids == IDS[2:]
    assert all(run.closed for run in backend.runs)


def test_runners_that_keep_crashing_fail_the_attempt_after_max_restarts() -> None:
    ids = tuple(f"t.py::t{i}" for i in range(MAX_RUNNER_RESTARTS + 3))
    backend = StubBackend(*[[Crash(-6)] for _ in range(MAX_RUNNER_RESTARTS + 1)])
    completion, sink = _run(backend, _assignment(test_ids=ids))
    assert completion.state == "failed"
    assert completion.message == f"runner died {MAX_RUNNER_RESTARTS + 1} times; giving up on its last 2 tests"
    assert set(sink.outcomes().values()) == {Outcome.CRASHED} and len(sink.outcomes()) == MAX_RUNNER_RESTARTS + 1
    assert len(backend.requests) == MAX_RUNNER_RESTARTS + 1


def test_a_runner_that_hangs_past_the_budget_is_stopped_and_its_unstarted_tests_handed_back() -> None:
    backend = StubBackend([Pass(), Hang()])
    started = backend.clock.time()
    completion, sink = _run(backend, _assignment(budget_s=60))
    assert completion.state == "handback" and completion.message.startswith("assignment deadline of 60s")
    assert sink.outcomes() == {IDS[0]: Outcome.PASSED, IDS[1]: Outcome.TIMEOUT}
    timeout = sink.batches[-1].records[-1]
    assert STOP_STACKS in timeout.longrepr, "the stacks asked for at the stop are in the record"
    assert backend.runs[0].stops == [(3.0, True)]
    assert backend.clock.time() - started == pytest.approx(60, abs=0.2)


def test_a_runner_that_cannot_start_raises_for_the_task_to_hand_the_attempt_back() -> None:
    with pytest.raises(InfrastructureError, match="the VM did not boot"):
        _run(StubBackend([Refuse("the VM did not boot")]))

    backend = StubBackend([Pass(), Crash()], [Refuse("no free slot")])
    sink = KeptRecords()
    with pytest.raises(InfrastructureError, match="no free slot"):
        run_assignment(_assignment(), backend=backend, bundle=lambda d: "/b", sink=sink, worker="w1",
                       settings=Settings(), is_canceled=lambda: False, clock=backend.clock)
    assert sink.outcomes() == {IDS[0]: Outcome.PASSED, IDS[1]: Outcome.CRASHED}, "sent before the restart"
    assert sink.completions == [] and backend.runs[0].closed


class PollFailed(Exception):
    pass


def test_a_callback_that_raises_stops_the_runner_and_the_error_goes_on() -> None:
    polls: list[int] = []

    def is_canceled() -> bool:  # 1: before anything runs, 2: the first poll while it runs
        polls.append(1)
        if len(polls) >= 2:
            raise PollFailed("the state store is gone")
        return False

    backend = StubBackend([Pass(), Hang()])
    sink = KeptRecords()
    with pytest.raises(PollFailed):
        run_assignment(_assignment(), backend=backend, bundle=lambda d: "/b", sink=sink, worker="w1",
                       settings=Settings(), is_canceled=is_canceled, clock=backend.clock)
    (run,) = backend.runs
    assert run.closed, "the runner outlived the error"
    assert sink.completions == []
    assert sink.outcomes() == {IDS[0]: Outcome.PASSED}, "the records so far were sent"


def test_a_worker_asked_to_stop_hands_the_attempt_back_without_a_record_for_the_test_running() -> None:
    flags = _Flags()
    backend = StubBackend([Pass(), Call(flags.hand_back), Hang()])
    completion, sink = _run(backend, flags=flags)
    assert completion.state == "handback" and completion.message.startswith("w1 stopped before")
    assert sink.outcomes() == {IDS[0]: Outcome.PASSED}
    assert backend.runs[0].stops == [(3.0, False)]


def test_a_runner_that_dies_once_its_worker_is_stopping_is_not_restarted() -> None:
    # The runner dies in the same read as the worker starts stopping (or its lease is lost: the
    # task's is_stopping says so too), before a tick saw it: the tests left are handed back.
    flags = _Flags()
    backend = StubBackend([Pass(), Call(flags.hand_back), Crash(-9)], [PassRest()])
    completion, sink = _run(backend, flags=flags)
    assert len(backend.requests) == 1, "a new runner was started for an attempt given up"
    assert completion.state == "handback" and completion.message.startswith("w1 stopped before")
    assert sink.outcomes() == {IDS[0]: Outcome.PASSED, IDS[1]: Outcome.CRASHED}


def test_a_cancel_stops_the_runner_within_a_poll() -> None:
    flags = _Flags()
    backend = StubBackend([Pass(), Call(flags.cancel), Hang()])
    completion, sink = _run(backend, flags=flags)
    assert (completion.state, completion.message) == ("canceled", "suite canceled")
    assert sink.outcomes() == {IDS[0]: Outcome.PASSED}


def test_at_maxfail_the_running_test_reports_then_the_runner_stops() -> None:
    flags = _Flags()
    backend = StubBackend([Fail(), Call(flags.maxfail), Pass(duration_s=2.0), Hang()])
    completion, sink = _run(backend, flags=flags)
    assert (completion.state, completion.message) == ("stopped", "stopped after 1 failures")
    # b started before the stop was seen: it reports; c starts after and is stopped with the runner.
    assert sink.outcomes() == {IDS[0]: Outcome.FAILED, IDS[1]: Outcome.PASSED}


def test_the_suite_deadline_stops_the_runner_and_completes_deadline() -> None:
    backend = StubBackend([Pass(), Hang()])
    completion, sink = _run(backend, _assignment(deadline_at=backend.clock.time() + 30, budget_s=600))
    assert (completion.state, completion.message) == ("deadline", "suite deadline reached")
    assert sink.batches[-1].records[-1].message == "stopped at the suite deadline"


def test_an_attempt_canceled_before_it_starts_runs_nothing() -> None:
    flags = _Flags()
    flags.canceled = True
    backend = StubBackend()
    completion, sink = _run(backend, flags=flags)
    assert completion.state == "canceled" and backend.requests == [] and sink.batches == []


def test_a_runner_that_exits_with_a_usage_error_fails_the_attempt_with_its_output() -> None:
    backend = StubBackend([Exit(4)], output="ERROR: usage: pytest [options]")
    completion, _ = _run(backend)
    assert completion.state == "failed" and completion.exit_code == 4
    assert completion.message == "runner exited with code 4\nERROR: usage: pytest [options]"
