"""The worker's Celery tasks: thin wrappers that decode, run, and send results on."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import msgpack
import redis
from celery import Celery

from farm import keys, registry, store
from farm.celery_app import (
    ASSIGNMENT_COMPLETED,
    ASSIGNMENT_SPLIT,
    COLLECT_SUITE,
    RECORD_BATCH,
    RUN_ASSIGNMENT,
    SUITE_COLLECTED,
    pool_queue,
    send_assignment,
    send_message,
)
from farm.config import Settings
from farm.errors import BundleRefused, FarmError, InfrastructureError, ProtocolError, SignatureError
from farm.model import Assignment, Collection, Completion, RecordBatch, Split, SuiteSpec
from farm.protocol import decode
from farm.signing import Keyring
from farm.states import AttemptState
from farm.suite_env import SuiteEnv
from farm.transport import drop_unsigned
from workers import lease, runner, stopping
from workers.backends.base import ExecutionBackend
from workers.bundles import BundleCache
from workers.busy_slots import BusySlots
from workers.collection_cache import CollectionCache, cache_key, collect_cached, collect_fresh
from workers.stage_collection import collect_staged
from workers.suite_envs import EnvBuildError, PreparedEnv

log = logging.getLogger("farm.worker")

#: How many times an assignment may be put back on the queue by workers it asks to avoid,
#: and how long such a worker waits before it puts it back (so another worker takes it).
MAX_BOUNCES = 20
BOUNCE_WAIT_S = 0.25


@dataclass
class WorkerContext:
    """What every task of one worker process needs (built once, before the pool forks)."""

    app: Celery
    settings: Settings
    backend: ExecutionBackend
    keyring: Keyring  # signs what the worker sends, and must have signed what it runs
    name: str = "worker"
    slots: int = 1  # assignments it runs at once: a local collection may use as many runners
    #: processors this worker may use (more collecting runners than these only add starts)
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    busy: BusySlots = field(init=False)  # which pool processes run a task (made before the fork)

    def __post_init__(self) -> None:
        self.busy = BusySlots(self.slots)

    def collectors(self) -> int:
        """How many runners collect a suite at once (workers/collect_shards.py): one per slot not
        running another task (a shared worker's other slots may run assignments), and no more
        than its processors: a collection imports in every runner at once, and 16 collecting
        runners on 2 cores made the skewed suite's first run 1.80 x its bound (1.60 x with one)."""
        if not self.settings.parallel_collection or not getattr(self.backend, "parallel_collection", False):
            return 1
        return max(1, min(self.slots, self.cores) - self.busy.others())

    @cached_property
    def store(self) -> redis.Redis:
        return store.connect(self.settings.state)

    @cached_property
    def collections(self) -> CollectionCache:
        return CollectionCache(self.store, self.settings.bundle_ttl_s)

    def collection_key(self, bundle_digest: str, pytest_args: tuple[str, ...], env_key: str = "") -> str:
        """The collection cache's key for a bundle and arguments under this worker's interpreter,
        in the suite environment `env_key` names if any (another pytest collects otherwise); ""
        when there is no caching (turned off, or a backend that cannot name its interpreter)."""
        environment = getattr(self.backend, "environment", None)
        if not self.settings.collection_cache or environment is None:
            return ""
        fingerprint = environment()
        if fingerprint and env_key:
            fingerprint += f"\nsuite environment {env_key}"
        return cache_key(bundle_digest, pytest_args, fingerprint) if fingerprint else ""

    @contextlib.contextmanager
    def suite_environment(self, env: SuiteEnv, bundle_digest: str) -> Iterator[PreparedEnv | None]:
        """The suite's environment, built or reused by the backend (None: the suite has none, it
        runs under the backend's interpreter), in use (not evicted) until the block ends;
        EnvBuildError when it cannot be built."""
        if not env:
            yield None
            return
        prepare = getattr(self.backend, "prepare_env", None)
        if prepare is None:
            raise EnvBuildError(f"could not build the suite's environment: the {self.backend.name} backend "
                                "does not build suite environments")
        prepared: PreparedEnv = prepare(env, self.bundles.path(bundle_digest), bundle_digest)
        try:
            yield prepared
        finally:
            release = getattr(self.backend, "release_env", None)
            if release is not None:
                release(prepared)

    def planned_files(self, key: str) -> dict[str, int]:
        """The cached collection's item count per file ({}: none cached, or the store did not answer)."""
        if not key:
            return {}
        try:
            return self.collections.files(key)
        except redis.RedisError as exc:
            log.warning("could not read the cached collection %s: %s", key[:12], exc)
            return {}

    @cached_property
    def bundles(self) -> BundleCache:
        return BundleCache(self.settings.cache_dir, self.store, self.settings.max_unpacked_bytes)

    def claim(self, a: Assignment) -> bool:
        """Take the lease of an attempt (`lease.CLAIM`); False if it is superseded, ended, or was
        claimed before (running elsewhere, or its worker died and its lease lapsed)."""
        akey = keys.attempt_key(a.assignment_id, a.attempt)
        return bool(self._claim(keys=[keys.current(a.suite_id), keys.claims(a.suite_id), keys.lease(a.suite_id, akey)],
                                args=[a.assignment_id, str(a.attempt), akey, self.name,
                                      int(self.settings.lease_s * 1000), int(self.settings.suite_ttl_s * 1000)]))

    @cached_property
    def _claim(self) -> Any:
        return self.store.register_script(lease.CLAIM)

    def claim_collection(self, suite_id: str) -> bool:
        """Take the lease of a suite's collection, and say it started (the coordinator watches it)."""
        if not self.store.set(keys.lease(suite_id, "collect"), self.name, nx=True,
                              px=int(self.settings.lease_s * 1000)):
            return False
        self.store.hset(keys.suite(suite_id), "collect_started", self.name)
        return True

    @cached_property
    def polls(self) -> redis.Redis:
        """The state store for renewals and polls while an attempt runs: each call answers or fails
        within a renewal period, so a cut link never holds the runner's loop for long."""
        return lease.quick_connection(self.settings.state, self.settings.lease_s / runner.LEASE_RENEWALS)

    def keeper(self, a: Assignment) -> lease.LeaseKeeper:
        """The keeper of an attempt's lease, just claimed (see workers.lease)."""
        return self.lease_keeper(keys.lease(a.suite_id, keys.attempt_key(a.assignment_id, a.attempt)))

    def lease_keeper(self, key: str) -> lease.LeaseKeeper:
        """The keeper of a lease just claimed (an attempt's, a collection's), on the quick connection."""
        return lease.LeaseKeeper(lease.renewer(self.polls, key, self.name, self.settings.lease_s),
                                 self.settings.lease_s, self.settings.lease_s / runner.LEASE_RENEWALS, name=key)

    def someone_else_can_run(self, a: Assignment) -> bool:
        """Whether `a` should go back to the queue for another worker (it asks to avoid this one)."""
        if self.name not in a.avoid or a.bounces >= MAX_BOUNCES:
            return False
        others = [w for w in registry.alive(self.store, self.settings.worker_stale_s, self.settings.pool)
                  if w.name not in a.avoid]
        return bool(others)

    def is_canceled(self, suite_id: str) -> bool:
        return self.store.hget(keys.suite(suite_id), "cancel") is not None

    def stop_reason(self, suite_id: str) -> str:
        """Why the suite stopped running tests (-x/--maxfail reached), or "" while it runs on."""
        reason = self.store.hget(keys.suite(suite_id), "stop")
        return "" if reason is None else keys.text(reason)

    def send_batch(self, batch: RecordBatch) -> None:
        send_message(self.app, RECORD_BATCH, batch, keyring=self.keyring)

    def send_completion(self, completion: Completion) -> None:
        send_message(self.app, ASSIGNMENT_COMPLETED, completion, keyring=self.keyring)

    def send_split(self, split: Split) -> None:
        send_message(self.app, ASSIGNMENT_SPLIT, split, keyring=self.keyring)

    def send_collection(self, collection: Collection) -> None:
        send_message(self.app, SUITE_COLLECTED, collection, keyring=self.keyring)

    def opened(self, task: str, signed: bytes) -> bytes | None:
        """The payload of a message the farm signed, or None: then it was dropped (one line, a dead letter)."""
        try:
            return self.keyring.open(task, signed)
        except SignatureError as exc:
            drop_unsigned(self.app, pool_queue(self.settings.pool).name, signed, str(exc))
            return None


@dataclass
class AttemptSink:
    """One attempt's way to the coordinator, and its polls, minding the attempt's lease.

    Each message is published from a thread of its own and waited for while the lease is held (so
    they arrive in order); once the lease is lost the wait ends, so a publish blocked on a cut link
    never keeps the runner from being stopped. What it still sends gets there when the link is back,
    and is fenced. Polls use the quick connection, and once the lease is lost ask nothing."""

    ctx: WorkerContext
    keeper: lease.LeaseKeeper
    polls_failing: bool = False  # said once, until a poll answers again

    def send_batch(self, batch: RecordBatch) -> None:
        self._send(lambda: self.ctx.send_batch(batch))

    def send_completion(self, completion: Completion) -> None:
        self._send(lambda: self.ctx.send_completion(completion))

    def send_split(self, split: Split) -> None:
        self._send(lambda: self.ctx.send_split(split))

    def split_request(self, suite_id: str, attempt_key: str) -> tuple[int, tuple[str, ...]] | None:
        """The coordinator's split request for this attempt (coordinator/balance.py), if any."""
        data = self._poll(lambda: self.ctx.polls.hget(keys.splits(suite_id), attempt_key))
        if not isinstance(data, bytes):
            return None
        try:
            asked = msgpack.unpackb(data, raw=False)
            return int(asked["seq"]), tuple(str(t) for t in asked["tail"])
        except (ValueError, KeyError, TypeError, msgpack.UnpackException):
            log.warning("ignoring a malformed split request for %s", attempt_key)
            return None

    def is_canceled(self, suite_id: str) -> bool:
        return bool(self._poll(lambda: self.ctx.polls.hget(keys.suite(suite_id), "cancel") is not None))

    def stop_reason(self, suite_id: str) -> str:
        reason = self._poll(lambda: self.ctx.polls.hget(keys.suite(suite_id), "stop"))
        return keys.text(reason) if isinstance(reason, (bytes, str)) and reason else ""

    def is_stopping(self) -> bool:
        return stopping.requested() or self.keeper.lost()

    def _poll(self, ask: Callable[[], object]) -> object:
        if self.keeper.lost():
            return None
        try:
            answer = ask()
        except redis.RedisError as exc:  # asked again at the next poll
            if not self.polls_failing:
                log.warning("could not poll the state store (asking again every %gs): %s", runner.CANCEL_POLL_S, exc)
            self.polls_failing = True
            return None
        self.polls_failing = False
        return answer

    def _send(self, send: Callable[[], None]) -> None:
        failed: list[BaseException] = []
        done = threading.Event()

        def publish() -> None:
            try:
                send()
            except BaseException as exc:  # handed to the waiting thread, raised there
                failed.append(exc)
            finally:
                done.set()

        threading.Thread(target=publish, name="farm-send", daemon=True).start()
        while not done.wait(0.1):
            if self.keeper.lost():  # it may still get through, and be fenced
                return
        if failed:
            raise failed[0]


def register(ctx: WorkerContext) -> None:
    """Register the worker's tasks on ctx.app under their explicit names."""

    limit = ctx.settings.task_hard_limit_s  # below the visibility timeout: never redelivered while it runs
    # shared=False: Celery would otherwise give these closures over `ctx` to every app made later
    # in the process (a second WorkerContext's app would run the first's tasks, with its keyring).

    @ctx.app.task(name=COLLECT_SUITE, bind=True, time_limit=limit, shared=False)  # type: ignore[untyped-decorator]
    def collect_suite(task: Any, signed: bytes) -> None:
        payload = ctx.opened(COLLECT_SUITE, signed)
        if payload is None:
            return
        try:
            spec = decode(payload, SuiteSpec)
        except ProtocolError as exc:
            log.error("rejected a collect message: %s", exc)
            return
        worker = ctx.name  # the name leases, the registry and avoid lists use
        if ctx.is_canceled(spec.suite_id):  # canceled while its collection waited on the queue
            log.warning("dropping the collection of %s: the suite was canceled", spec.suite_id)
            return
        if not ctx.claim_collection(spec.suite_id):
            log.warning("dropping a delivery of the collection of %s: running elsewhere", spec.suite_id)
            return
        # Its lease is renewed by a keeper's thread, as an attempt's; once lost, the runner is stopped.
        keeper = ctx.lease_keeper(keys.lease(spec.suite_id, "collect"))
        collection: Collection | None
        try:
            with keeper, ctx.busy.held(), ctx.suite_environment(spec.env, spec.bundle_digest) as prepared:
                def collect_with(args: tuple[str, ...], fresh: bool) -> tuple[Collection | None, bool]:
                    """A collection with these args: cached by them (a stage's too), or made now."""
                    made = [False]

                    def collect() -> Collection | None:
                        made[0] = True
                        return runner.collect_suite(replace(spec, pytest_args=args, stages=()), backend=ctx.backend,
                                                    bundle=ctx.bundles.path, worker=worker, settings=ctx.settings,
                                                    lost=keeper.lost, collectors=ctx.collectors(),
                                                    environment=prepared)
                    key = ctx.collection_key(spec.bundle_digest, args, prepared.key if prepared else "")
                    if not key:
                        return collect(), True
                    got = collect_fresh(ctx.collections, key, spec.suite_id, collect) if fresh else \
                        collect_cached(ctx.collections, key, spec.suite_id, worker, collect)
                    return got, made[0]
                collection = collect_staged(spec, collect_with)
        except EnvBuildError as exc:  # the suite ends with its one line; the installer's last lines are logged
            log.error("collecting suite %s on %s: %s", spec.suite_id, worker, exc)
            collection = Collection(spec.suite_id, worker, 3, (), (), str(exc),
                                    infrastructure_error=f"{exc.summary} (on {worker})")
        except Exception as exc:  # whatever broke, the coordinator must hear of it, or the suite waits forever
            if not isinstance(exc, FarmError):
                log.exception("collecting suite %s failed", spec.suite_id)
            log.error("collecting suite %s failed: %s", spec.suite_id, exc)
            collection = Collection(spec.suite_id, worker, 3, (), (), f"collection failed on {worker}: {exc}")
        if collection is None or keeper.lost():
            # Not even a failed one: the coordinator took the collection as lost and collects it
            # again (coordinator/sweep.py); a failure sent now would end the suite in error.
            log.warning("sending no collection of %s: its lease is lost", spec.suite_id)
            return
        ctx.send_collection(collection)  # the lease lapses by itself

    @ctx.app.task(name=RUN_ASSIGNMENT, bind=True, time_limit=limit, shared=False)  # type: ignore[untyped-decorator]
    def run_assignment(task: Any, signed: bytes) -> None:
        payload = ctx.opened(RUN_ASSIGNMENT, signed)
        if payload is None:
            return
        try:
            assignment = decode(payload, Assignment)
        except ProtocolError as exc:
            log.error("rejected an assignment message: %s", exc)
            return
        worker = ctx.name  # the name leases, the registry and avoid lists use
        if ctx.someone_else_can_run(assignment):
            time.sleep(BOUNCE_WAIT_S)  # an idle worker it does not avoid takes it meanwhile
            send_assignment(ctx.app, ctx.settings.pool, replace(assignment, bounces=assignment.bounces + 1),
                            keyring=ctx.keyring)
            return
        if not ctx.claim(assignment):
            # A second delivery (Celery's redelivery after a lost pool child, or a duplicate) of an
            # attempt that is running, was given up on, or was superseded: not run twice.
            log.warning("dropping a delivery of %s#%d: superseded or running elsewhere",
                        assignment.assignment_id, assignment.attempt)
            return
        # The lease is renewed by its keeper's thread, not by the runner's loop: a loop blocked on a
        # cut link must not stop the renewals, nor a lost lease wait for the loop. A lost lease
        # stops the runner (is_stopping): the attempt completes `handback`.
        sink = AttemptSink(ctx, ctx.keeper(assignment))
        key = ""

        def stale(why: str) -> None:
            try:
                ctx.collections.invalidate(key, f"{assignment.assignment_id} collected otherwise: {why}")
            except redis.RedisError as exc:
                log.warning("could not drop the cached collection %s: %s", key[:12], exc)

        try:
            # The environment: built at collection on this worker, or now (another worker collected).
            with stopping.running(), sink.keeper, ctx.busy.held(), \
                    ctx.suite_environment(assignment.env, assignment.bundle_digest) as prepared:
                key = ctx.collection_key(assignment.bundle_digest, assignment.pytest_args,
                                         prepared.key if prepared else "")
                hold = runner.start_hold(assignment, time.time())
                if hold > 0:  # claimed, its lease kept: the critical assignment's runner starts first
                    time.sleep(hold)
                runner.run_assignment(
                    assignment, backend=ctx.backend, bundle=ctx.bundles.path, sink=sink, worker=worker,
                    settings=ctx.settings, is_canceled=lambda: sink.is_canceled(assignment.suite_id),
                    is_stopping=sink.is_stopping,
                    stop_reason=lambda: sink.stop_reason(assignment.suite_id),
                    split_request=lambda: sink.split_request(
                        assignment.suite_id, keys.attempt_key(assignment.assignment_id, assignment.attempt)),
                    planned_files=ctx.planned_files(key), on_stale=stale, environment=prepared,
                )
        except Exception as exc:  # as above: always send a completion
            if not isinstance(exc, FarmError):
                log.exception("assignment %s failed", assignment.assignment_id)
            log.error("assignment %s failed: %s", assignment.assignment_id, exc)
            # Not the tests' fault (the disk, the broker): they go back to be run again; unless the
            # worker refuses the bundle itself (over its unpacked cap): then the attempt fails with
            # that one line, as its tests would meet the same refusal again.
            now = time.time()
            state = (AttemptState.FAILED if isinstance(exc, BundleRefused) else AttemptState.HANDBACK).value
            sink.send_completion(Completion(assignment.suite_id, assignment.assignment_id, assignment.attempt,
                                            worker, "", state, now, now, -1, 0, f"worker error on {worker}: {exc}",
                                            infrastructure=isinstance(exc, InfrastructureError)))
        # The lease is not released: it lapses by itself, long after the coordinator has handled
        # the completion. Released now, the sweeper could take the attempt for lost in between.
