"""`farm coordinator`: the coordinator's Celery worker plus its periodic sweeper, in the foreground."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import redis
from celery import Celery

from coordinator import metrics
from coordinator.peers import HEARTBEAT_S, OrphanedClaims, Presence, SweepLease, identity, presence_ttl
from coordinator.planner import Planner
from coordinator.state import SuiteState
from coordinator.tasks import publisher, register
from farm import signing, store
from farm.celery_app import COORDINATOR_QUEUE, make_app, pool_queue
from farm.config import Settings
from farm.errors import UsageError
from farm.service_main import run_celery_worker, wait_for_broker

log = logging.getLogger("farm.coordinator")
SWEEP_INTERVAL_S = 1.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="farm coordinator", description="Run the farm coordinator in the foreground.")
    p.add_argument("--broker", help="Redis broker URL (default: $FARM_BROKER_URL)")
    p.add_argument("--concurrency", type=int, default=4, help="messages handled at once (threads)")
    p.add_argument("--signing-key-file", type=Path, default=None,
                   help="the farm's message signing keys (default: $FARM_SIGNING_KEY_FILE or $FARM_SIGNING_KEY)")
    p.add_argument("--name", help="its Celery name (default: farm-coordinator@HOST); give each coordinator its own")
    p.add_argument("--loglevel", default="WARNING")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus /metrics on this port (default: $FARM_METRICS_PORT, else off)")
    p.add_argument("--metrics-address", default="127.0.0.1", help="loopback only: /metrics has no authentication")
    args = p.parse_args(argv)
    if args.metrics_port is not None and not 1 <= args.metrics_port <= 65535:
        p.error("--metrics-port must be between 1 and 65535")
    if args.concurrency < 0:  # 0: one thread per CPU, as Celery takes it
        p.error("--concurrency must be at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = Settings.from_env()
    settings = replace(settings, broker_url=args.broker or settings.broker_url,
                       metrics_port=args.metrics_port or settings.metrics_port)
    if not settings.broker_url:
        raise UsageError("farm coordinator needs --broker URL or FARM_BROKER_URL")
    metrics.check_address(args.metrics_address)  # before waiting for anything
    keyring = signing.from_env(key_file=args.signing_key_file)
    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for url in dict.fromkeys((settings.broker_url, settings.state)):
        wait_for_broker(url, "coordinator")
    app = make_app(settings, coordinator=True)
    name = args.name or f"farm-coordinator@{socket.gethostname()}"
    me = identity(name)
    client = store.connect(settings.state, timeout=30)
    if settings.metrics_port:  # before joining the farm: a port in use ends us before others count on us
        metrics.serve(client, settings.worker_stale_s, settings.metrics_port, args.metrics_address)
    # Any number of coordinators may share the broker: each handles any suite's messages (they
    # are idempotent), and only the holder of the sweep lease sweeps (coordinator/peers.py).
    presence = Presence(client, me, presence_ttl(settings.lease_s))
    presence.beat()
    lease = SweepLease(client, me, settings.lease_s)
    claims = OrphanedClaims(client)
    state = SuiteState(client, settings, name=me)
    publish_collect, publish_assignment = publisher(app, keyring)
    planner = Planner(state, settings, publish_collect, publish_assignment, queue_length(app))
    register(app, planner, keyring)
    others = presence.others()
    if others:
        log.warning("%s: %d other coordinator(s) alive (%s): sharing the suites with them",
                    me, len(others), ", ".join(others))
    claims.release(state.active_suites())  # only claims whose holder is dead
    planner.reconcile()
    stop = threading.Event()
    beating = threading.Thread(target=_beat, args=(presence, stop), name="farm-heartbeat", daemon=True)
    beating.start()
    sweeper = threading.Thread(target=_sweep, args=(planner, lease, claims, stop), name="farm-sweeper",
                               daemon=True)
    sweeper.start()
    try:
        return run_celery_worker(app, hostname=name, queue=COORDINATOR_QUEUE, pool="threads",
                                 concurrency=args.concurrency, loglevel=args.loglevel)
    finally:
        stop.set()
        _leave(sweeper, settings.state, me, settings.lease_s)


def queue_length(app: Celery) -> Callable[[str], int]:
    """How many messages wait on a pool's queue (-1 when the broker cannot say right now)."""

    def length(pool: str) -> int:
        try:
            with app.connection_for_write() as conn:
                return int(conn.default_channel.queue_declare(queue=pool_queue(pool).name, passive=True).message_count)
        except Exception as exc:  # a broker restart: ask again at the next sweep
            log.warning("could not read the length of pool %s's queue: %s", pool, exc)
            return -1

    return length


def _beat(presence: Presence, stop: threading.Event, interval_s: float = HEARTBEAT_S) -> None:
    """Renew our presence until `stop`; whatever a beat raises, the next one tries again (a dead
    heartbeat would get our claims released while we work on). One line per run of failures."""
    failing = False
    while not stop.wait(interval_s):
        try:
            presence.beat()
        except Exception as exc:
            if not failing:
                log.warning("heartbeat failed (trying again every %gs): %s: %s", interval_s, type(exc).__name__, exc)
            failing = True
        else:
            failing = False


def sweep_once(planner: Planner, lease: SweepLease, claims: OrphanedClaims) -> bool:
    """One tick: sweep if this coordinator holds (or can take) the sweep lease; True if it swept."""
    if not lease.hold():
        return False
    claims.release(planner.state.active_suites())
    planner.sweep()
    return True


def _sweep(planner: Planner, lease: SweepLease, claims: OrphanedClaims, stop: threading.Event) -> None:
    while not stop.wait(SWEEP_INTERVAL_S):
        try:
            sweep_once(planner, lease, claims)
        except redis.RedisError as exc:  # a Redis blip: one line, and the next sweep tries again
            log.warning("sweep failed: %s: %s", type(exc).__name__, exc)
        except Exception:  # the sweeper must outlive a broken suite
            log.exception("sweep failed")


def _leave(sweeper: threading.Thread, url: str, me: str, ttl_s: float) -> None:
    """At shutdown: let another coordinator sweep from its next tick on, not after the lease lapses.

    Quickly or not at all (a client that does not wait for a Redis that is gone, as when the
    whole farm stops); a sweep still running keeps its lease, which then lapses."""
    sweeper.join(timeout=2)
    quick = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        if not sweeper.is_alive():
            SweepLease(quick, me, ttl_s).release()
        Presence(quick, me, ttl_s).leave()
    except redis.RedisError as exc:
        log.warning("could not give up the sweep lease: %s", exc)
    finally:
        quick.close()
