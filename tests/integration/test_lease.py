"""workers.lease against a real redis-server: a renewal never recreates a lapsed lease, and a state
store that stops answering (stalled with SIGSTOP, as a cut link looks) is noticed within a lease."""

from __future__ import annotations

import os
import signal
import time

import redis

from farm.config import Settings
from workers.lease import Lease, LeaseKeeper, quick_connection, renewer
from workers.tasks import WorkerContext

KEY = "farm:lease:s-1:s-1-a001#1"


def test_a_renewal_renews_only_a_lease_that_still_holds_its_name(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    renew = renewer(r, KEY, "w1@h", 10.0)
    assert not renew() and not r.exists(KEY), "a lapsed lease was recreated"
    r.set(KEY, "w1@h", px=500)
    assert renew() and r.pttl(KEY) > 5000
    r.set(KEY, "w2@h", px=500)  # taken over (never by farm today; the script must not care)
    assert not renew() and r.get(KEY) == b"w2@h" and r.pttl(KEY) <= 500


def test_a_workers_renewal_of_a_lapsed_collection_lease_does_not_recreate_it(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    ctx = WorkerContext(None, Settings(broker_url=redis_url), None, None, name="w1@h")  # type: ignore[arg-type]
    ctx.renew_key(KEY)
    assert not r.exists(KEY), "a lapsed lease was recreated"
    r.set(KEY, "w1@h", px=500)
    ctx.renew_key(KEY)
    assert r.pttl(KEY) > 5000


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
