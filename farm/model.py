"""The domain: suites, assignments, test records, collections and completions.

Frozen dataclasses only; how they travel is `farm.protocol`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from farm.gates import Gates
from farm.outcomes import Outcome
from farm.suite_env import SuiteEnv

#: How a node name (where a run ran: a record's, a completion's, an attempt's `node`) starts for the
#: local backend's runners: `local:HOST`. They are the only ones that fence a split
#: (workers.backends.base.Fencing), so the coordinator asks only them (coordinator/balancing.py).
LOCAL_NODE = "local:"


@dataclass(frozen=True)
class Stage:
    """One stage of a staged suite (--stage NAME=PYTEST_ARGS): its tests are those its args select
    that no earlier stage selected; it starts only when the one before it passed its gates."""

    name: str
    pytest_args: tuple[str, ...]


@dataclass(frozen=True)
class SuiteSpec:
    """What the submitter asked for: run this bundle's tests with these pytest args."""

    suite_id: str
    project: str  # key under which durations are recorded for the next split
    bundle_digest: str  # sha256 of the bundle archive; workers fetch and cache by it
    pool: str
    dist: str  # "load" or "loadfile"
    pytest_args: tuple[str, ...]
    submitted_at: float
    test_timeout_s: float = 0.0  # a test running longer is stopped and recorded `timeout` (0: none)
    deadline_s: float = 0.0  # the whole suite ends this long after submission (0: none)
    rerun_failures: int = 0  # failing tests run again up to this many times; a pass then is `flaky`
    strict_flaky: bool = False  # a flaky test fails the suite
    max_memory_bytes: int = 0  # --max-memory: a runner whose process tree's RSS exceeds it is stopped (0: none)
    env: SuiteEnv = SuiteEnv()  # --requirements, --install: the environment the suite runs in (empty: none)
    gates: Gates = Gates()  # --min-pass-rate, --max-failures, ...: evaluated when the suite (or a stage) ends
    stages: tuple[Stage, ...] = ()  # --stage, in order (empty: one stage, the whole suite)
    # Tests that run but do not fail the suite: listed by id (--quarantine, the config), or whose
    # flake rate in the project's history is above this percent (0: none by rate).
    quarantine: tuple[str, ...] = ()
    quarantine_flake_rate: float = 0.0


@dataclass(frozen=True, slots=True)  # one per test, 100,000 in a large suite
class TestRecord:
    """The final result of one test as one runner saw it."""

    __test__ = False  # not a pytest test class, despite its name

    test_id: str
    outcome: Outcome
    duration_s: float = 0.0
    phase: str = "call"  # the phase that decided the outcome: setup, call, teardown or collect
    message: str = ""  # the crash message (whole: may span lines), skip reason or xfail reason
    longrepr: str = ""  # the full failure report, as pytest prints it (capped)
    sections: tuple[tuple[str, str], ...] = ()  # captured output (name, text), each capped
    started_at: float = 0.0
    # How long each of pytest's phases took (0: it did not run); `--durations` lists them.
    setup_s: float = 0.0
    call_s: float = 0.0
    teardown_s: float = 0.0
    # The node id the runner ran it as, when its collection named the test differently (its
    # parameter ids changed between collections); "" when it ran under the planned id.
    ran_as: str = ""


@dataclass(frozen=True)
class SessionInfo:
    """What the collecting pytest session saw: its effective options (the command line after the
    project's ini `addopts`), what it deselected, and the versions it ran with."""

    maxfail: int = 0  # -x / --maxfail=N (0: no limit)
    verbose: int = 0  # -v counts up, -q down
    reportchars: str = "fE"  # -r CHARS, as given (pytest's default "fE")
    tbstyle: str = "auto"  # --tb
    durations: int = -1  # --durations=N (0: all; -1: not asked for)
    durations_min: float = -1.0  # --durations-min (-1: not given: 0.005s, or 0 from -vv on)
    deselected: int = 0  # tests deselected by -k, -m or a plugin
    configfile: str = ""  # the ini file, relative to the rootdir ("" for none)
    platform: str = ""  # sys.platform
    python: str = ""  # platform.python_version()
    pytest: str = ""  # pytest.__version__
    pluggy: str = ""
    plugins: str = ""  # pytest's header line: "xdist-3.8.0, timeout-2.3.1"


@dataclass(frozen=True)
class Collection:
    """What `pytest --collect-only` found in a bundle, on a worker of the target pool."""

    suite_id: str
    worker: str
    exit_code: int  # pytest's own exit code of the collection run
    test_ids: tuple[str, ...]  # runnable items, in collection order
    # Outcomes already decided at collection: module-level skips and collection errors.
    decided: tuple[TestRecord, ...] = ()
    output: str = ""  # the tail of pytest's output, shown when collection failed outright
    duration_s: float = 0.0
    session: SessionInfo = SessionInfo()  # the defaults when the worker could not tell
    # Why the worker could not collect at all, before pytest ran (its suite environment could not
    # be built), in one line: the suite ends in error with it ("": pytest ran).
    infrastructure_error: str = ""


@dataclass(frozen=True)
class Assignment:
    """A slice of a suite's tests that one runner executes as one pytest process."""

    suite_id: str
    assignment_id: str
    attempt: int
    bundle_digest: str
    pytest_args: tuple[str, ...]
    test_ids: tuple[str, ...]
    expected_s: float = 0.0  # sum of recorded durations, 0 when unknown
    test_timeout_s: float = 0.0  # from the suite
    deadline_at: float = 0.0  # the suite's deadline as an epoch time: the run stops there (0: none)
    # The assignment's own deadline, counted from when a worker starts it: past it, the worker
    # stops the run and hands its unstarted tests back (0: none; see Settings).
    budget_s: float = 0.0
    # Workers that should not run it (where its tests crashed, or failed before a rerun): such a
    # worker puts it back on the queue for another, unless none is alive or it came back too often.
    avoid: tuple[str, ...] = ()
    bounces: int = 0
    # Parallel to test_ids: each test's position among the parametrized items of its function in
    # the plan's collection, and how many there were (-1 and 0 for a test without parameters);
    # empty when unknown. A runner that collects the test under another parameter id (made from
    # the time, say) runs the item at that position in its place (workers/pytest_plugin/run_mode.py).
    param_index: tuple[int, ...] = ()
    param_count: tuple[int, ...] = ()
    # Publish order: 0 for the largest. On a host with more slots than cores, runners of later
    # assignments get a lower CPU priority, so the critical path starts first.
    priority: int = 0
    # An epoch time before which its runner does not start (0: at once): an assignment with slack
    # against the longest, published with the plan, leaves the cores to the critical one's start.
    start_after: float = 0.0
    # From the suite's --max-memory: the worker stops a runner whose whole process tree's RSS
    # exceeds it and records the test running then `crashed` (0: no limit).
    max_memory_bytes: int = 0
    env: SuiteEnv = SuiteEnv()  # from the suite: the environment its runner runs in
    stage: str = ""  # the stage its tests belong to ("" in a suite without stages)


@dataclass(frozen=True)
class RecordBatch:
    """Records streamed by a worker while an assignment runs."""

    suite_id: str
    assignment_id: str
    attempt: int
    worker: str
    node: str  # the environment the assignment runs in (local sandbox, SSH host, VM)
    records: tuple[TestRecord, ...] = field(default_factory=tuple)
    # The batch's number in its attempt (1, 2, ...: the worker's, in the order it sends them); the
    # merge counts and logs a number once, so a batch delivered again is not counted again.
    # 0: not numbered (a worker older than round 5): merged and counted as often as it comes.
    seq: int = 0


@dataclass(frozen=True)
class Completion:
    """Sent once when an assignment attempt ends, however it ended."""

    suite_id: str
    assignment_id: str
    attempt: int
    worker: str
    node: str
    # "done"; "failed" (runner or infrastructure failure); "canceled"; "deadline" (the suite's);
    # "stopped" (the suite reached -x/--maxfail: its unstarted tests are not_run);
    # "handback": stopped before its end (its own deadline, its worker stopping, the broker
    # lost): its unstarted tests go back to the coordinator to be queued again.
    state: str
    started_at: float
    finished_at: float
    exit_code: int  # the runner's exit code (-N: killed by signal N)
    reported: int  # how many records the worker sent for this attempt
    message: str = ""  # why, when state is not "done"
    # The environment failed, not the tests (a VM that panicked or would not boot, a lost
    # connection): the tests handed back should run on another worker.
    infrastructure: bool = False
    # The tests this attempt split off while it ran (run-time balancing, coordinator/balance.py),
    # with the split request (`seq`) each was cut for: the coordinator moves any of them that the
    # Split message has not moved yet (idempotent), so they are never marked not run here.
    split_off: tuple[str, ...] = ()
    split_seqs: tuple[int, ...] = ()
    # Seconds from the attempt's start on the worker to its first test's start (bundle, runner
    # start-up, the runner's collection; worker clock): what one more assignment costs before it
    # runs a test. 0: unknown (no test started). Run-time balancing weighs a split against it.
    startup_s: float = 0.0
    # What its runners' process trees used (farm/resources.py, docs/how-it-works.md "Resources and
    # leaks"): the highest resident memory seen (0: not measured: a backend that cannot, or a
    # worker older than this field) and the CPU seconds of every process they started.
    peak_rss_bytes: int = 0
    cpu_s: float = 0.0
    leaks: tuple[Leak, ...] = ()  # what its tests left behind when its runners ended


@dataclass(frozen=True)
class Leak:
    """Something a test left behind when its runner ended: a process still alive (killed then)."""

    test: str  # the test that was running when it was made ("" if before any test: the session's)
    kind: str  # "process" ("file": reserved, see docs/how-it-works.md "Resources and leaks")
    detail: str  # its command line, for a process


@dataclass(frozen=True)
class Split:
    """Sent when an attempt's runner confirmed a split: it will run none of `test_ids` (its
    unstarted tail, cut at split request `seq`); the coordinator moves them to a new assignment."""

    suite_id: str
    assignment_id: str
    attempt: int
    worker: str
    seq: int
    test_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkerInfo:
    """A worker process as it announces itself."""

    name: str
    host: str
    slots: int
    pool: str
    backend: str
    seen_at: float = 0.0  # the last heartbeat (epoch time)
    health: str = ""  # why the worker stopped consuming ("" while it is healthy)


@dataclass(frozen=True, slots=True)  # one per test run
class TestRun:
    """One test's result in one attempt (the `attempts` hash; the report lists them under each test)."""

    __test__ = False  # not a pytest test class, despite its name

    test_id: str
    assignment: str
    attempt: int
    worker: str
    node: str
    outcome: str
    duration_s: float
    started_at: float
    fenced: bool = False  # from an attempt that no longer owned the test: history only, never counted

    @property
    def key(self) -> str:
        return f"{self.test_id}\0{self.assignment}\0{self.attempt}"


def record_to_plain(r: TestRecord) -> dict[str, Any]:
    """A record as plain data (msgpack-able): how the store and the event log keep it."""
    return {"test_id": r.test_id, "outcome": r.outcome.value, "duration_s": r.duration_s, "phase": r.phase,
            "message": r.message, "longrepr": r.longrepr, "sections": [list(s) for s in r.sections],
            "started_at": r.started_at, "setup_s": r.setup_s, "call_s": r.call_s, "teardown_s": r.teardown_s,
            "ran_as": r.ran_as}


def record_from_plain(d: dict[str, Any]) -> TestRecord:
    """The inverse of `record_to_plain`."""
    return TestRecord(d["test_id"], Outcome(d["outcome"]), d["duration_s"], d["phase"], d["message"],
                      d["longrepr"], tuple((n, t) for n, t in d["sections"]), d["started_at"],
                      d.get("setup_s", 0.0), d.get("call_s", 0.0), d.get("teardown_s", 0.0), d.get("ran_as", ""))
