"""`farm worker`: parse options, build the worker's Celery app, and run it in the foreground."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis
from celery import signals
from celery.utils.nodenames import default_nodename, host_format

from farm import counters, registry, signing, store
from farm.celery_app import make_app, pool_queue
from farm.config import Settings
from farm.errors import UsageError
from farm.extras import require_libvirt
from farm.model import WorkerInfo
from farm.service_main import run_celery_worker, wait_for_broker
from workers import stopping
from workers.backends import ExecutionBackend, make_backend
from workers.backends.ssh_hosts import load_hosts
from workers.image import Image
from workers.suite_envs import EnvCache
from workers.tasks import WorkerContext, register

log = logging.getLogger("farm.worker")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="farm worker", description="Run a farm worker in the foreground.")
    p.add_argument("--broker", help="Redis broker URL (default: $FARM_BROKER_URL)")
    p.add_argument("--pool", default=None, help="the pool to serve (default: $FARM_POOL or 'default')")
    p.add_argument("--slots", type=int, default=None,
                   help="assignments run at once (default: the CPU count; with ssh, the hosts' slots)")
    p.add_argument("--backend", default="local", choices=["local", "ssh", "libvirt"], help="where runners run")
    p.add_argument("--hosts", type=Path, default=None, help="ssh backend: the hosts file (TOML, see docs)")
    p.add_argument("--image", type=Path, default=None, help="libvirt backend: the image directory (farm image build)")
    p.add_argument("--libvirt-uri", default="qemu:///system", help="libvirt backend: the hypervisor")
    p.add_argument("--warm", type=int, default=0, help="libvirt backend: VMs kept booted and ready")
    p.add_argument("--vm-memory", type=int, default=512, help="libvirt backend: MiB per VM")
    p.add_argument("--vm-cpus", type=int, default=1, help="libvirt backend: vCPUs per VM")
    p.add_argument("--python", default=None, help="interpreter that runs pytest (default: farm's own)")
    p.add_argument("--no-standby", action="store_true",
                   help="local backend: start a fresh pytest per assignment, no pre-started runner "
                        "(default: $FARM_LOCAL_STANDBY, on)")
    p.add_argument("--name", default=None,
                   help="worker name; NAME without @ becomes NAME@HOST (default: farm-POOL-RANDOM@HOST)")
    p.add_argument("--cache-dir", type=Path, default=None, help="bundle cache and scratch directory")
    p.add_argument("--kept-trees", type=Path, default=None,
                   help="local backend: keep the unpacked, compiled projects in DIR, shared with other workers "
                        "and bounded (the least recently used go first), instead of under --cache-dir "
                        "(the embedded farm's, kept between its runs)")
    p.add_argument("--signing-key-file", type=Path, default=None,
                   help="the farm's message signing keys (default: $FARM_SIGNING_KEY_FILE or $FARM_SIGNING_KEY)")
    p.add_argument("--loglevel", default="WARNING")
    return p.parse_args(argv)


def check_backend(backend: ExecutionBackend) -> float:
    """workers.image_check's, imported only when a backend runs it (libvirt): it imports the VM and
    SSH backends (paramiko, about a second of CPU), which a local worker never needs."""
    from workers.image_check import check_backend as check

    return check(backend)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = Settings.from_env()
    settings = replace(
        settings,
        broker_url=args.broker or settings.broker_url,
        pool=args.pool or settings.pool,
        cache_dir=args.cache_dir or settings.cache_dir,
    )
    if not settings.broker_url:
        raise UsageError("farm worker needs --broker URL or FARM_BROKER_URL")
    options: dict[str, Any] = {"scratch": settings.cache_dir / "runs"}
    if args.kept_trees is not None and args.backend != "local":
        raise UsageError("--kept-trees is for --backend local")
    if args.backend == "ssh":
        if args.hosts is None:
            raise UsageError("--backend ssh needs --hosts FILE")
        options["hosts"] = load_hosts(args.hosts)
        slots = args.slots if args.slots is not None else options["hosts"].slots
    elif args.backend == "libvirt":
        require_libvirt()  # first: no image or VM option matters without it
        if args.image is None:
            raise UsageError("--backend libvirt needs --image DIR (farm image build)")
        slots = args.slots if args.slots is not None else os.cpu_count() or 1
        if args.warm < 0 or args.vm_memory < 64 or args.vm_cpus < 1:
            raise UsageError("--warm must be 0 or more, --vm-memory at least 64 (MiB), --vm-cpus at least 1")
        options.update(image=Image.load(args.image), uri=args.libvirt_uri, warm=args.warm, slots=slots,
                       memory_mb=args.vm_memory, vcpus=args.vm_cpus)
    else:
        if args.hosts is not None:
            raise UsageError("--hosts is for --backend ssh")
        options["python"] = args.python
        options["max_unpacked_bytes"] = settings.max_unpacked_bytes
        options["standby"] = settings.local_standby and not args.no_standby
        options["kept_trees"] = args.kept_trees
        options["envs"] = EnvCache(settings.envs_root, settings.max_envs, settings.env_installer)
        slots = args.slots if args.slots is not None else os.cpu_count() or 1
    if slots < 1:
        raise UsageError("--slots must be at least 1")
    keyring = signing.from_env(key_file=args.signing_key_file)  # after the options: each says what is wrong
    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host = socket.gethostname()
    name = worker_name(args.name, settings.pool, host)
    app = make_app(settings, pools=(settings.pool,))
    backend = make_backend(args.backend, **options)
    from workers.backends.local import LocalBackend  # imported by make_backend for a local worker

    if isinstance(backend, LocalBackend):
        backend.queued = queue_waits(settings.broker_url, pool_queue(settings.pool).name)
    if hasattr(backend, "count"):  # libvirt: its VM boots, for the coordinators' /metrics
        backend.count = counters.counter(settings.state)
    backend.prepare(check_backend)  # a libvirt worker boots a VM and runs a test before it consumes
    _prefetch_environment(backend, settings)
    signals.worker_shutdown.connect(lambda **_: backend.shutdown(), weak=False)
    signals.worker_process_init.connect(lambda **_: backend.process_started(), weak=False)
    # Only now: a broken image or bad options are told at once, with or without a broker.
    for url in dict.fromkeys((settings.broker_url, settings.state)):
        wait_for_broker(url, "worker")
    register(WorkerContext(app, settings, backend, keyring, name, slots=slots))
    info = WorkerInfo(name=name, host=host, slots=slots, pool=settings.pool, backend=args.backend)
    queue = pool_queue(settings.pool).name

    def stop_consuming(why: str) -> None:
        log.error("%s: not consuming from %s any more", why, queue)
        app.control.cancel_consumer(queue, destination=[name])

    _announce(settings, info, health=backend.health, on_unhealthy=stop_consuming)
    return run_celery_worker(app, hostname=name, queue=queue, pool="prefork", concurrency=slots,
                             loglevel=args.loglevel)


#: How long the standby replenish's queue look may take (connect, then reply): it is asked on the
#: record path, as a runner's first line is read. An LLEN on a broker that answers takes well under
#: a millisecond on a LAN; one that does not costs at most twice this, once per QUEUE_LOOK_PAUSE_S.
QUEUE_LOOK_TIMEOUT_S = 0.1
#: After a queue look that failed, the next ones answer "yes" without asking, for this long: a
#: broker hiccup stalls no more than one record path in this window (per pool process).
QUEUE_LOOK_PAUSE_S = 10.0


def queue_waits(broker_url: str, queue: str, *, timeout_s: float = QUEUE_LOOK_TIMEOUT_S,
                clock: Callable[[], float] = time.monotonic) -> Callable[[], bool]:
    """Whether a message waits on `queue` right now, unreserved (kombu's Redis lists: the queue's
    own and one per priority step); yes when the broker cannot tell. Called by a pool process as
    its runner begins (LocalBackend._replenish_beside), on the record path: bounded by `timeout_s`
    per step, and not asked again for QUEUE_LOOK_PAUSE_S after a failure (yes meanwhile, as a
    broker that cannot tell says). redis-py's pool reconnects after the fork."""
    client = redis.Redis.from_url(broker_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    lists = [queue, *(f"{queue}\x06\x16{step}" for step in (3, 6, 9))]
    failed_at: list[float] = []

    def waits() -> bool:
        if failed_at and clock() - failed_at[0] < QUEUE_LOOK_PAUSE_S:
            return True
        try:
            pipe = client.pipeline(transaction=False)
            for name in lists:
                pipe.llen(name)
            answer = any(pipe.execute())
        except redis.RedisError:
            failed_at[:] = [clock()]
            return True
        failed_at.clear()
        return answer
    return waits


def _prefetch_environment(backend: ExecutionBackend, settings: Settings) -> None:
    """The collection cache's interpreter fingerprint, computed once in the main process beside
    Celery's start-up and read before the pool forks (its processes inherit it), instead of by
    the collection and again by the first assignment of each pool process, on their paths."""
    start = getattr(backend, "start_environment", None)
    environment = getattr(backend, "environment", None)
    if not settings.collection_cache or start is None or environment is None:
        return
    start()
    read: list[bool] = []

    def before_fork(**_: object) -> None:
        # Once: the probe started ahead is read before the first fork. Never again in the main
        # process (Celery sends this before every fork, replacements too): a probe that failed
        # there is run by a pool process on its own path, as without the prefetch, and a hanging
        # interpreter never blocks the main process's event loop at each fork.
        if not read:
            read.append(True)
            environment()

    signals.worker_before_create_process.connect(before_fork, weak=False)


def worker_name(given: str | None, pool: str, host: str) -> str:
    """The worker's one name: Celery's hostname, and the name in leases, the registry, reports
    and avoid lists. Celery would take a bare NAME for a host (celery@NAME): it is NAME@HOST
    here. %h, %n and %d are expanded as Celery expands them, before anyone sees the name."""
    if not given:
        return f"farm-{pool}-{uuid.uuid4().hex[:6]}@{host}"
    if "@" not in given:
        given = f"{given}@{host}"
    return str(host_format(default_nodename(given)))


def _announce(settings: Settings, info: WorkerInfo, *, health: Callable[[], str] = lambda: "",
              on_unhealthy: Callable[[str], None] = lambda why: None) -> None:
    """Announce the worker once it is ready and every HEARTBEAT_S after (a killed worker stops
    counting when its heartbeat goes stale); remove it when it stops. Pool children learn to hand
    their work back when asked (see workers.stopping). When `health` says something is wrong, the
    announcement says so (farm status) and `on_unhealthy` runs, once."""
    stop = threading.Event()

    def beat() -> None:
        conn = store.connect(settings.state)
        current = info
        while True:
            why = health()
            if why and not current.health:
                current = replace(current, health=why)
                try:
                    on_unhealthy(why)
                except Exception as exc:  # the broker restarts: the announcement still says why
                    log.warning("could not stop consuming: %s", exc)
            try:
                registry.announce(conn, current)
            except redis.RedisError as exc:  # the broker restarts: the next beat will do
                log.warning("could not renew the worker's announcement: %s", exc)
            if stop.wait(registry.HEARTBEAT_S):
                return

    def ready(**_: Any) -> None:
        threading.Thread(target=beat, name="farm-heartbeat", daemon=True).start()

    def shutting_down(**_: Any) -> None:
        asked = stopping.ask_pool_children()
        log.info("stopping: asked %d pool children to hand their assignments back", asked)

    def stopped(**_: Any) -> None:
        stop.set()
        try:
            registry.remove(redis.Redis.from_url(settings.state, socket_timeout=2), info.name)
        except redis.RedisError:
            pass

    signals.worker_process_init.connect(lambda **_: stopping.install(), weak=False)
    signals.worker_ready.connect(ready, weak=False)
    signals.worker_shutting_down.connect(shutting_down, weak=False)
    signals.worker_shutdown.connect(stopped, weak=False)
