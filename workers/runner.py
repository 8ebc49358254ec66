"""Runs one assignment (or one collection) in a backend, streaming records as tests finish."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from farm.config import Settings
from farm.model import Assignment, Collection, Completion, RecordBatch, SuiteSpec, TestRecord
from workers import records as rec
from workers.backends.base import ExecutionBackend, RunningPytest, RunRequest

#: How many times per lease period a running attempt renews its lease.
LEASE_RENEWALS = 4
#: How many new runners an assignment may start after runners died during a test.
MAX_RUNNER_RESTARTS = 3
#: The lowest CPU priority given to a runner (for the assignments published last).
MAX_NICENESS = 10
#: How often the runner asks whether its suite was canceled.
CANCEL_POLL_S = 0.5
#: How long stopped runners get between TERM and KILL.
STOP_GRACE_S = 3.0
#: A batch is sent once its text reaches this many characters (at most 4 bytes each in UTF-8),
#: whatever its record count, so no message nears the protocol's 64 MiB limit.
BATCH_CHARS = 2 * 1024 * 1024


def _size(record: TestRecord) -> int:
    return len(record.test_id) + len(record.message) + len(record.longrepr) + sum(
        len(name) + len(text) for name, text in record.sections)


class RecordSink(Protocol):
    """Where a worker sends what it learns (the coordinator, over Celery)."""

    def send_batch(self, batch: RecordBatch) -> None: ...

    def send_completion(self, completion: Completion) -> None: ...


@dataclass
class _Stream:
    """Batches records and sends them when full or old enough."""

    sink: RecordSink
    header: Assignment
    worker: str
    node: str
    batch_size: int
    interval_s: float
    pending: list[TestRecord] = field(default_factory=list)
    pending_chars: int = 0
    sent: int = 0
    last_flush: float = field(default_factory=time.monotonic)

    def add(self, record: TestRecord) -> None:
        self.pending.append(record)
        self.pending_chars += _size(record)
        if len(self.pending) >= self.batch_size or self.pending_chars >= BATCH_CHARS:
            self.flush()

    def tick(self) -> None:
        if self.pending and time.monotonic() - self.last_flush >= self.interval_s:
            self.flush()

    def flush(self, *, force: bool = False) -> None:
        if not self.pending and not force:
            return
        a = self.header
        self.sink.send_batch(RecordBatch(a.suite_id, a.assignment_id, a.attempt, self.worker, self.node,
                                         tuple(self.pending)))
        self.sent += len(self.pending)
        self.pending = []
        self.pending_chars = 0
        self.last_flush = time.monotonic()


def run_assignment(
    assignment: Assignment,
    *,
    backend: ExecutionBackend,
    bundle: Callable[[str], object],
    sink: RecordSink,
    worker: str,
    settings: Settings,
    is_canceled: Callable[[], bool],
    keepalive: Callable[[], None] = lambda: None,
    is_stopping: Callable[[], bool] = lambda: False,
    stop_reason: Callable[[], str] = lambda: "",
) -> Completion:
    """Run an assignment to its end and report it; returns the completion it sent.

    A runner that dies while a test runs (os._exit, a signal, a test past --test-timeout) gets
    that test recorded as `crashed` or `timeout`, and a new runner takes the tests still to run,
    up to MAX_RUNNER_RESTARTS times. At the assignment's own deadline (`budget_s` after its first
    runner started) the test running is recorded `timeout` and the attempt completes `handback`: the
    coordinator queues its unstarted tests again. So it does when `is_stopping` turns true (its
    worker is stopping), without a record for the tests running then: they did nothing wrong.

    Once `stop_reason` says something (the suite reached its -x/--maxfail), the runner is stopped
    as soon as the tests running then have reported, and the attempt completes `stopped`; an
    attempt that had not started completes so at once, without running anything.
    """
    started_at = time.time()
    if is_canceled():
        return _complete(sink, assignment, worker, "", "canceled", started_at, 0, 0, "suite canceled")
    reason = stop_reason()
    if reason:
        return _complete(sink, assignment, worker, "", "stopped", started_at, 0, 0, reason)
    if assignment.deadline_at and started_at >= assignment.deadline_at:
        return _complete(sink, assignment, worker, "", "deadline", started_at, 0, 0, "suite deadline reached")
    deadline = assignment.deadline_at  # and, once the first runner started, the assignment's own
    with _renewing(keepalive, settings.lease_s / LEASE_RENEWALS):  # a big bundle may take a while
        archive = bundle(assignment.bundle_digest)
    remaining = list(assignment.test_ids)
    planned_at = _planned_positions(assignment)
    stream: _Stream | None = None
    node, code, restarts = "", 0, 0
    while True:
        request = RunRequest(
            mode="run",
            bundle=archive,  # type: ignore[arg-type]
            pytest_args=assignment.pytest_args,
            test_ids=tuple(remaining),
            label=f"{assignment.assignment_id}-r{restarts}",
            output_cap=settings.output_cap_bytes,
            longrepr_cap=settings.longrepr_cap_bytes,
            niceness=min(MAX_NICENESS, assignment.priority),
            test_timeout_s=assignment.test_timeout_s,
            positions=tuple(planned_at.get(t, (-1, 0)) for t in remaining) if planned_at else (),
        )
        with _renewing(keepalive, settings.lease_s / LEASE_RENEWALS):  # unpacking, booting
            run = backend.start(request)
        if stream is None and assignment.budget_s > 0:
            # The budget is for the tests: a VM's boot or a bundle's upload does not count.
            deadline = min(d for d in (assignment.deadline_at, time.time() + assignment.budget_s) if d)
        node = run.node
        if stream is None:
            stream = _Stream(sink, assignment, worker, node, settings.batch_records, settings.batch_interval_s)
            stream.flush(force=True)  # an empty first batch: the coordinator marks the attempt running
        try:
            running: dict[str, float] = {}
            reported: set[str] = set()
            code, stopped = _drive(run, stream, running, reported, is_canceled, keepalive,
                                   settings.lease_s / LEASE_RENEWALS, deadline, is_stopping, stop_reason)
            if stopped == "canceled":
                state, message = "canceled", "suite canceled"
                break
            if stopped.startswith("stopped:"):
                state, message = "stopped", stopped.removeprefix("stopped:")
                break
            if stopped == "stopping":
                state, message = "handback", f"{worker} stopped before the assignment ended: tests handed back"
                break
            if stopped == "deadline":
                now, stacks = time.time(), run.stack_dump()
                suite_over = bool(assignment.deadline_at) and now >= assignment.deadline_at
                why = "stopped at the suite deadline" if suite_over else \
                    f"stopped at the assignment's deadline ({assignment.budget_s:g}s after its runner started)"
                for test_id, t in running.items():
                    stream.add(rec.timeout_record(test_id, t, now, why, stacks))
                if suite_over:
                    state, message = "deadline", "suite deadline reached"
                else:
                    state = "handback"
                    message = f"assignment deadline of {assignment.budget_s:g}s reached: unstarted tests handed back"
                break
            if not running:  # the runner ended on its own, between tests
                state = "done" if code in (0, 1, 5) else "failed"
                message = "" if state == "done" else f"runner exited with code {code}\n{run.output_tail()}"
                break
            now = time.time()
            for test_id, t in running.items():
                stream.add(_death_record(run, test_id, t, now, code, assignment.test_timeout_s))
                reported.add(test_id)
            remaining = [t for t in remaining if t not in reported]
            restarts += 1
            if not remaining:
                state, message = "done", ""
                break
            reason = stop_reason()
            if reason:  # the suite stopped meanwhile: no new runner for the rest
                state, message = "stopped", reason
                break
            if restarts > MAX_RUNNER_RESTARTS:
                state = "failed"
                message = f"runner died {restarts} times; giving up on its last {len(remaining)} tests"
                break
        finally:
            try:
                stream.flush()
            finally:
                run.close()  # the environment is gone before the completion says so
    return _complete(sink, assignment, worker, node, state, started_at, code, stream.sent, message)


def _death_record(run: RunningPytest, test_id: str, started: float, now: float, code: int,
                  timeout_s: float) -> TestRecord:
    """The record of the test that was running when its runner died."""
    stacks = run.stack_dump()
    if stacks and timeout_s > 0:
        return rec.timeout_record(test_id, started, now, f"test ran past --test-timeout {timeout_s:g}s", stacks)
    how = f"killed by {signal.Signals(-code).name}" if code < 0 and -code in _SIGNALS else f"exit code {code}"
    why = f"the runner died while this test ran ({how})"
    return rec.crashed_record(test_id, started, now, why, run.output_tail(2000))


_SIGNALS = {s.value for s in signal.Signals}


def _drive(
    run: RunningPytest,
    stream: _Stream,
    running: dict[str, float],
    reported: set[str],
    is_canceled: Callable[[], bool],
    keepalive: Callable[[], None],
    keepalive_every_s: float,
    deadline_at: float = 0.0,
    is_stopping: Callable[[], bool] = lambda: False,
    stop_reason: Callable[[], str] = lambda: "",
) -> tuple[int, str]:
    """Read the runner's lines until it ends, the suite is canceled, the deadline comes, the
    worker stops, or the suite stops (-x/--maxfail) and the tests running then have reported.

    Returns (exit code, "" or "canceled" or "deadline" or "stopping" or "stopped:REASON")."""
    next_cancel_check = time.monotonic() + CANCEL_POLL_S
    next_keepalive = time.monotonic() + keepalive_every_s
    collect_errors: list[TestRecord] = []
    reason = ""
    finishing: set[str] = set()  # the tests running when the suite stopped: they may end
    while True:
        for line in run.read_lines(timeout=0.05):
            obj = rec.parse_line(line)
            if obj is None:
                continue
            kind = obj["k"]
            if kind == "start":
                running[obj["id"]] = float(obj.get("t", time.time()))
            elif kind == "test":
                running.pop(obj["id"], None)
                reported.add(obj["id"])
                stream.add(rec.test_record(obj))
            elif kind == "collect":
                collect_errors.append(rec.collect_record(obj))
            elif kind == "missing":
                reported.add(obj["id"])
                stream.add(rec.missing_record(obj["id"], _missing_why(obj, collect_errors)))
        stream.tick()
        code = run.poll()
        if code is not None:
            return code, ""
        if reason and not finishing & running.keys():
            # A test started after the stop (between two polls) is stopped with the runner: not run.
            return run.stop(STOP_GRACE_S), f"stopped:{reason}"
        if deadline_at and time.time() >= deadline_at:
            return run.stop(STOP_GRACE_S, stacks=True), "deadline"
        if is_stopping():
            return run.stop(STOP_GRACE_S), "stopping"
        if time.monotonic() >= next_keepalive:
            next_keepalive = time.monotonic() + keepalive_every_s
            keepalive()
        if time.monotonic() >= next_cancel_check:
            next_cancel_check = time.monotonic() + CANCEL_POLL_S
            if is_canceled():
                return run.stop(STOP_GRACE_S), "canceled"
            if not reason:
                reason = stop_reason()
                finishing = set(running)


@contextlib.contextmanager
def _renewing(keepalive: Callable[[], None], every_s: float) -> Iterator[None]:
    """Renew the lease from a thread while a blocking step runs (and once when it ends)."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(every_s):
            keepalive()

    thread = threading.Thread(target=renew, name="farm-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        keepalive()


def _planned_positions(a: Assignment) -> dict[str, tuple[int, int]]:
    """Each test's planned (index, count) among its function's parametrized items ({}: unknown)."""
    if len(a.param_index) != len(a.test_ids) or len(a.param_count) != len(a.test_ids):
        return {}
    return {t: (i, n) for t, i, n in zip(a.test_ids, a.param_index, a.param_count, strict=True)}


def _missing_why(obj: dict[str, Any], collect_errors: list[TestRecord]) -> str:
    """Why an assigned test was not collected, from the plugin's "missing" line."""
    test_id = obj["id"]
    for err in collect_errors:
        if test_id.startswith(err.test_id):
            return f"not collected on the worker: collecting {err.test_id} failed\n{err.longrepr}"
    return rec.missing_why(test_id, obj.get("collected"), obj.get("more"), obj.get("planned"))


def _complete(
    sink: RecordSink, a: Assignment, worker: str, node: str, state: str, started_at: float, code: int, sent: int,
    message: str,
) -> Completion:
    completion = Completion(a.suite_id, a.assignment_id, a.attempt, worker, node, state, started_at, time.time(),
                            code, sent, message)
    sink.send_completion(completion)
    return completion


def collect_suite(
    spec: SuiteSpec, *, backend: ExecutionBackend, bundle: Callable[[str], object], worker: str, settings: Settings,
    keepalive: Callable[[], None] = lambda: None,
) -> Collection:
    """Collect a suite's tests with `pytest --collect-only` in a fresh environment."""
    started = time.monotonic()
    with _renewing(keepalive, settings.lease_s / LEASE_RENEWALS):
        archive = bundle(spec.bundle_digest)
    request = RunRequest(
        mode="collect",
        bundle=archive,  # type: ignore[arg-type]
        pytest_args=spec.pytest_args,
        test_ids=(),
        label=f"{spec.suite_id}-collect",
        output_cap=settings.output_cap_bytes,
        longrepr_cap=settings.longrepr_cap_bytes,
    )
    with _renewing(keepalive, settings.lease_s / LEASE_RENEWALS):  # fetching and unpacking the bundle
        run = backend.start(request)
    lines: list[dict[str, object]] = []
    next_keepalive = time.monotonic() + settings.lease_s / LEASE_RENEWALS
    try:
        while True:
            if time.monotonic() >= next_keepalive:
                next_keepalive = time.monotonic() + settings.lease_s / LEASE_RENEWALS
                keepalive()
            for line in run.read_lines(timeout=0.05):
                obj = rec.parse_line(line)
                if obj is not None:
                    lines.append(obj)
            code = run.poll()
            if code is not None:
                break
        result = rec.collect_result(lines)
        output = run.output_tail(8000) if code not in (0, 5) or result.decided else ""
    finally:
        run.close()
    return Collection(spec.suite_id, worker, code, tuple(result.test_ids), tuple(result.decided), output,
                      time.monotonic() - started, result.session)
