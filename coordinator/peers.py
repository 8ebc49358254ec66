"""Several coordinators on one broker: which are alive, which one sweeps, and claims the dead left behind.

Every coordinator handles any suite's messages (they are idempotent); what must happen once is
what no message asks for: the periodic sweep, which requeues lost attempts, publishes again what
nobody took and closes suites in time. One coordinator holds the sweep lease (`farm:sweep-lease`,
SET NX PX with its name, renewed before each tick) and sweeps; when it dies its lease lapses and
another takes it over. A finish claim names its holder; one whose holder is no longer alive (a
coordinator killed while it finished a suite) is released by the sweeper, so that another finishes it.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

from farm import keys

log = logging.getLogger("farm.coordinator")

#: Take the lease if nobody holds it, or renew it if we do; 1 if we hold it afterwards.
_TAKE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
#: Delete the lease only if we still hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
#: KEYS: the suite's hash, farm:active, the holder's liveness key. ARGV: the holder, the suite id.
#: Only a claim still held by that holder, on a suite not finished (still active), whose holder
#: is not alive, is released.
_RELEASE_ORPHANED_CLAIM = """
if redis.call('HGET', KEYS[1], 'finalized') == ARGV[1]
    and redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1
    and redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.call('HDEL', KEYS[1], 'finalized')
end
return 0
"""


#: How often a coordinator says it is alive (coordinator/service.py's heartbeat thread).
HEARTBEAT_S = 1.0


def presence_ttl(lease_s: float, heartbeat_s: float = HEARTBEAT_S) -> float:
    """How long a coordinator's presence lives unrenewed: a lease, and never less than three
    heartbeats (a coordinator two beats late is not yet taken for dead, its claims kept)."""
    return max(3 * heartbeat_s, lease_s)


def identity(celery_name: str) -> str:
    """A name no other coordinator process has, now or later (a restarted one gets a new one)."""
    return f"{celery_name}/{os.getpid()}-{secrets.token_hex(3)}"


class Presence:
    """This coordinator's liveness key, renewed by `beat`; what it knows of the others'."""

    def __init__(self, store: Any, name: str, ttl_s: float) -> None:
        self.r = store
        self.name = name
        self.ttl_ms = max(1000, int(ttl_s * 1000))

    def beat(self) -> None:
        self.r.set(keys.coordinator(self.name), "1", px=self.ttl_ms)

    def alive(self, name: str) -> bool:
        return bool(self.r.exists(keys.coordinator(name)))

    def others(self) -> list[str]:
        """The other coordinators alive now."""
        prefix = keys.coordinator("")
        found = (keys.text(k)[len(prefix):] for k in self.r.scan_iter(match=keys.coordinator("*"), count=1000))
        return sorted(n for n in found if n != self.name)

    def leave(self) -> None:
        self.r.delete(keys.coordinator(self.name))


class SweepLease:
    """The right to sweep, held by one coordinator at a time for `ttl_s` at most without renewal."""

    def __init__(self, store: Any, name: str, ttl_s: float) -> None:
        self.r = store
        self.name = name
        self.ttl_ms = max(1000, int(ttl_s * 1000))
        self._take = store.register_script(_TAKE_OR_RENEW)
        self._release = store.register_script(_RELEASE)
        self.held = False

    def hold(self) -> bool:
        """Take or renew the lease; True if this coordinator may sweep now."""
        held = bool(self._take(keys=[keys.SWEEP_LEASE], args=[self.name, self.ttl_ms]))
        if held != self.held:
            log.info("%s %s the sweep", self.name, "holds" if held else "no longer holds")
        self.held = held
        return held

    def release(self) -> None:
        """Give it up at shutdown, so that another coordinator sweeps at its next tick."""
        self._release(keys=[keys.SWEEP_LEASE], args=[self.name])
        self.held = False


class OrphanedClaims:
    """Finish claims whose holder died: released so that another coordinator finishes the suite."""

    def __init__(self, store: Any) -> None:
        self.r = store
        self._release = store.register_script(_RELEASE_ORPHANED_CLAIM)

    def release(self, suite_ids: list[str]) -> list[str]:
        """Release the orphaned claims among these suites; the suites whose claim was released."""
        if not suite_ids:
            return []
        holders = self._holders(suite_ids)
        released = []
        for sid, holder in holders.items():
            if self._release(keys=[keys.suite(sid), keys.ACTIVE, keys.coordinator(holder)], args=[holder, sid]):
                log.warning("suite %s: %s, holding its finish claim, died before it stored the report; released",
                            sid, holder)
                released.append(sid)
        return released

    def _holders(self, suite_ids: list[str]) -> dict[str, str]:
        with self.r.pipeline(transaction=False) as pipe:
            for sid in suite_ids:
                pipe.hget(keys.suite(sid), "finalized")
            values = pipe.execute()
        return {sid: keys.text(v) for sid, v in zip(suite_ids, values, strict=True) if v is not None}
