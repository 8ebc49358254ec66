"""Runs one assignment (or one collection) in a backend, streaming records as tests finish."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from farm.config import Settings
from farm.model import Assignment, Collection, Completion, Leak, RecordBatch, Split, SuiteSpec, TestRecord
from farm.outcomes import Outcome
from farm.resources import attribute
from workers import collect_shards
from workers import records as rec
from workers.attempt_loop import MAX_RUNNER_RESTARTS, AttemptLoop, End, StartRunner, Step
from workers.backends.base import ExecutionBackend, Fencing, Measured, RunningPytest, RunRequest, Usage
from workers.suite_envs import PreparedEnv

__all__ = ["MAX_RUNNER_RESTARTS", "collect_suite", "run_assignment", "runner_label", "start_hold"]

log = logging.getLogger("farm.worker")

#: How many times per lease period a worker's LeaseKeeper renews an attempt's (or a collection's) lease.
LEASE_RENEWALS = 4
#: The lowest CPU priority given to a runner (for the assignments published last).
MAX_NICENESS = 10
#: The longest an assignment's start_after holds its runner back: a clock of the coordinator's host
#: ahead of this one must not keep a slot idle (the coordinator's hold is 0.3 s).
MAX_START_HOLD_S = 1.0
#: How often the runner asks whether its suite was canceled.
CANCEL_POLL_S = 0.5
#: How long stopped runners get between TERM and KILL.
STOP_GRACE_S = 3.0
#: A batch is sent once its text reaches this many characters (at most 4 bytes each in UTF-8),
#: whatever its record count, so no message nears the protocol's 64 MiB limit.
BATCH_CHARS = 2 * 1024 * 1024
#: How often the worker samples a runner's process tree (Measured backends): its resident memory,
#: for the peak and --max-memory. A sample reads the tree's /proc children and statm files only
#: (0.13 ms for a tree of four: tree_usage.tree_pids), so 4 a second cost little; a spike shorter than this in
#: the runner itself is still seen (its high-water mark), in its children it may not be.
SAMPLE_INTERVAL_S = 0.25
#: The most leaks one attempt reports (a test that forks hundreds of processes names a few).
MAX_LEAKS = 50


def start_hold(assignment: Assignment, now: float) -> float:
    """How long to wait, at `now`, before the assignment's runner starts (Assignment.start_after:
    one with slack leaves the cores to the critical one's start), at most MAX_START_HOLD_S."""
    return min(MAX_START_HOLD_S, max(0.0, assignment.start_after - now))


def _size(record: TestRecord) -> int:
    return len(record.test_id) + len(record.message) + len(record.longrepr) + sum(
        len(name) + len(text) for name, text in record.sections)


class Clock(Protocol):
    """Wall time and monotonic time: the `time` module, or a stub that tests step."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class RecordSink(Protocol):
    """Where a worker sends what it learns (the coordinator, over Celery)."""

    def send_batch(self, batch: RecordBatch) -> None: ...

    def send_completion(self, completion: Completion) -> None: ...

    def send_split(self, split: Split) -> None: ...


#: What a worker reads of its attempt's split request: (seq, the tail asked for), or None.
SplitRequest = Callable[[], "tuple[int, tuple[str, ...]] | None"]


class KeptRecords:
    """A RecordSink that keeps what it is sent (the image check runs an attempt in-process; tests)."""

    def __init__(self) -> None:
        self.batches: list[RecordBatch] = []
        self.completions: list[Completion] = []
        self.splits: list[Split] = []

    def send_batch(self, batch: RecordBatch) -> None:
        self.batches.append(batch)

    def send_completion(self, completion: Completion) -> None:
        self.completions.append(completion)

    def send_split(self, split: Split) -> None:
        self.splits.append(split)

    def outcomes(self) -> dict[str, Outcome]:
        """Each test's last outcome sent."""
        return {r.test_id: r.outcome for b in self.batches for r in b.records}


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
    batches: int = 0  # sent so far: the next batch's number (`RecordBatch.seq`) is one more
    clock: Clock = time
    last_flush: float = -1.0
    first_started_at: float = 0.0  # the first record's test start, worker clock (epoch seconds; 0: none yet)
    starts: list[tuple[float, str]] = field(default_factory=list)  # each record's (test start, test id)
    attempt_started_at: float = 0.0  # when the worker began the attempt (its clock)

    def __post_init__(self) -> None:
        self.last_flush = self.clock.monotonic()

    def add(self, record: TestRecord) -> None:
        if not self.first_started_at and record.started_at > 0:
            # The runner stamps its own clock: a VM's or an SSH host's may be off from the
            # worker's. Trusted when it falls within the attempt on the worker's clock, else
            # taken as the record's arrival less the test's own duration.
            now = self.clock.time()
            stamped = record.started_at
            plausible = self.attempt_started_at <= stamped <= now
            self.first_started_at = stamped if plausible else max(self.attempt_started_at, now - record.duration_s)
        self.pending.append(record)
        self.starts.append((record.started_at, record.test_id))
        self.pending_chars += _size(record)
        if len(self.pending) >= self.batch_size or self.pending_chars >= BATCH_CHARS:
            self.flush()

    def tick(self) -> None:
        if self.pending and self.clock.monotonic() - self.last_flush >= self.interval_s:
            self.flush()

    def flush(self, *, force: bool = False) -> None:
        if not self.pending and not force:
            return
        a = self.header
        self.batches += 1
        self.sink.send_batch(RecordBatch(a.suite_id, a.assignment_id, a.attempt, self.worker, self.node,
                                         tuple(self.pending), seq=self.batches))
        self.sent += len(self.pending)
        self.pending = []
        self.pending_chars = 0
        self.last_flush = self.clock.monotonic()


def run_assignment(
    assignment: Assignment,
    *,
    backend: ExecutionBackend,
    bundle: Callable[[str], object],
    sink: RecordSink,
    worker: str,
    settings: Settings,
    is_canceled: Callable[[], bool],
    is_stopping: Callable[[], bool] = lambda: False,
    stop_reason: Callable[[], str] = lambda: "",
    split_request: SplitRequest = lambda: None,
    clock: Clock = time,
    planned_files: dict[str, int] | None = None,
    on_stale: Callable[[str], None] = lambda why: None,
    environment: PreparedEnv | None = None,
) -> Completion:
    """Run an assignment to its end and report it; returns the completion it sent.

    The decisions are workers.attempt_loop's; this joins them with the backend, the sink and the
    callbacks. A runner that dies while a test runs gets that test recorded as `crashed` or
    `timeout`, and a new runner (a restart) takes the tests still to run, up to
    MAX_RUNNER_RESTARTS times. At the assignment's own deadline (`budget_s` after its first
    runner started) the test running is recorded `timeout` and the attempt completes `handback`: the
    coordinator queues its unstarted tests again. So it does when `is_stopping` turns true (its
    worker is stopping, or its lease is lost), without a record for the tests running then: they
    did nothing wrong; a runner that dies then is not restarted.

    Once `stop_reason` says something (the suite reached its -x/--maxfail), the runner is stopped
    as soon as the tests running then have reported, and the attempt completes `stopped`; an
    attempt that had not started completes so at once, without running anything.

    The attempt's lease is not renewed here: the task's LeaseKeeper (workers/lease.py) renews it
    from a thread of its own, and `is_stopping` turns true once it is lost. When a callback raises,
    the runner is stopped and its environment removed, the records so far are sent, and the error
    goes on to the caller. `clock` is `time` but in tests.

    Run-time balancing: `split_request` (polled with the flags) names a tail the coordinator
    wants split off; a runner whose backend can fence (workers.backends.base.Fencing) is told to
    run none of it, and once it confirms which tests it cut, they are sent as a Split and left out
    of any later runner; the completion lists them too.

    With `planned_files` (how many items the suite's cached collection holds per file), each runner
    checks its own collection of its files against it; `on_stale` hears, once, why they disagree
    (a file with another number of items, a planned test not collected or collected under
    another id): the cached collection is then dropped (workers/collection_cache.py).
    """
    started_at = clock.time()
    loop = AttemptLoop(assignment, worker)
    step = loop.begin(started_at, canceled=is_canceled(), stop_reason=stop_reason())
    if isinstance(step, End):
        return _complete(sink, assignment, worker, "", step, started_at, 0, 0, clock)
    archive = bundle(assignment.bundle_digest)
    planned_at = _planned_positions(assignment)
    stream: _Stream | None = None
    node, code = "", 0
    noticed: list[str] = []
    usages: list[Usage] = []
    while isinstance(step, StartRunner):
        request = RunRequest(
            mode="run",
            bundle=archive,  # type: ignore[arg-type]
            pytest_args=assignment.pytest_args,
            test_ids=step.test_ids,
            label=runner_label(assignment.assignment_id, step.number),
            output_cap=settings.output_cap_bytes,
            longrepr_cap=settings.longrepr_cap_bytes,
            niceness=min(MAX_NICENESS, assignment.priority),
            test_timeout_s=assignment.test_timeout_s,
            positions=tuple(planned_at.get(t, (-1, 0)) for t in step.test_ids) if planned_at else (),
            planned_files=_files_of(step.test_ids, planned_files or {}),
            env=assignment.env,
            **_in_environment(environment),
        )
        run = backend.start(request)
        loop.runner_started(clock.time())
        node = run.node
        if stream is None:
            stream = _Stream(sink, assignment, worker, node, settings.batch_records, settings.batch_interval_s,
                             clock=clock, attempt_started_at=started_at)
            stream.flush(force=True)  # an empty first batch: the coordinator marks the attempt running
        try:
            code, ended = _drive(run, rec.LineReader(step.test_ids), loop, stream, clock, is_canceled=is_canceled,
                                 is_stopping=is_stopping, stop_reason=stop_reason, split_request=split_request,
                                 noticed=noticed)
            for record in ended.records:
                stream.add(record)
            step = ended.then
        finally:
            try:
                stream.flush()
            finally:
                run.close()  # the environment is gone before the completion says so
                if isinstance(run, Measured):
                    usages.append(run.usage())
    assert stream is not None
    if noticed and planned_files:
        more = f" (and {len(noticed) - 3} more)" if len(noticed) > 3 else ""
        why = "; ".join(noticed[:3]) + more
        on_stale(why)
        if not step.message:  # the report's attempt says so too
            step = replace(step, message=f"collected otherwise than the cached collection: {why}")
    return _complete(sink, assignment, worker, node, step, started_at, code, stream.sent, clock, loop,
                     startup_s=max(0.0, stream.first_started_at - started_at) if stream.first_started_at else 0.0,
                     usages=usages, starts=stream.starts)


def _in_environment(environment: PreparedEnv | None) -> dict[str, Any]:
    """A RunRequest's fields for a run in the suite's environment ({}: the backend's interpreter)."""
    return {} if environment is None else {"python": environment.python, "paths": environment.paths}


def _files_of(test_ids: tuple[str, ...], planned: dict[str, int]) -> tuple[tuple[str, int], ...]:
    """The planned item count of each file of `test_ids` that `planned` knows."""
    files = dict.fromkeys(t.split("::", 1)[0] for t in test_ids)
    return tuple((f, planned[f]) for f in files if f in planned)


def _notice(obj: dict[str, object], noticed: list[str]) -> None:
    """Note where a runner's collection disagrees with the plan's (see run_assignment's planned_files)."""
    kind = obj["k"]
    if kind == "stale":
        noticed.append(f"{obj['id']}: {obj.get('collected')} items collected, {obj.get('planned')} planned")
    elif kind == "missing":
        noticed.append(f"{obj['id']} was not collected")
    elif kind == "start" and obj.get("ran_as"):
        noticed.append(f"{obj['id']} was collected as {obj['ran_as']}")


def runner_label(assignment_id: str, number: int) -> str:
    """Names a runner's environment (its work directory): `ID-aNNN-runner1` for an attempt's first
    runner, `-runner2` for its first restart. Not `-rNN`: that is the coordinator's rerun assignments."""
    return f"{assignment_id}-runner{number}"


def _drive(
    run: RunningPytest,
    lines: rec.LineReader,
    loop: AttemptLoop,
    stream: _Stream,
    clock: Clock,
    *,
    is_canceled: Callable[[], bool],
    is_stopping: Callable[[], bool],
    stop_reason: Callable[[], str],
    noticed: list[str],
    split_request: SplitRequest = lambda: None,
) -> tuple[int, Step]:
    """Feed one runner's lines (read by `lines`), its end and the suite's flags to `loop` until the
    runner ended or `loop` stopped it; returns its exit code and what comes next."""
    next_poll = clock.monotonic() + CANCEL_POLL_S
    fencing = run if isinstance(run, Fencing) else None
    measured = run if isinstance(run, Measured) else None
    next_sample = clock.monotonic()
    while True:
        for line in run.read_lines(timeout=0.05):
            obj = lines.read(line)
            if obj is not None:
                _notice(obj, noticed)
            record = None if obj is None else loop.line(obj, clock.time())
            if record is not None:
                stream.add(record)
        stream.tick()
        code = run.poll()
        if code is not None:
            _fence_reply(fencing, loop, stream)  # confirmed just before it ended: still split off
            return code, loop.runner_exited(code, clock.time(), run, stopping=is_stopping(), stop_reason=stop_reason)
        stop = loop.tick(clock.time(), stopping=is_stopping())
        if stop is None and measured is not None and clock.monotonic() >= next_sample:
            next_sample = clock.monotonic() + SAMPLE_INTERVAL_S
            stop = loop.memory(measured.sample())
        if stop is None and clock.monotonic() >= next_poll:
            next_poll = clock.monotonic() + CANCEL_POLL_S
            stop = loop.polled(canceled=is_canceled(), stop_reason=stop_reason() if loop.wants_stop_reason else "")
            if stop is None and fencing is not None and not loop.fence_out:
                asked = split_request()
                fence = loop.split_asked(*asked) if asked else ()
                if fence:
                    fencing.fence(loop.fence_out, fence)
        _fence_reply(fencing, loop, stream)
        if stop is not None:
            code = run.stop(0.0 if stop.why == "memory" else STOP_GRACE_S, stacks=stop.stacks)
            _fence_reply(fencing, loop, stream)
            return code, loop.runner_stopped(clock.time(), run, stop_reason=stop_reason)


def _fence_reply(fencing: Fencing | None, loop: AttemptLoop, stream: _Stream) -> None:
    """If the runner confirmed the fence out, send what it cut as a Split."""
    if fencing is None or not loop.fence_out:
        return
    reply = fencing.fence_reply()
    if reply is None or reply[0] != loop.fence_out:
        return
    moved = loop.fenced(*reply)
    if moved:
        a = stream.header
        stream.flush()  # the head's records so far go first
        stream.sink.send_split(Split(a.suite_id, a.assignment_id, a.attempt, stream.worker, reply[0], moved))


def _planned_positions(a: Assignment) -> dict[str, tuple[int, int]]:
    """Each test's planned (index, count) among its function's parametrized items ({}: unknown)."""
    if len(a.param_index) != len(a.test_ids) or len(a.param_count) != len(a.test_ids):
        return {}
    return {t: (i, n) for t, i, n in zip(a.test_ids, a.param_index, a.param_count, strict=True)}


def _complete(
    sink: RecordSink, a: Assignment, worker: str, node: str, end: End, started_at: float, code: int, sent: int,
    clock: Clock, loop: AttemptLoop | None = None, startup_s: float = 0.0, usages: Sequence[Usage] = (),
    starts: Sequence[tuple[float, str]] = (),
) -> Completion:
    leaks = tuple(Leak(attribute(at, starts), "process", detail[:200])
                  for u in usages for at, detail in u.leftovers)[:MAX_LEAKS]
    completion = Completion(a.suite_id, a.assignment_id, a.attempt, worker, node, end.state.value, started_at,
                            clock.time(), code, sent, end.message,
                            split_off=tuple(loop.split_off) if loop else (),
                            split_seqs=tuple(loop.split_seqs) if loop else (), startup_s=startup_s,
                            peak_rss_bytes=max((u.peak_rss_bytes for u in usages), default=0),
                            cpu_s=round(sum(u.cpu_s for u in usages), 3), leaks=leaks)
    sink.send_completion(completion)
    return completion


def collect_suite(
    spec: SuiteSpec, *, backend: ExecutionBackend, bundle: Callable[[str], object], worker: str, settings: Settings,
    lost: Callable[[], bool] = lambda: False, collectors: int = 1, environment: PreparedEnv | None = None,
) -> Collection | None:
    """Collect a suite's tests with `pytest --collect-only` in a fresh environment; None once `lost`
    says the collection's lease is lost: its runners are stopped (the coordinator collects again).

    With `collectors` > 1, that many runners at once each collect every K-th file of the same walk
    (workers/collect_shards.py puts them back in one collection's order); when their shards do not
    add up to one collection (a hook that sees every item, a failed collection, ...), it collects
    again in one runner, so the result is what a single collection gives."""
    started = time.monotonic()
    archive = bundle(spec.bundle_digest)
    if lost():
        return None
    within = _in_environment(environment)
    split = _collect_split(spec, archive, backend, settings, lost, collectors, within) if collectors > 1 else None
    if split is None and lost():
        return None
    if split is not None:
        lines, code, output = split
    else:
        collected = _collect_runs(spec, archive, backend, settings, lost, [(0, 1)], within)
        if collected is None:
            return None
        (lines, code, output), = collected
    result = rec.collect_result(lines)
    if not (code not in (0, 5) or result.decided):
        output = ""
    return Collection(spec.suite_id, worker, code, tuple(result.test_ids), tuple(result.decided), output,
                      time.monotonic() - started, result.session)


def _collect_split(
    spec: SuiteSpec, archive: object, backend: ExecutionBackend, settings: Settings, lost: Callable[[], bool],
    count: int, within: dict[str, Any],
) -> tuple[list[dict[str, object]], int, str] | None:
    """One collection from `count` shards, or None (lost, or the shards do not add up to one)."""
    runs = _collect_runs(spec, archive, backend, settings, lost, [(i, count) for i in range(count)], within)
    if runs is None:
        return None
    merged = collect_shards.merge([lines for lines, _, _ in runs], [code for _, code, _ in runs])
    if merged is None:
        log.info("suite %s: its %d collecting runners did not add up to one collection (exit codes %s): "
                 "collecting it again in one", spec.suite_id, count, [code for _, code, _ in runs])
        return None
    outputs = [out for _, _, out in runs[:1 if merged.whole else count] if out]
    output = "\n".join(outputs)[-8000:]
    return merged.lines, merged.exit_code, output


def _collect_runs(
    spec: SuiteSpec, archive: object, backend: ExecutionBackend, settings: Settings, lost: Callable[[], bool],
    shards: list[tuple[int, int]], within: dict[str, Any],
) -> list[tuple[list[dict[str, object]], int, str]] | None:
    """Start a collecting runner per shard at once and read them to their ends: each one's lines,
    exit code and output tail; None once `lost` (every runner stopped)."""
    runs: list[RunningPytest] = []
    try:
        for shard in shards:
            runs.append(backend.start(RunRequest(
                mode="collect",
                bundle=archive,  # type: ignore[arg-type]
                pytest_args=spec.pytest_args,
                test_ids=(),
                label=f"{spec.suite_id}-collect",  # the shards too: their work directories differ by a suffix
                output_cap=settings.output_cap_bytes,
                longrepr_cap=settings.longrepr_cap_bytes,
                shard=shard,
                env=spec.env,
                **within,
            )))
        lines: list[list[dict[str, object]]] = [[] for _ in runs]
        codes: list[int | None] = [None for _ in runs]
        while any(code is None for code in codes):
            for n, run in enumerate(runs):
                if codes[n] is not None:
                    continue
                for line in run.read_lines(timeout=0.05 / len(runs)):
                    obj = rec.parse_line(line)
                    if obj is not None:
                        lines[n].append(obj)
                codes[n] = run.poll()
            if lost():
                for n, run in enumerate(runs):
                    if codes[n] is None:
                        run.stop(STOP_GRACE_S)
                return None
        ended = [code for code in codes if code is not None]
        return [(lines[n], ended[n], run.output_tail(8000))
                for n, run in enumerate(runs)]
    finally:
        for run in runs:
            run.close()
