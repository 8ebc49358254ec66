"""A backend that plays scripted runners, for unit tests of the attempt driver (as dramatiq's StubBroker).

No process runs. Each start() takes the next script; its run emits the runner plugin's own lines
(workers/pytest_plugin/) for the tests it was given, in order, on a StubClock that moves only when
the run is read, so a runner that hangs past its budget costs no real time:

    backend = StubBackend([Pass(), Crash(-9)], [PassRest()])   # a crash, then a restart that passes
    run_assignment(a, backend=backend, ..., clock=backend.clock)

The real backends (local, ssh, libvirt) run the same driver in tests/faults and tests/integration.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from farm.errors import InfrastructureError
from workers.backends.base import ExecutionBackend, HealthCheck, RunRequest


@dataclass
class StubClock:
    """Wall and monotonic time that move only when told (`advance`)."""

    wall: float = 1_800_000_000.0
    mono: float = 0.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@dataclass(frozen=True)
class Pass:
    """The next test starts and passes after `duration_s`."""

    duration_s: float = 0.01


@dataclass(frozen=True)
class Fail:
    """The next test starts and fails after `duration_s`."""

    duration_s: float = 0.01
    message: str = "assert 1 == 2"


@dataclass(frozen=True)
class PassRest:
    """Every test not played yet passes, `duration_s` each."""

    duration_s: float = 0.01


@dataclass(frozen=True)
class Crash:
    """The next test starts and the runner dies during it, after `after_s`, with exit `code` (-9:
    SIGKILL); `stacks`: what faulthandler wrote (a test past --test-timeout)."""

    code: int = -9
    after_s: float = 0.01
    stacks: str = ""


@dataclass(frozen=True)
class Hang:
    """The next test starts and never ends: the runner runs until it is stopped (later Wait and
    Call actions still play; tests and exits do not)."""


@dataclass(frozen=True)
class Exit:
    """The runner ends between tests with exit `code` (a script ends so with 0 unless it hangs)."""

    code: int = 0


@dataclass(frozen=True)
class Wait:
    """Nothing happens for `seconds`."""

    seconds: float


@dataclass(frozen=True)
class Call:
    """`fn` is called when the run gets here (to flip what the test's callbacks read: a cancel, the
    suite's stop, the worker stopping)."""

    fn: Callable[[], object]


@dataclass(frozen=True)
class Refuse:
    """start() raises InfrastructureError (a VM that does not boot, a host that cannot be reached)."""

    message: str = "the environment did not come up"


Action = Pass | Fail | PassRest | Crash | Hang | Exit | Wait | Call | Refuse
#: What the runner in the stub's output says when asked for its stacks (stop with stacks=True).
STOP_STACKS = "Thread 0x00007f (most recent call first):\n  File \"test_stub.py\", line 1 in test_hangs"


@dataclass
class StubRun:
    """A scripted runner: its lines come as its stub clock passes their time."""

    node: str
    clock: StubClock
    events: list[tuple[float, str, Any]]  # (delay after the previous one, kind, payload)
    output: str = ""
    stacks: str = ""
    exit_code: int | None = None
    stops: list[tuple[float, bool]] = field(default_factory=list)  # (grace, stacks) per stop()
    closed: bool = False

    def read_lines(self, timeout: float) -> list[bytes]:
        lines: list[bytes] = []
        budget = timeout
        while self.events and self.exit_code is None:
            delay, kind, payload = self.events[0]
            if delay > budget:
                self.events[0] = (delay - budget, kind, payload)
                break
            self.events.pop(0)
            self.clock.advance(delay)
            budget -= delay
            if kind == "line":
                obj = dict(payload)
                # Stamped as the plugin stamps them: a start when it happens, a test with its start.
                obj["t"] = self.clock.time() - float(obj.get("duration_s", 0.0))
                lines.append(json.dumps(obj).encode())
            elif kind == "call":
                payload()
            elif kind == "exit":
                self.exit_code, self.stacks = payload
        self.clock.advance(max(0.0, budget))
        return lines

    def poll(self) -> int | None:
        return self.exit_code

    def stop(self, grace: float, *, stacks: bool = False) -> int:
        self.stops.append((grace, stacks))
        if self.exit_code is None:
            self.exit_code = -15  # SIGTERM
            self.stacks = STOP_STACKS if stacks else self.stacks
            self.events.clear()
        return self.exit_code

    def output_tail(self, limit: int = 4000) -> str:
        return self.output[-limit:]

    def stack_dump(self) -> str:
        return self.stacks

    def close(self) -> None:
        self.closed = True


class StubBackend:
    """Starts scripted runners, one script per start, in order; records what it was asked."""

    name = "stub"

    def __init__(self, *scripts: Sequence[Action], clock: StubClock | None = None, output: str = "",
                 health: str = "") -> None:
        self.scripts = [tuple(s) for s in scripts]
        self.clock = clock or StubClock()
        self.output = output  # every runner's output tail
        self.requests: list[RunRequest] = []
        self.runs: list[StubRun] = []
        self.hooks: list[str] = []  # the lifecycle hooks called, in order
        self._health = health

    def start(self, request: RunRequest) -> StubRun:
        self.requests.append(request)
        if not self.scripts:
            raise AssertionError(f"the stub has no script for runner {len(self.requests)} ({request.label})")
        script = self.scripts.pop(0)
        if script and isinstance(script[0], Refuse):
            raise InfrastructureError(f"stub:{request.label}: could not start the runner: {script[0].message}")
        run = StubRun(f"stub:{len(self.requests)}", self.clock, _events(script, request.test_ids), self.output)
        self.runs.append(run)
        return run

    def prepare(self, check: HealthCheck) -> None:
        self.hooks.append("prepare")

    def process_started(self) -> None:
        self.hooks.append("process_started")

    def health(self) -> str:
        return self._health

    def shutdown(self) -> None:
        self.hooks.append("shutdown")


def _events(script: Sequence[Action], test_ids: Sequence[str]) -> list[tuple[float, str, Any]]:
    """The timeline a script plays for the tests it was given."""
    tests = list(test_ids)
    events: list[tuple[float, str, Any]] = []
    ends = True

    def test(test_id: str, duration_s: float, cat: str, message: str = "") -> None:
        events.append((0.0, "line", {"k": "start", "id": test_id}))
        call = {"cat": cat, "s": duration_s, **({"msg": message, "longrepr": message} if message else {})}
        events.append((duration_s, "line", {"k": "test", "id": test_id, "duration_s": duration_s,
                                            "phases": {"setup": {"cat": ""}, "call": call,
                                                       "teardown": {"cat": ""}}}))

    for action in script:
        if isinstance(action, (Pass, Fail, PassRest, Crash, Hang)) and (not tests or not ends):
            continue  # no test left to start (or one hangs): the runner starts nothing more
        if isinstance(action, Pass):
            test(tests.pop(0), action.duration_s, "passed")
        elif isinstance(action, Fail):
            test(tests.pop(0), action.duration_s, "failed", action.message)
        elif isinstance(action, PassRest):
            while tests:
                test(tests.pop(0), action.duration_s, "passed")
        elif isinstance(action, Crash):
            events.append((0.0, "line", {"k": "start", "id": tests.pop(0)}))
            events.append((action.after_s, "exit", (action.code, action.stacks)))
            return events
        elif isinstance(action, Hang):
            events.append((0.0, "line", {"k": "start", "id": tests.pop(0)}))
            ends = False  # what follows is only time passing and calls
        elif isinstance(action, Exit) and ends:
            events.append((0.0, "exit", (action.code, "")))
            return events
        elif isinstance(action, Wait):
            events.append((action.seconds, "call", lambda: None))
        elif isinstance(action, Call):
            events.append((0.0, "call", action.fn))
    if ends:
        events.append((0.0, "exit", (0, "")))
    return events


def _conforms(backend: StubBackend) -> ExecutionBackend:
    """Never called: mypy checks here that the stub is an ExecutionBackend like the real ones."""
    return backend
