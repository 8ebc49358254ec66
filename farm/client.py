"""The submitter's side: upload a bundle, submit a suite, watch it, fetch its report, cancel it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import redis

from farm import keys, registry, store
from farm.bundle import Bundle
from farm.celery_app import CANCEL_SUITE, SUITE_SUBMITTED, make_app
from farm.config import Settings
from farm.errors import BrokerUnreachable, SuiteNotFound, UsageError
from farm.model import SuiteSpec, WorkerInfo
from farm.protocol import encode
from farm.report.schema import expand

FINAL = ("finished", "canceled", "deadline", "error")


@dataclass(frozen=True)
class SuiteOptions:
    """How a suite runs, beyond what it runs."""

    test_timeout_s: float = 0.0
    deadline_s: float = 0.0
    rerun_failures: int = 0
    strict_flaky: bool = False


@dataclass(frozen=True)
class Progress:
    """A snapshot of a suite while it runs."""

    status: str
    total: int
    done: int
    failed: int
    elapsed_s: float


def check_broker_url(url: str) -> str:
    """The URL if it names a Redis server farm can use; a UsageError otherwise."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise UsageError(f"unsupported broker URL {url!r}: farm needs redis://HOST:PORT/DB (or rediss://, unix://)")
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
        raise BrokerUnreachable(f"cannot reach the broker at {_redact(url)}: {exc}") from None
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
        if self._app is None:
            self._app = make_app(self.settings)
        return self._app

    def submit(self, bundle: Bundle, *, project: str, pool: str, dist: str, pytest_args: tuple[str, ...],
               options: SuiteOptions | None = None) -> str:
        """Upload the bundle (if new) and submit the suite; returns its id."""
        options = options or SuiteOptions()
        suite_id = new_suite_id()
        spec = SuiteSpec(suite_id, project, bundle.digest, pool, dist, pytest_args, time.time(),
                         test_timeout_s=options.test_timeout_s, deadline_s=options.deadline_s,
                         rerun_failures=options.rerun_failures, strict_flaky=options.strict_flaky)
        try:
            # The same bytes under the same digest: an existing bundle is only given a new lease.
            self.store.set(keys.bundle(bundle.digest), bundle.data, ex=self.settings.bundle_ttl_s, nx=True)
            self.store.expire(keys.bundle(bundle.digest), self.settings.bundle_ttl_s)
            self.store.hset(keys.suite(suite_id), mapping={
                "spec": encode(spec), "status": "submitted", "submitted_at": spec.submitted_at,
            })
            # Even a suite that never finishes (its farm went away) expires in time.
            self.store.expire(keys.suite(suite_id), self.settings.suite_ttl_s)
            self.store.zadd(keys.SUBMITTED, {suite_id: spec.submitted_at})
            self.app.send_task(SUITE_SUBMITTED, args=[suite_id])
        except redis.RedisError as exc:
            raise BrokerUnreachable(f"lost the broker while submitting: {exc}") from None
        return suite_id

    def progress(self, suite_id: str) -> Progress:
        status, total, done, submitted = self.store.hmget(keys.suite(suite_id),
                                                          ["status", "total", "done", "submitted_at"])
        if status is None:
            raise SuiteNotFound(f"no suite {suite_id!r} in this farm")
        counts = self.store.hmget(keys.counts(suite_id), ["failed", "error", "timeout", "crashed"])
        failed = sum(int(c or 0) for c in counts)
        elapsed = time.time() - float(submitted or time.time())
        return Progress(keys.text(status), int(total or 0), int(done or 0), failed, elapsed)

    def wait(self, suite_id: str, on_progress: Callable[[Progress], None], interval_s: float = 0.1) -> Progress:
        """Poll until the suite ends, reporting progress; returns the final snapshot."""
        while True:
            p = self.progress(suite_id)
            on_progress(p)
            if p.status in FINAL and self.store.exists(keys.report(suite_id)):
                return p
            time.sleep(interval_s)

    def report(self, suite_id: str) -> dict[str, Any]:
        """The full view of a finished suite's report (`farm.report.schema.expand`)."""
        data = self.store.get(keys.report(suite_id))
        if data is None:
            if self.store.exists(keys.suite(suite_id)):
                raise UsageError(f"suite {suite_id} has not finished yet")
            raise SuiteNotFound(f"no suite {suite_id!r} in this farm")
        # The stored document is lean (docs/report-schema.md); callers get its full view.
        return expand(json.loads(data))

    def cancel(self, suite_id: str) -> None:
        if not self.store.exists(keys.suite(suite_id)):
            raise SuiteNotFound(f"no suite {suite_id!r} in this farm")
        # The flag is what workers check; the message lets the coordinator close the suite.
        self.store.hsetnx(keys.suite(suite_id), "cancel", time.time())
        self.app.send_task(CANCEL_SUITE, args=[suite_id])

    def workers(self) -> list[tuple[WorkerInfo, bool]]:
        """Every announced worker, and whether its heartbeat is fresh."""
        return [(w, registry.is_alive(w, self.settings.worker_stale_s)) for w in registry.all_workers(self.store)]

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
        self.store.close()


def _redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url
