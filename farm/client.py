"""The submitter's side: upload a bundle, submit a suite, watch it, fetch its report, cancel it."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import msgpack
import redis

from farm import events, keys, registry, store, task_message
from farm.attempts import Attempt
from farm.bundle import Bundle
from farm.config import Settings
from farm.errors import BrokerUnreachable, ProtocolError, SuiteNotFound, UsageError
from farm.eta import SuiteEta
from farm.gates import Gates
from farm.model import Collection, Stage, SuiteSpec, WorkerInfo
from farm.protocol import decode, encode
from farm.report.schema import expand
from farm.states import FINAL_STATUSES, SuiteStatus
from farm.store import Write
from farm.suite_env import SuiteEnv
from farm.task_names import CANCEL_SUITE, COORDINATOR_QUEUE, SUITE_SUBMITTED
from farm.urls import redact

#: How often a waiting client looks at which assignments ended, for its ETA (seconds).
ETA_REFRESH_S = 1.0


@dataclass(frozen=True)
class SuiteOptions:
    """How a suite runs, beyond what it runs."""

    test_timeout_s: float = 0.0
    deadline_s: float = 0.0
    rerun_failures: int = 0
    strict_flaky: bool = False
    max_memory_bytes: int = 0
    env: SuiteEnv = SuiteEnv()
    gates: Gates = Gates()
    stages: tuple[Stage, ...] = ()
    quarantine: tuple[str, ...] = ()
    quarantine_flake_rate: float = 0.0


@dataclass(frozen=True)
class Progress:
    """A snapshot of a suite while it runs."""

    status: str
    total: int
    done: int
    failed: int
    elapsed_s: float  # from submission to now, or to the end of a finished suite
    eta_s: float | None = None  # time left by the plan's recorded durations; None when unknown
    stage: str = ""  # the stage a staged suite runs (--stage; "" for none)


@dataclass(frozen=True)
class FinishedTest:
    """A test that got an outcome while the suite ran, as `-v` prints it."""

    test_id: str
    outcome: str
    message: str  # the reason of a skip or xfail ("" otherwise)
    worker: str  # "" for the coordinator's own verdicts (not run)


def check_broker_url(url: str) -> str:
    """The URL if it names a Redis server farm can use; a UsageError otherwise."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise UsageError(f"unsupported broker URL {redact(url)!r}: farm needs redis://HOST:PORT/DB (or rediss://, unix://)")
    return url


def connect(settings: Settings) -> redis.Redis:
    """A connection to the state store that answered a PING, or BrokerUnreachable.

    The first PING fails fast (a wrong URL is told at once); the connection returned then rides
    out a Redis restart while the client waits for its suite (farm.store)."""
    url = check_broker_url(settings.state)
    try:
        probe = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
        probe.ping()
        probe.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise BrokerUnreachable(f"cannot reach the broker at {redact(url)}: {exc}") from None
    return store.connect(url)


def new_suite_id() -> str:
    return f"s-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"


class Client:
    """Talks to a farm through its state store and the coordinator's queue."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = connect(settings)
        self._app = None

    @property
    def app(self) -> Any:
        """A Celery app, made when first needed (a cancel): a submission publishes without Celery."""
        if self._app is None:
            from farm.celery_app import make_app

            self._app = make_app(self.settings)
        return self._app

    def submit(self, bundle: Bundle, *, project: str, pool: str, dist: str, pytest_args: tuple[str, ...],
               options: SuiteOptions | None = None) -> str:
        """Upload the bundle (if new) and submit the suite; returns its id."""
        options = options or SuiteOptions()
        suite_id = new_suite_id()
        spec = SuiteSpec(suite_id, project, bundle.digest, pool, dist, pytest_args, time.time(),
                         test_timeout_s=options.test_timeout_s, deadline_s=options.deadline_s,
                         rerun_failures=options.rerun_failures, strict_flaky=options.strict_flaky,
                         max_memory_bytes=options.max_memory_bytes, env=options.env, gates=options.gates,
                         stages=options.stages, quarantine=options.quarantine,
                         quarantine_flake_rate=options.quarantine_flake_rate)
        try:
            # The same bytes under the same digest: an existing bundle is only given a new lease.
            self.store.set(keys.bundle(bundle.digest), bundle.data, ex=self.settings.bundle_ttl_s, nx=True)
            self.store.expire(keys.bundle(bundle.digest), self.settings.bundle_ttl_s)
            with self.store.pipeline() as pipe:  # the suite, its log's first event and its message, at once
                pipe.hset(keys.suite(suite_id), mapping={
                    "spec": encode(spec), "status": SuiteStatus.SUBMITTED, "submitted_at": spec.submitted_at,
                })
                # Even a suite that never finishes (its farm went away) expires in time.
                pipe.expire(keys.suite(suite_id), self.settings.suite_ttl_s)
                events.append(pipe, suite_id, events.submitted(spec), tests=0, ttl_s=self.settings.suite_ttl_s)
                pipe.zadd(keys.SUBMITTED, {suite_id: spec.submitted_at})
                # The coordinator's message, in the same transaction (farm.task_message: no Celery),
                # when the state store is the broker; else on the broker right after.
                on_store = self.settings.state == self.settings.broker_url
                if on_store:
                    task_message.push(pipe, SUITE_SUBMITTED, [suite_id], COORDINATOR_QUEUE)
                pipe.execute()
        except redis.RedisError as exc:
            raise BrokerUnreachable(f"lost the broker while submitting: {exc}") from None
        if not on_store:
            self._send_submitted(suite_id)
        return suite_id

    def _send_submitted(self, suite_id: str) -> None:
        """The coordinator's message on the broker, when the state store is another Redis. The
        suite is stored already: a message that cannot be sent is one warning, since the
        coordinator's sweep starts a submitted suite whose message was lost."""
        try:
            broker = store.connect(check_broker_url(self.settings.broker_url or ""))
            try:
                task_message.push(broker, SUITE_SUBMITTED, [suite_id], COORDINATOR_QUEUE)
            finally:
                broker.close()
        except (redis.RedisError, OSError) as exc:
            print(f"farm: warning: could not send {suite_id}'s message to the broker ({exc}); the coordinator "
                  "starts it when it next sweeps for lost messages", file=sys.stderr, flush=True)

    def progress(self, suite_id: str) -> Progress:
        status, total, done, submitted, finished, stage = self.store.hmget(
            keys.suite(suite_id), ["status", "total", "done", "submitted_at", "finished_at", "stage_name"])
        if status is None:
            raise SuiteNotFound(f"no suite {suite_id!r} in this farm")
        counts = self.store.hmget(keys.counts(suite_id), ["failed", "error", "timeout", "crashed"])
        failed = sum(int(c or 0) for c in counts)
        # A finished suite's clock stopped when it finished.
        end = float(finished) if finished else time.time()
        elapsed = max(0.0, end - float(submitted or end))
        return Progress(keys.text(status), int(total or 0), int(done or 0), failed, elapsed,
                        stage=keys.text(stage) if stage else "")

    def wait(self, suite_id: str, on_progress: Callable[[Progress], None], interval_s: float = 0.1) -> Progress:
        """Poll until the suite ends, reporting progress (with an ETA once running); returns the
        final snapshot."""
        eta: SuiteEta | None = None
        seen_at = 0.0
        ended = False
        while True:
            p = self.progress(suite_id)
            if p.status == SuiteStatus.RUNNING and p.total > 0:
                now = time.time()
                if eta is None:
                    eta = self._plan_eta(suite_id)
                if now - seen_at >= ETA_REFRESH_S:  # the ends of assignments: one small hash
                    self._observe(suite_id, eta, now)
                    seen_at = now
                p = replace(p, eta_s=eta.remaining(now) if p.done < p.total else None)
            on_progress(p)
            if p.status in FINAL_STATUSES and self.store.exists(keys.report(suite_id)):
                return p
            if ended:  # said ended, yet the poll did not see it: never spin, poll at the interval
                time.sleep(interval_s)
            else:
                ended = self._pause(suite_id, interval_s)

    def _pause(self, suite_id: str, interval_s: float) -> bool:
        """Wait `interval_s` between two polls, but no longer than until the suite ends (its
        `keys.ended` stream gets its entry with the report): the end is seen at once, not up to a
        poll later. True if it ended."""
        deadline = time.monotonic() + interval_s
        while (left := deadline - time.monotonic()) > 0:
            # At most 1 s a block: well inside the store's socket timeout, whatever the interval.
            if self.store.xread({keys.ended(suite_id): "0-0"}, count=1, block=max(1, int(min(left, 1.0) * 1000))):
                return True
        return False

    def _plan_eta(self, suite_id: str) -> SuiteEta:
        """The suite's plan as the ETA needs it: read once, when the suite starts running."""
        started, raw_spec = self.store.hmget(keys.suite(suite_id), ["started_at", "spec"])
        attempts = [Attempt.unpack(v) for v in self.store.hvals(keys.assignments(suite_id))]
        first = sorted((a for a in attempts if a.number == 1), key=lambda a: (a.priority, a.assignment_id))
        slots, overhead = 1, 0.0
        if raw_spec is not None:
            spec = decode(raw_spec if isinstance(raw_spec, bytes) else raw_spec.encode(), SuiteSpec)
            slots = sum(w.slots for w in registry.alive(self.store, self.settings.worker_stale_s, spec.pool))
            raw = self.store.hget(keys.history(spec.project), keys.HISTORY_OVERHEAD_FIELD)
            overhead = float(raw) if raw is not None else 0.0
        return SuiteEta([(a.assignment_id, a.expected_s) for a in first], slots=slots or 1,
                        started_at=float(started or time.time()), overhead_s=overhead)

    def _observe(self, suite_id: str, eta: SuiteEta, now: float) -> None:
        current = {keys.text(a): keys.text(v) for a, v in self.store.hgetall(keys.current(suite_id)).items()}
        new = [a for a in current if not eta.known(a)]
        if new:  # reruns and crash retries, published after the plan
            attempts = [keys.attempt_key(a, int(current[a].rstrip("!"))) for a in new]
            for a, v in zip(new, self.store.hmget(keys.assignments(suite_id), attempts), strict=True):
                expected = Attempt.unpack(v).expected_s if v else 0.0
                eta.published(a, expected, now)
        eta.ended([a for a, v in current.items() if v.endswith("!")], now)

    def report(self, suite_id: str) -> dict[str, Any]:
        """The full view of a finished suite's report (`farm.report.schema.expand`)."""
        data = self.store.get(keys.report(suite_id))
        if data is None:
            if self.store.exists(keys.suite(suite_id)):
                raise UsageError(f"suite {suite_id} has not finished yet")
            raise SuiteNotFound(f"no suite {suite_id!r} in this farm")
        # The stored document is lean (docs/report-schema.md); callers get its full view.
        return expand(json.loads(data))

    def cancel(self, suite_id: str) -> str | None:
        """Ask the farm to cancel the suite; returns None, or the final status of a suite that had
        already ended (nothing is then asked)."""
        status = self.store.hget(keys.suite(suite_id), "status")
        if status is None:
            raise SuiteNotFound(f"no suite {suite_id!r} in this farm")
        if keys.text(status) in FINAL_STATUSES:
            return keys.text(status)
        # The flag is what workers check; the message lets the coordinator close the suite.
        key = keys.suite(suite_id)
        now = time.time()

        def decide(read: tuple[Any, Any]) -> tuple[None, Write]:
            flagged, total = read
            if flagged is not None:  # the first request sets the flag and is logged, in one transaction
                return None, None

            def write(pipe: Any) -> None:
                pipe.hset(key, "cancel", now)
                events.append(pipe, suite_id, events.Event(events.Kind.CANCEL, now, detail="requested"),
                              tests=int(total or 0), ttl_s=self.settings.suite_ttl_s)
            return None, write

        store.transact(self.store, [key], lambda pipe: (pipe.hget(key, "cancel"), pipe.hget(key, "total")), decide)
        self.app.send_task(CANCEL_SUITE, args=[suite_id])
        return None

    def workers(self) -> list[tuple[WorkerInfo, bool]]:
        """Every announced worker, and whether its heartbeat is fresh."""
        return [(w, registry.is_alive(w, self.settings.worker_stale_s)) for w in registry.all_workers(self.store)]

    def spec(self, suite_id: str) -> SuiteSpec:
        data: Any = self.store.hget(keys.suite(suite_id), "spec")
        if data is None:
            raise SuiteNotFound(f"no suite {suite_id!r} in this farm")
        return decode(data, SuiteSpec)

    def collection(self, suite_id: str) -> Collection | None:
        """What the suite's collection found, once it is back (None before, or if unreadable)."""
        data: Any = self.store.hget(keys.suite(suite_id), "collection")
        try:
            return None if data is None else decode(data, Collection)
        except ProtocolError:
            return None

    def finished(self, suite_id: str, after: str = "0-0", count: int = 1000) -> tuple[str, list[FinishedTest]]:
        """Tests that got an outcome after stream entry `after`, in merge order, and the last entry read."""
        tests: list[FinishedTest] = []
        entries: Any = self.store.xrange(keys.finished(suite_id), f"({after}", "+", count=count)
        for entry_id, fields in entries:
            after = keys.text(entry_id)
            worker = keys.text(fields.get(b"w", b""))
            try:
                rows = msgpack.unpackb(fields.get(b"r", b"\x90"), raw=False)
                tests.extend(FinishedTest(str(t), str(o), str(m), worker) for t, o, m in rows)
            except (ValueError, TypeError, msgpack.UnpackException):
                continue  # not ours: skipped, as the report has every test anyway
        return after, tests

    def all_events(self, suite_id: str) -> list[events.Event]:
        """The suite's whole event log, page by page."""
        return list(self.iter_events(suite_id))

    def iter_events(self, suite_id: str) -> Iterator[events.Event]:
        """The suite's event log, oldest first, read a page at a time as it is consumed."""
        after, found = self.events(suite_id)
        while found:
            yield from found
            after, found = self.events(suite_id, after)

    def events(self, suite_id: str, after: str = "-", count: int = 1000) -> tuple[str, list[events.Event]]:
        """The suite's events after log entry `after` ("-": from the first), oldest first, and the
        last entry read (SuiteNotFound if the suite is unknown)."""
        entries: Any = self.store.xrange(keys.events(suite_id), "-" if after == "-" else f"({after}", "+",
                                         count=count)
        if not entries and after == "-" and not self.store.exists(keys.suite(suite_id)):
            raise SuiteNotFound(f"no suite {suite_id!r} in this farm")
        out = []
        for entry_id, fields in entries:
            after = keys.text(entry_id)
            out.append(events.unpack(fields[b"e"]))
        return after, out

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
        self.store.close()
