"""A project's history keys out of one real Redis and into another, every kind, expiry kept."""

from __future__ import annotations

import time

import pytest
import redis

from farm import keys
from farm.history_cache import EmbeddedHistory, HistoryCache
from farm.history_redis import export, restore
from farm.saved_history import ProjectHistory, SavedKey


def test_export_takes_every_history_key_of_the_project_and_nothing_else(redis_url: str) -> None:
    project = "we[ird]*name?"
    base = keys.history(project)
    with redis.Redis.from_url(redis_url) as r:
        r.hset(base, mapping={"tests/t.py::a": "0.5", keys.HISTORY_OVERHEAD_FIELD: "0.3"})
        r.expire(base, 3600)
        r.rpush(base + ":runs", b"\x81\xa1a\x01", b"r2")
        r.zadd(base + ":flaky", {"t1": 1.5})
        r.sadd(base + ":tags", "x")
        r.set(base + ":last", b"\xff\x00")
        r.hset(keys.history("we[ird]*nameX"), "other", "1")  # what the glob would match unescaped
        r.hset(keys.history("other"), "t", "1")
        r.set(keys.suite("s-1"), "not history")
        saved = export(r, project, now=1000.0)
    by_suffix = {k.suffix: k for k in saved.keys}
    assert sorted(by_suffix) == ["", ":flaky", ":last", ":runs", ":tags"]
    assert by_suffix[""].value == {b"tests/t.py::a": b"0.5", keys.HISTORY_OVERHEAD_FIELD.encode(): b"0.3"}
    expires = by_suffix[""].expires_at
    assert expires is not None and 1000.0 + 3500 < expires <= 1000.0 + 3600
    assert by_suffix[":runs"].value == [b"\x81\xa1a\x01", b"r2"] and by_suffix[":runs"].expires_at is None
    assert by_suffix[":flaky"].value == [(b"t1", 1.5)]
    assert by_suffix[":last"].value == b"\xff\x00"
    assert saved.durations() == 1


def test_restore_writes_them_back_with_their_expiry_and_skips_what_expired(redis_url: str) -> None:
    now = time.time()
    history = ProjectHistory("p", now, (
        SavedKey("", "hash", {b"t": b"0.25"}, expires_at=now + 600),
        SavedKey(":runs", "list", [b"1", b"2"]),
        SavedKey(":gone", "string", b"x", expires_at=now - 1),
    ))
    with redis.Redis.from_url(redis_url) as r:
        restore(r, history, now=now)
        assert r.hgetall(keys.history("p")) == {b"t": b"0.25"}
        assert 590 < r.ttl(keys.history("p")) <= 600
        assert r.lrange(keys.history("p") + ":runs", 0, -1) == [b"1", b"2"]
        assert not r.exists(keys.history("p") + ":gone")
        again = export(r, "p", now=now)
    assert {k.suffix for k in again.keys} == {"", ":runs"}


def test_the_embedded_hook_saves_what_the_run_added(redis_url: str, tmp_path) -> None:
    warnings: list[str] = []
    cache = HistoryCache(tmp_path, warn=warnings.append)
    cache.save(ProjectHistory("p", 1.0, (SavedKey("", "hash", {b"old": b"1.0"}),)))
    hook = EmbeddedHistory.restore(redis_url, "p", cache)
    with redis.Redis.from_url(redis_url) as r:
        assert r.hgetall(keys.history("p")) == {b"old": b"1.0"}
        r.hset(keys.history("p"), "new", "2.0")  # what the coordinator records at the suite's end
    hook.save()
    loaded = cache.load("p")
    assert loaded is not None and loaded.keys[0].value == {b"old": b"1.0", b"new": b"2.0"}
    assert warnings == []


def test_the_embedded_hook_warns_instead_of_failing_when_redis_is_gone(tmp_path) -> None:
    from farm.cluster import free_port

    warnings: list[str] = []
    cache = HistoryCache(tmp_path, warn=warnings.append)
    cache.save(ProjectHistory("p", 1.0, (SavedKey("", "hash", {b"old": b"1.0"}),)))
    hook = EmbeddedHistory.restore(f"redis://127.0.0.1:{free_port()}/0", "p", cache)
    hook.save()
    assert len(warnings) == 2 and all("embedded farm" in w for w in warnings)
    assert cache.load("p") is not None  # the saved history is left as it was



def test_the_embedded_hook_keeps_the_collection_cache_and_forgets_an_entry_a_runner_dropped(
        redis_url: str, tmp_path) -> None:
    warnings: list[str] = []
    history, collections = HistoryCache(tmp_path / "h", warn=warnings.append), HistoryCache(
        tmp_path / "c", warn=warnings.append, noun="collection cache")
    entry = keys.collection_cache("k1")
    with redis.Redis.from_url(redis_url) as r:
        r.flushdb()
        hook = EmbeddedHistory.restore(redis_url, "p", history, collections)
        r.set(entry, b"collection", ex=600)  # what a worker caches after a clean collection
        r.hset(entry + ":files", mapping={"tests/t.py": 3})
        r.expire(entry + ":files", 600)
        hook.save()
        saved = collections.load("p")
        assert saved is not None and {k.suffix for k in saved.keys} == {"k1", "k1:files"}
        assert history.load("p") is None  # nothing of the history's: the entry is not durations

        r.flushdb()  # the next embedded farm: a Redis of its own
        hook = EmbeddedHistory.restore(redis_url, "p", history, collections)
        assert r.get(entry) == b"collection" and r.hgetall(entry + ":files") == {b"tests/t.py": b"3"}
        assert 590 < r.ttl(entry) <= 600  # the expiry the collection gave it, not a fresh one
        assert warnings == []
        r.delete(entry, entry + ":files")  # a runner found it stale (collect_check)
        hook.save()
    assert collections.load("p") is None and not collections.path_of("p").exists()
    assert len(warnings) == 1 and "saved collection of 'p' no longer matched" in warnings[0]


def test_the_embedded_hook_keeps_only_the_newest_collection_and_one_per_environment(
        redis_url: str, tmp_path) -> None:
    collections = HistoryCache(tmp_path / "c", warn=pytest.fail, noun="collection cache")
    history = HistoryCache(tmp_path / "h", warn=pytest.fail)
    with redis.Redis.from_url(redis_url) as r:
        r.flushdb()
        hook = EmbeddedHistory.restore(redis_url, "p", history, collections, environment="e1")
        r.set(keys.collection_cache("old"), b"1")
        hook.save()
        r.flushdb()
        hook = EmbeddedHistory.restore(redis_url, "p", history, collections, environment="e1")
        assert r.get(keys.collection_cache("old")) == b"1"
        r.set(keys.collection_cache("new"), b"2")  # the bundle changed: collected under a new key
        hook.save()
        saved = collections.load("p@e1")
        assert saved is not None and [k.suffix for k in saved.keys] == ["new"]  # the old one is not carried on
        r.flushdb()
        EmbeddedHistory.restore(redis_url, "p", history, collections, environment="e2")  # another environment
        assert r.keys(keys.collection_cache("*")) == []
