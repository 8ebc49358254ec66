"""An attempt's lease, held from a thread of its own: renewed only while it is still ours, given up once it is not.

A renewal never recreates a lapsed lease: one script renews the key only while it holds this
worker's name (`RENEW`). When the key is gone (the coordinator took the attempt as lost: the worker
was stalled, or cut off longer than a lease period), or when no renewal got through for a whole
lease period (cut off: it cannot tell otherwise, and must assume the worst), the lease is lost:
the attempt's runner is stopped, and whatever it still sends is fenced by the coordinator.

The renewals run on a connection of their own with short timeouts and no retries, so a cut link
costs one timeout per try, never the state store's long retry window; and the decision is pure
(`verdict`), fed the time of the last renewal that got through.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("farm.worker")

#: Renew the key (to ARGV[2] ms) only while it holds ARGV[1]; 1 if renewed, 0 if gone or another's.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: Claim an attempt: KEYS current map, claims map, lease; ARGV assignment id, attempt number,
#: attempt key, worker, lease ms, the claims map's lifetime in ms (as the suite's other keys; the
#: finished suite sets it anew). Refused (0) when the attempt is superseded or ended (the current
#: map holds another value), or was ever claimed before (its lease may have lapsed since: the sweep
#: takes it as lost and runs its tests under the next number). Otherwise the claim and the lease
#: are written together (1).
CLAIM = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and current ~= ARGV[2] then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[4]) == 0 then return 0 end
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[6]) end
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
return 1
"""


class Lease(enum.Enum):
    """What a worker knows of its lease."""

    HELD = "held"  # the last renewal got through less than a lease period ago
    GONE = "gone"  # a renewal found the key gone, or holding another name: taken as lost
    LAPSED = "lapsed"  # no renewal got through for a whole lease period: lost, as far as it can tell


def verdict(renewed: bool | None, last_held: float, now: float, lease_s: float) -> Lease:
    """The lease's state after a renewal (True: renewed, False: the key was not ours, None: no
    answer), given when the last renewal that got through was answered (`last_held`)."""
    if renewed is False:
        return Lease.GONE
    if renewed is None and now - last_held >= lease_s:
        return Lease.LAPSED
    return Lease.HELD


@dataclass
class LeaseKeeper:
    """Renews one lease every `every_s` from a daemon thread, until stopped or lost."""

    renew: Callable[[], bool]  # True if renewed, False if the key was not ours; raises RedisError
    lease_s: float
    every_s: float
    name: str = "lease"
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.last_held = self.clock()  # the claim that took the lease just got through
        self.state = Lease.HELD
        self._lost = threading.Event()
        self._giving_up = threading.Lock()  # the keeper's thread and the runner's loop may both tell
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="farm-lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def lost(self) -> bool:
        """Whether the lease is lost: stop the attempt. Also true once a lease period has gone by
        without a renewal, before the thread looked (a stalled process that was just continued)."""
        if not self._lost.is_set() and self.clock() - self.last_held >= self.lease_s:
            self._give_up(Lease.LAPSED)
        return self._lost.is_set()

    def wait_lost(self, timeout: float) -> bool:
        return self._lost.wait(timeout)

    def check(self) -> Lease:
        """Renew once and decide."""
        if self.lost():
            return self.state
        try:
            renewed: bool | None = self.renew()
        except redis.RedisError as exc:
            log.warning("could not renew lease %s: %s", self.name, exc)
            renewed = None
        now = self.clock()
        if renewed:
            self.last_held = now
        state = verdict(renewed, self.last_held, now, self.lease_s)
        if state is not Lease.HELD:
            self._give_up(state)
        return state

    def _give_up(self, state: Lease) -> None:
        with self._giving_up:
            if self._lost.is_set():
                return
            self._say_lost(state)
            self._lost.set()

    def _say_lost(self, state: Lease) -> None:
        self.state = state
        if state is Lease.GONE:
            log.warning("lease %s is gone: the attempt was taken as lost; stopping its runner", self.name)
        else:
            log.warning("lease %s lapsed: no renewal got through for %.1fs (stalled, or cut off from the state store); "
                        "taking the attempt as lost and stopping its runner", self.name,
                        self.clock() - self.last_held)

    def _run(self) -> None:
        while not self._done.wait(self.every_s):
            if self.check() is not Lease.HELD:
                return


def renewer(conn: redis.Redis, key: str, holder: str, lease_s: float) -> Callable[[], bool]:
    """A renewal of `key` for `holder` through `RENEW` (True if renewed)."""
    script = conn.register_script(RENEW)
    ms = int(lease_s * 1000)
    return lambda: bool(script(keys=[key], args=[holder, ms]))


def quick_connection(url: str, timeout_s: float) -> redis.Redis:
    """A state-store client that answers or fails within about `timeout_s`: no retries (renewals
    and polls are tried again on their own schedule), short connect and read timeouts."""
    return redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                retry=Retry(NoBackoff(), 0))
