"""The collection cache: what `pytest --collect-only` found, by bundle, pytest args and interpreter.

A second submission of the same bundle with the same arguments, to workers with the same
interpreter and installed distributions, is planned from the cached collection without running
pytest. It lives in the state store (shared by the pool, expiring with the bundle), not on one
worker's disk: any worker of the pool may take the next collection. Every runner checks it
(workers/pytest_plugin/collect_check.py): a file of its tests holding another number of items,
a planned test it did not collect, or one it ran under another id drops the entry, so the next
submission collects afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import replace

import redis

from farm import keys
from farm.errors import ProtocolError
from farm.model import Collection
from farm.outcomes import Outcome
from farm.protocol import decode, encode

log = logging.getLogger("farm.worker")

def cache_key(bundle_digest: str, pytest_args: tuple[str, ...], fingerprint: str) -> str:
    """The entry's key: the three things a collection depends on, hashed."""
    text = json.dumps([bundle_digest, list(pytest_args), fingerprint])
    return hashlib.sha256(text.encode()).hexdigest()


def file_counts(test_ids: tuple[str, ...] | list[str]) -> dict[str, int]:
    """How many items each file holds (the part of an id before its first `::`)."""
    counts: dict[str, int] = {}
    for test_id in test_ids:
        part = test_id.split("::", 1)[0]
        counts[part] = counts.get(part, 0) + 1
    return counts


def cacheable(collection: Collection) -> bool:
    """Only a clean collection is kept: exit code 0, nothing decided but module-level skips."""
    return collection.exit_code == 0 and bool(collection.test_ids) and all(
        r.outcome == Outcome.SKIPPED for r in collection.decided)


class CollectionCache:
    """Cached collections in the state store, each with its per-file item counts."""

    def __init__(self, store: redis.Redis, ttl_s: int) -> None:
        self.store = store
        self.ttl_s = ttl_s

    def get(self, key: str) -> Collection | None:
        data = self.store.get(keys.collection_cache(key))
        if not isinstance(data, bytes):
            return None
        try:
            return decode(data, Collection)
        except ProtocolError as exc:  # written by another version: collected afresh
            log.warning("ignoring the cached collection %s: %s", key[:12], exc)
            return None

    def put(self, key: str, collection: Collection) -> None:
        if not cacheable(collection):
            return
        entry = keys.collection_cache(key)
        pipe = self.store.pipeline(transaction=True)
        pipe.delete(f"{entry}:files")
        counts: dict[str | bytes, str | int] = {f: n for f, n in file_counts(collection.test_ids).items()}
        pipe.hset(f"{entry}:files", mapping=counts)  # type: ignore[arg-type]
        pipe.expire(f"{entry}:files", self.ttl_s)
        pipe.set(entry, encode(replace(collection, output="")), ex=self.ttl_s)
        pipe.execute()

    def files(self, key: str) -> dict[str, int]:
        """The entry's item count per file ({} when there is no entry)."""
        raw = self.store.hgetall(f"{keys.collection_cache(key)}:files")
        return {keys.text(f): int(n) for f, n in raw.items()}

    def invalidate(self, key: str, why: str) -> None:
        entry = keys.collection_cache(key)
        if self.store.delete(entry, f"{entry}:files"):
            log.warning("dropped the cached collection %s: %s; the next submission collects afresh", key[:12], why)


def collect_cached(
    cache: CollectionCache, key: str, suite_id: str, worker: str, collect: Callable[[], Collection | None],
) -> Collection | None:
    """The cached collection for `key` (as this suite's, from this worker), or a fresh one from
    `collect`, kept when it is clean. A state store that does not answer costs the cache, not the
    collection."""
    try:
        cached = cache.get(key)
    except redis.RedisError as exc:  # the cache is an optimization: collect as without it
        log.warning("could not read the cached collection %s: %s", key[:12], exc)
        cached = None
    if cached is not None:
        log.info("collection of %s from the cache (%s): %d tests", suite_id, key[:12], len(cached.test_ids))
        return replace(cached, suite_id=suite_id, worker=worker, duration_s=0.0)
    return collect_fresh(cache, key, suite_id, collect)


def collect_fresh(cache: CollectionCache, key: str, suite_id: str,
                  collect: Callable[[], Collection | None]) -> Collection | None:
    """A fresh collection from `collect`, never the cached one, kept (in place of the cached one)
    when it is clean: a staged suite's stage, when the suite's own collection was not cached."""
    collection = collect()
    if collection is not None:
        try:
            cache.put(key, collection)
        except redis.RedisError as exc:
            log.warning("could not cache the collection of %s: %s", suite_id, exc)
    return collection
