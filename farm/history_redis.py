"""A project's history keys in a Redis: exported with their expiry, and restored from a saved history.

The same for any other family of keys kept between embedded runs under one prefix (the
collection cache: farm.history_cache.EmbeddedHistory)."""

from __future__ import annotations

import time
from typing import Any

import redis

from farm import keys
from farm.saved_history import ProjectHistory, SavedKey


def export(r: redis.Redis, project: str, now: float | None = None) -> ProjectHistory:
    """Every history key of the project in this Redis, with its expiry."""
    return export_keys(r, project, keys.history(project), keys.history_patterns(project), now)


def export_keys(r: redis.Redis, project: str, base: str, patterns: tuple[str, ...],
                now: float | None = None) -> ProjectHistory:
    """Every key matching one of the SCAN `patterns`, saved by its name after `base`, with its expiry."""
    now = time.time() if now is None else now
    names = sorted({keys.text(n) for pattern in patterns for n in r.scan_iter(match=pattern, count=1000)})
    saved = []
    for name in names:
        kind = keys.text(r.type(name))
        value: Any
        if kind == "hash":
            value = dict(r.hscan_iter(name, count=5000))
        elif kind == "string":
            value = r.get(name)
        elif kind == "list":
            value = r.lrange(name, 0, -1)
        elif kind == "set":
            value = list(r.sscan_iter(name, count=5000))
        elif kind == "zset":
            value = list(r.zscan_iter(name, count=5000))
        else:
            continue
        if value is None:  # expired between SCAN and the read
            continue
        pttl = int(r.pttl(name))
        saved.append(SavedKey(name[len(base):], kind, value, now + pttl / 1000 if pttl > 0 else None))
    return ProjectHistory(project, now, tuple(saved))


def restore(r: redis.Redis, history: ProjectHistory, now: float | None = None) -> None:
    """Write a saved history into this Redis (keys already expired by now are left out)."""
    restore_keys(r, history, keys.history(history.project), now)


def restore_keys(r: redis.Redis, history: ProjectHistory, base: str, now: float | None = None) -> None:
    """Write saved keys into this Redis under `base` (those already expired by now are left out)."""
    now = time.time() if now is None else now
    with r.pipeline(transaction=False) as pipe:
        for k in history.keys:
            if k.expires_at is not None and k.expires_at <= now:
                continue
            name = base + k.suffix
            pipe.delete(name)
            if k.kind == "hash":
                items = list(k.value.items())
                for i in range(0, len(items), 5000):
                    pipe.hset(name, mapping=dict(items[i:i + 5000]))
            elif k.kind == "string":
                pipe.set(name, k.value)
            elif k.kind in ("list", "set"):
                add = pipe.rpush if k.kind == "list" else pipe.sadd
                for i in range(0, len(k.value), 5000):
                    add(name, *k.value[i:i + 5000])
            else:
                for i in range(0, len(k.value), 5000):
                    pipe.zadd(name, dict(k.value[i:i + 5000]))
            if k.expires_at is not None:
                pipe.pexpireat(name, int(k.expires_at * 1000))
        pipe.execute()
