"""workers.lease against a real redis-server: a renewal never recreates a lapsed lease, a state store
that stops answering (stalled with SIGSTOP, as a cut link looks) is noticed within a lease, and a
collection whose lease is lost stops its runner."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import redis

from farm import keys, signing
from farm.bundle import make_bundle
from farm.celery_app import COLLECT_SUITE, make_app
from farm.config import Settings
from farm.model import Assignment, Collection, SuiteSpec
from farm.protocol import encode
from workers.backends import make_backend
from workers.lease import Lease, LeaseKeeper, quick_connection, renewer
from workers.tasks import WorkerContext, register

KEY = "farm:lease:s-1:s-1-a001#1"
COLLECT_KEY = "farm:lease:s-1:collect"


def test_a_renewal_renews_only_a_lease_that_still_holds_its_name(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    renew = renewer(r, KEY, "w1@h", 10.0)
    assert not renew() and not r.exists(KEY), "a lapsed lease was recreated"
    r.set(KEY, "w1@h", px=500)
    assert renew() and r.pttl(KEY) > 5000
    r.set(KEY, "w2@h", px=500)  # taken over (never by farm today; the script must not care)
    assert not renew() and r.get(KEY) == b"w2@h" and r.pttl(KEY) <= 500


def test_a_workers_keeper_of_a_lapsed_collection_lease_does_not_recreate_it(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    ctx = WorkerContext(None, Settings(broker_url=redis_url), None, None, name="w1@h")  # type: ignore[arg-type]
    r.set(COLLECT_KEY, "w1@h", px=500)
    keeper = ctx.lease_keeper(COLLECT_KEY)
    assert keeper.check() is Lease.HELD and r.pttl(COLLECT_KEY) > 5000
    r.delete(COLLECT_KEY)
    assert keeper.check() is Lease.GONE and keeper.lost()
    assert not r.exists(COLLECT_KEY), "a lapsed lease was recreated"


def _assignment(number: int) -> Assignment:
    return Assignment("s-1", "s-1-a001", number, "b" * 64, (), ("t.py::test_a",), 60.0)


def test_an_attempt_is_claimed_once_even_after_its_lease_lapsed(redis_url: str) -> None:
    """A delivery that comes after the claimer died and its lease lapsed, before the sweep took the
    attempt as lost, must not run it again under the same number (CI saw a killed pool child's
    attempt run anew by Celery's redelivery, never recorded lost)."""
    r = redis.Redis.from_url(redis_url)
    settings = Settings(broker_url=redis_url, suite_ttl_s=3600)
    one = WorkerContext(None, settings, None, None, name="w1@h")  # type: ignore[arg-type]
    other = WorkerContext(None, settings, None, None, name="w2@h")  # type: ignore[arg-type]
    r.hset(keys.current("s-1"), "s-1-a001", 1)
    assert one.claim(_assignment(1))
    assert r.get(KEY) == b"w1@h" and 0 < r.pttl(KEY) <= settings.lease_s * 1000
    assert 0 < r.ttl(keys.claims("s-1")) <= 3600, "the claims map must not live forever"
    assert not other.claim(_assignment(1)), "claimed twice while its lease is held"
    r.delete(KEY)  # the claimer died: its lease lapsed, the sweep has not looked yet
    assert not other.claim(_assignment(1)) and not one.claim(_assignment(1))
    assert not r.exists(KEY), "a refused claim wrote a lease"
    r.hset(keys.current("s-1"), "s-1-a001", 2)  # the sweep took it as lost: attempt 2 is current
    assert not other.claim(_assignment(1)), "a superseded attempt was claimed"
    assert other.claim(_assignment(2))
    r.hset(keys.current("s-1"), "s-1-a001", "2!")  # ended
    assert not one.claim(_assignment(2))
    assert keys.claims("s-1") in keys.suite_keys("s-1")


@dataclasses.dataclass
class _Collecting(WorkerContext):
    """The real context (store, bundle cache, leases, a local backend), its collections kept instead of sent."""

    sent: list[Collection] = dataclasses.field(default_factory=list)

    def send_collection(self, collection: Collection) -> None:
        self.sent.append(collection)


def test_a_collection_whose_lease_is_deleted_stops_its_runner_and_sends_nothing(redis_url: str,
                                                                                tmp_path: Path) -> None:
    marker = tmp_path / "collecting.pid"  # the collecting runner writes its pid, then hangs
    project = tmp_path / "p"
    project.mkdir()
    (project / "conftest.py").write_text(
        f"import os, pathlib, time\npathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\ntime.sleep(600)\n")
    (project / "test_a.py").write_text("def test_a():\n    pass\n")
    bundle = make_bundle(project, 2**20)
    settings = Settings(broker_url=redis_url, cache_dir=tmp_path / "cache", lease_s=2.0)
    r = redis.Redis.from_url(redis_url)
    r.set(keys.bundle(bundle.digest), bundle.data)
    ctx = _Collecting(make_app(settings, pools=("default",)), settings,
                      make_backend("local", scratch=tmp_path / "runs", python=None),
                      signing.Keyring(signing.Keys((signing.generate_secret().encode(),))), "w1@h")
    register(ctx)
    spec = SuiteSpec("s-1", "p", bundle.digest, "default", "load", (), time.time())
    task = threading.Thread(target=ctx.app.tasks[COLLECT_SUITE].run,
                            args=(ctx.keyring.seal(COLLECT_SUITE, encode(spec)),), daemon=True)
    task.start()
    pid = 0
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text()):
            assert time.monotonic() < deadline and task.is_alive(), "the collection never started"
            time.sleep(0.05)
        pid = int(marker.read_text())
        assert r.get(COLLECT_KEY) == b"w1@h"
        r.delete(COLLECT_KEY)  # the coordinator took the collection as lost
        task.join(60)
        assert not task.is_alive(), "the collection ran on after its lease was deleted"
        assert ctx.sent == [], "a collection was sent for a lease that was lost"
        assert not r.exists(COLLECT_KEY), "the lost lease was recreated"
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the runner is gone (and reaped)
    finally:
        if pid and task.is_alive():
            os.killpg(pid, signal.SIGKILL)  # before the fix: the runner hangs on
            task.join(30)
        r.close()


def test_a_keeper_takes_its_lease_as_lost_when_the_state_store_stops_answering(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.set(KEY, "w1@h", px=1500)
    pid = int(r.info("server")["process_id"])
    conn = quick_connection(redis_url, 0.25)
    os.kill(pid, signal.SIGSTOP)  # connections stay open, nothing answers: as a cut link
    try:
        started = time.monotonic()
        with LeaseKeeper(renewer(conn, KEY, "w1@h", 1.5), 1.5, 0.25, name=KEY) as keeper:
            assert keeper.wait_lost(30), "the keeper never noticed"
        assert keeper.state is Lease.LAPSED
        waited = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert waited < 15, f"noticed only after {waited:.1f}s (lease 1.5 s, 0.25 s per try)"
