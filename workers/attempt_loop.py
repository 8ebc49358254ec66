"""What one attempt does next, decided from what its runners report (pure: `now` is passed in, no I/O).

An attempt runs its assignment's tests in one runner after another: a runner that dies while a
test runs gets that test recorded `crashed` (or `timeout`), and a new runner (a *restart*; the
coordinator's *reruns* are new assignments, not this) takes the tests still to run, up to
MAX_RUNNER_RESTARTS times. workers/runner.py is the one driver: it starts and stops runners,
reads their lines, asks Redis, sends records, and feeds what happened to an AttemptLoop:

    begin ─▶ StartRunner ─▶ runner_started, line…, tick/polled ─▶ StopRunner ─▶ runner_stopped ─▶ End
                  ▲                          │ (the runner ended on its own)
                  └──────── runner_exited ◀──┘ ─▶ End

The two things it may have to read, a dead runner's output and the suite's stop flag before a
restart, it asks for through what the driver passes in, only when a decision needs them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from farm.model import Assignment, TestRecord
from farm.resources import memory_limit_message
from farm.states import ENDED_STATES, AttemptState
from workers import records as rec

#: How many new runners an attempt may start after runners died during a test.
MAX_RUNNER_RESTARTS = 3
#: Exit codes of a runner that ended between tests without trouble (pytest: ok, tests failed, none ran).
CLEAN_EXITS = (0, 1, 5)

#: The states a worker ends an attempt in (Completion.state carries their value); `lost` is the coordinator's.
END_STATES = ENDED_STATES - {AttemptState.LOST}
#: Why the driver is to stop a runner that still runs.
StopWhy = Literal["canceled", "maxfail", "handback", "deadline", "memory"]


@dataclass(frozen=True)
class StartRunner:
    """Start a runner for these tests; `number` 1 is the attempt's first runner, each restart the next."""

    test_ids: tuple[str, ...]
    number: int


@dataclass(frozen=True)
class StopRunner:
    """Stop the runner now (with `stacks`, first ask it where every thread is)."""

    why: StopWhy
    stacks: bool = False


@dataclass(frozen=True)
class End:
    """End the attempt in this state (its completion says so)."""

    state: AttemptState
    message: str = ""

    def __post_init__(self) -> None:
        assert self.state in END_STATES, f"an attempt does not end {self.state}"


@dataclass(frozen=True)
class Step:
    """After a runner ended: send these records, then start the next runner or end the attempt."""

    records: tuple[TestRecord, ...]
    then: StartRunner | End


class RunnerOutput(Protocol):
    """What the loop may read of a runner that ended (RunningPytest has both); read only when needed."""

    def output_tail(self, limit: int = 4000) -> str: ...

    def stack_dump(self) -> str: ...


@dataclass
class AttemptLoop:
    """The decisions of one attempt of `assignment` on `worker`, fed the events of its runners."""

    assignment: Assignment
    worker: str
    max_restarts: int = MAX_RUNNER_RESTARTS
    deadline_at: float = 0.0  # the suite's, and once the first runner started, the assignment's own too
    remaining: list[str] = field(default_factory=list)  # tests without a record yet
    runners: int = 0  # runners started
    stop_reason: str = ""  # why the suite stopped (-x/--maxfail), once seen while a runner ran
    # Of the runner running now:
    running: dict[str, float] = field(default_factory=dict)  # test id → when it started
    reported: set[str] = field(default_factory=set)
    finishing: set[str] = field(default_factory=set)  # running when the stop was seen: they may end
    collect_errors: list[TestRecord] = field(default_factory=list)
    stop_asked: StopRunner | None = None
    # Run-time balancing: the split request last seen, the fence out with the runner (0: none),
    # and the tests split off so far with the request each was cut for (the completion says them).
    split_seen: int = 0
    fence_out: int = 0
    split_off: list[str] = field(default_factory=list)
    split_seqs: list[int] = field(default_factory=list)
    memory_peak: int = 0  # the runner's tree's resident memory when it went past --max-memory

    def __post_init__(self) -> None:
        self.deadline_at = self.assignment.deadline_at
        self.remaining = list(self.assignment.test_ids)

    def begin(self, now: float, *, canceled: bool, stop_reason: str) -> StartRunner | End:
        """Before anything runs: run, or complete at once without running anything."""
        if canceled:
            return End(AttemptState.CANCELED, "suite canceled")
        if stop_reason:
            return End(AttemptState.STOPPED, stop_reason)
        if self.deadline_at and now >= self.deadline_at:
            return End(AttemptState.DEADLINE, "suite deadline reached")
        return self._next_runner()

    def runner_started(self, now: float) -> None:
        """A runner started (its environment is up: a VM's boot or a bundle's upload does not count)."""
        if self.runners == 1 and self.assignment.budget_s > 0:
            self.deadline_at = min(d for d in (self.deadline_at, now + self.assignment.budget_s) if d)
        self.running, self.reported, self.finishing, self.collect_errors = {}, set(), set(), []
        self.stop_asked = None
        self.fence_out = 0  # a new runner never saw an earlier runner's fence

    def line(self, obj: dict[str, Any], now: float) -> TestRecord | None:
        """A line of the runner plugin (workers.records.LineReader); the record to send, if any."""
        kind = obj["k"]
        if kind == "pass":  # the most frequent: first
            started = self.running.pop(obj["id"], now)
            self.reported.add(obj["id"])
            return rec.passed_record(obj["id"], started, *obj["s"])
        if kind == "start":
            self.running[obj["id"]] = float(obj.get("t", now))
        elif kind == "test":
            self.running.pop(obj["id"], None)
            self.reported.add(obj["id"])
            return rec.test_record(obj)
        elif kind == "collect":
            self.collect_errors.append(rec.collect_record(obj))
        elif kind == "missing":
            self.reported.add(obj["id"])
            return rec.missing_record(obj["id"], self._missing_why(obj))
        return None

    def tick(self, now: float, *, stopping: bool) -> StopRunner | None:
        """While the runner runs, after each read; `stopping`: the worker asks for its work back."""
        if self.stop_reason and not self.finishing & self.running.keys():
            # A test started after the stop was seen (between two polls) is stopped with the runner: not run.
            return self._stop("maxfail")
        if self.deadline_at and now >= self.deadline_at:
            return self._stop("deadline", stacks=True)
        if stopping:
            return self._stop("handback")
        return None

    def memory(self, rss: int) -> StopRunner | None:
        """The runner's tree holds `rss` bytes now: stop it if that is past the assignment's --max-memory."""
        limit = self.assignment.max_memory_bytes
        if not limit or rss <= limit or self.stop_asked is not None:
            return None
        self.memory_peak = rss
        return self._stop("memory")

    @property
    def wants_stop_reason(self) -> bool:
        """Whether the next poll should ask why the suite stopped (not once it is known)."""
        return not self.stop_reason

    def polled(self, *, canceled: bool, stop_reason: str) -> StopRunner | None:
        """What the driver read from the suite every CANCEL_POLL_S while the runner runs."""
        if canceled:
            return self._stop("canceled")
        if stop_reason and not self.stop_reason:
            self.stop_reason, self.finishing = stop_reason, set(self.running)
        return None

    def split_asked(self, seq: int, tail: tuple[str, ...]) -> tuple[str, ...]:
        """The coordinator asks this attempt to split at request `seq`: the tests to fence the
        runner before (() if none: seen already, a fence still out, stopping, or all started)."""
        if seq <= self.split_seen:
            return ()
        self.split_seen = seq
        if self.fence_out or self.stop_asked is not None or self.stop_reason:
            return ()
        done = self.reported | self.running.keys()
        remaining = set(self.remaining)
        fence = tuple(t for t in tail if t in remaining and t not in done)
        if fence:
            self.fence_out = seq
        return fence

    def fenced(self, seq: int, cut: list[str]) -> tuple[str, ...]:
        """The runner confirmed it will run none of `cut` (its reply to the fence of request
        `seq`): the tests split off (none if it is not the fence out, or nothing was left to cut)."""
        if seq != self.fence_out:
            return ()
        self.fence_out = 0
        done = self.reported | self.running.keys()
        remaining = set(self.remaining)
        moved = tuple(dict.fromkeys(t for t in cut if t in remaining and t not in done))
        if moved:
            gone = set(moved)
            self.remaining = [t for t in self.remaining if t not in gone]
            self.split_off.extend(moved)
            self.split_seqs.extend([seq] * len(moved))
        return moved

    def runner_stopped(self, now: float, run: RunnerOutput, *, stop_reason: Callable[[], str] = lambda: "") -> Step:
        """The runner stopped as the last StopRunner asked (`stop_reason`: as for runner_exited, read
        only before a restart after the memory limit)."""
        assert self.stop_asked is not None, "runner_stopped without a StopRunner"
        why = self.stop_asked.why
        if why == "memory":
            return self._memory_stopped(now, run, stop_reason)
        if why == "canceled":
            return Step((), End(AttemptState.CANCELED, "suite canceled"))
        if why == "maxfail":
            return Step((), End(AttemptState.STOPPED, self.stop_reason))
        if why == "handback":
            return Step((), self._handback())
        a = self.assignment
        suite_over = bool(a.deadline_at) and now >= a.deadline_at
        reason = "stopped at the suite deadline" if suite_over else \
            f"stopped at the assignment's deadline ({a.budget_s:g}s after its runner started)"
        stacks = run.stack_dump()
        timeouts = tuple(rec.timeout_record(t, at, now, reason, stacks) for t, at in self.running.items())
        if suite_over:
            return Step(timeouts, End(AttemptState.DEADLINE, "suite deadline reached"))
        return Step(timeouts, End(AttemptState.HANDBACK, f"assignment deadline of {a.budget_s:g}s reached: "
                                                 "unstarted tests handed back"))

    def runner_exited(self, code: int, now: float, run: RunnerOutput, *, stopping: bool,
                      stop_reason: Callable[[], str]) -> Step:
        """The runner ended on its own with exit `code`. `stop_reason` reads the suite's (Redis) and
        is asked only before a restart, so a runner that ended cleanly needs no broker. `stopping`
        (the worker asks for its work back, or the lease is lost): no restart, the rest is handed back."""
        if not self.running:  # between tests
            if code in CLEAN_EXITS:
                return Step((), End(AttemptState.DONE))
            return Step((), End(AttemptState.FAILED, f"runner exited with code {code}\n{run.output_tail()}"))
        records = tuple(self._death_record(run, t, at, now, code) for t, at in self.running.items())
        return self._after_deaths(records, stopping=stopping, stop_reason=stop_reason)

    def _memory_stopped(self, now: float, run: RunnerOutput, stop_reason: Callable[[], str]) -> Step:
        """The runner was stopped past --max-memory: the tests running then crashed it (a crash the
        coordinator does not retry elsewhere); a new runner takes the rest, as after any crash."""
        why = memory_limit_message(self.assignment.max_memory_bytes, self.memory_peak)
        if not self.running:
            return Step((), End(AttemptState.FAILED, f"runner stopped between tests: {why}"))
        output = run.output_tail(2000)
        records = tuple(rec.crashed_record(t, at, now, why, output) for t, at in self.running.items())
        return self._after_deaths(records, stopping=False, stop_reason=stop_reason)

    def _after_deaths(self, records: tuple[TestRecord, ...], *, stopping: bool,
                      stop_reason: Callable[[], str]) -> Step:
        """After a runner ended during the tests of `records` (theirs now): what comes next."""
        self.reported.update(self.running)
        self.remaining = [t for t in self.remaining if t not in self.reported]
        deaths = self.runners  # every runner so far ended during a test
        if not self.remaining:
            return Step(records, End(AttemptState.DONE))
        reason = stop_reason()
        if reason:  # the suite stopped meanwhile: no new runner for the rest
            return Step(records, End(AttemptState.STOPPED, reason))
        if deaths > self.max_restarts:
            return Step(records, End(AttemptState.FAILED, f"runner died {deaths} times; giving up on its last "
                                                  f"{len(self.remaining)} tests"))
        if stopping:  # as a stop would have: no new environment (a VM's boot) for an attempt given up
            return Step(records, self._handback())
        return Step(records, self._next_runner())

    def _handback(self) -> End:
        return End(AttemptState.HANDBACK, f"{self.worker} stopped before the assignment ended: tests handed back")

    def _next_runner(self) -> StartRunner:
        self.runners += 1
        return StartRunner(tuple(self.remaining), self.runners)

    def _stop(self, why: StopWhy, *, stacks: bool = False) -> StopRunner:
        self.stop_asked = StopRunner(why, stacks)
        return self.stop_asked

    def _death_record(self, run: RunnerOutput, test_id: str, started: float, now: float, code: int) -> TestRecord:
        """The record of the test that was running when its runner died."""
        timeout_s = self.assignment.test_timeout_s
        stacks = run.stack_dump()
        if stacks and timeout_s > 0:
            return rec.timeout_record(test_id, started, now, f"test ran past --test-timeout {timeout_s:g}s", stacks)
        how = f"killed by {signal.Signals(-code).name}" if code < 0 and -code in _SIGNALS else f"exit code {code}"
        why = f"the runner died while this test ran ({how})"
        return rec.crashed_record(test_id, started, now, why, run.output_tail(2000))

    def _missing_why(self, obj: dict[str, Any]) -> str:
        """Why an assigned test was not collected, from the plugin's "missing" line."""
        test_id = obj["id"]
        for err in self.collect_errors:
            if test_id.startswith(err.test_id):
                return f"not collected on the worker: collecting {err.test_id} failed\n{err.longrepr}"
        return rec.missing_why(test_id, obj.get("collected"), obj.get("more"), obj.get("planned"))


_SIGNALS = {s.value for s in signal.Signals}
