"""Run-time balancing over Redis: split requests, and moving a confirmed tail to a new assignment.

The decisions are `coordinator.balance` (who splits, where) and `coordinator.transitions.split_off`
(what moves), the same as the memory store's."""

from __future__ import annotations

from typing import Any

from coordinator import transitions
from coordinator.redis_outcomes import RedisOutcomes, pack, texts, unpack
from farm import events as eventlog
from farm import keys
from farm.attempts import Attempt
from farm.store import Write


class RedisSplits(RedisOutcomes):
    """The split requests of `farm:suite:ID:splits` and the tail's move (part of `SuiteState`)."""

    def ask_split(self, suite_id: str, attempt_key: str, seq: int, tail: tuple[str, ...]) -> bool:
        """Ask the worker of `attempt_key` to split at request `seq` (only if it is newer than the
        request stored: a stale or repeated ask changes nothing); True if asked."""
        key = keys.splits(suite_id)

        def decide(stored: bytes | None) -> tuple[bool, Write]:
            if stored is not None and int(unpack(stored).get("seq", 0)) >= seq:
                return False, None

            def write(pipe: Any) -> None:
                pipe.hset(key, attempt_key, pack({"seq": seq, "tail": list(tail)}))
                pipe.expire(key, self.settings.suite_ttl_s)
            return True, write

        return self.transact([key], lambda pipe: pipe.hget(key, attempt_key), decide)

    def split_asks(self, suite_id: str) -> dict[str, int]:
        """Attempt key → the seq of the last split request it was sent."""
        return {keys.text(k): int(unpack(v).get("seq", 0)) for k, v in self.r.hgetall(keys.splits(suite_id)).items()}

    def split_off(self, suite_id: str, assignment_id: str, number: int, seq: int, tail: tuple[str, ...], *,
                  now: float) -> Attempt | None:
        """Move a confirmed tail to a new assignment (`transitions.split_off`), atomic with merges
        and requeues (the same WATCHed keys): the tail's records from the old attempt are fenced
        from then on. Returns the new attempt (queued, unpublished), or None if nothing moved."""
        okey, wkey, akey = keys.outcomes(suite_id), keys.owners(suite_id), keys.assignments(suite_id)
        name, tests = keys.attempt_key(assignment_id, number), list(tail)

        def read(pipe: Any) -> tuple[bytes | None, list[str | None], list[str | None]]:
            if not tests:
                return pipe.hget(akey, name), [], []
            return pipe.hget(akey, name), texts(pipe.hmget(okey, tests)), texts(pipe.hmget(wkey, tests))

        def decide(seen: tuple[bytes | None, list[str | None], list[str | None]]) -> tuple[Attempt | None, Write]:
            data, values, owned = seen
            if data is None:
                return None, None
            change = transitions.split_off(Attempt.unpack(data), tuple(tests), dict(zip(tests, values, strict=True)),
                                           dict(zip(tests, owned, strict=True)), seq=seq, now=now)
            if change is None:
                return None, None
            head, new = change

            def write(pipe: Any) -> None:
                pipe.hset(akey, head.key, head.pack())
                pipe.hset(akey, new.key, new.pack())
                pipe.hset(wkey, mapping={t: new.key for t in new.test_ids})
                pipe.hset(keys.current(suite_id), new.assignment_id, new.number)
                self.log(pipe, suite_id, *eventlog.split(head, new, self.clock()))
            return new, write

        return self.transact([okey, wkey, akey], read, decide)
