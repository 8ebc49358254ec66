"""Bulk hash writes and reads (coordinator/redis_bulk.py) against a real redis-server."""

from __future__ import annotations

import redis

from coordinator import redis_bulk
from coordinator.state import SuiteState
from farm import keys
from farm.config import Settings

ODD = ["t.py::f[a\r\nb]", "dir with space/test_ü.py::t[1 2]", "t.py::f[$3\r\n]", "*2", "",
       "t.py::g[" + "x" * 70_000 + "]"]


def test_a_written_hash_reads_back_field_for_field(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    fields = ODD + [f"m{i % 7}.py::t{i}" for i in range(25_000)]  # more than two chunks
    values = [f"v{i}" for i in range(len(fields))]
    redis_bulk.write_hashes(r, fields, {"h": [(v, 1) for v in values]}, ttl_s=60)
    assert {k.decode(): v.decode() for k, v in r.hgetall("h").items()} == dict(zip(fields, values, strict=True))
    assert 0 < r.ttl("h") <= 60
    read_fields, read_values = redis_bulk.read_hash(r, "h")
    assert dict(zip(read_fields, read_values, strict=True)) == dict(zip(fields, values, strict=True))
    r.set("ping", "pong")  # the connection went back to the pool in a clean state
    assert r.get("ping") == b"pong"


def test_one_value_for_every_field(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    redis_bulk.write_hashes(r, ODD, {"h": "pending"}, ttl_s=60)
    assert set(r.hvals("h")) == {b"pending"} and r.hlen("h") == len(ODD)


def test_an_empty_or_missing_hash_reads_as_nothing(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    redis_bulk.write_hashes(r, [], {"h": "x"}, ttl_s=60)
    assert not r.exists("h")
    assert redis_bulk.read_hash(r, "h") == ([], [])


def test_history_reads_back_as_floats(redis_url: str) -> None:
    state = SuiteState(redis.Redis.from_url(redis_url), Settings(broker_url=redis_url))
    durations = {f"t.py::t[{i}]": i / 7 for i in range(12_000)}
    state.record_durations("proj", durations)
    assert state.durations("proj") == {t: float(repr(round(d, 6))) for t, d in durations.items()}
    assert state.durations("other") == {}
    assert not state.r.keys(f"{keys.outcomes('s')}*")


def test_planning_leaves_no_staged_hash_behind_even_for_a_duplicate_collection(redis_url: str) -> None:
    import time

    from coordinator.planner import Planner
    from farm.model import Collection, SuiteSpec, TestRecord, WorkerInfo
    from farm.outcomes import Outcome
    from farm.protocol import encode

    r = redis.Redis.from_url(redis_url)
    state = SuiteState(r, Settings(broker_url=redis_url))
    r.hset(keys.WORKERS, "w@h", encode(WorkerInfo("w@h", "h", 2, "default", "local")))
    spec = SuiteSpec("s1", "proj", "0" * 64, "default", "load", (), time.time())
    r.hset(keys.suite("s1"), mapping={"spec": encode(spec), "status": "collecting"})
    published: list = []
    planner = Planner(state, Settings(broker_url=redis_url), lambda s: None, lambda pool, a: published.append(a))
    ids = tuple(f"m{i % 3}.py::t{i}" for i in range(50))
    collection = Collection("s1", "w@h", 0, ids, decided=(TestRecord("m9.py::skipped", Outcome.SKIPPED),))
    planner.collected(collection)
    planner.collected(collection)  # delivered twice: planned once
    assert not r.keys("*:staged:*")
    owners = {k.decode(): v.decode() for k, v in r.hgetall(keys.owners("s1")).items()}
    assert owners == {**{t: f"{a.assignment_id}#1" for a in published for t in a.test_ids},
                      "m9.py::skipped": "collection#1"}
    outcomes = {k.decode(): v.decode() for k, v in r.hgetall(keys.outcomes("s1")).items()}
    assert outcomes == {**{t: "pending" for t in ids}, "m9.py::skipped": "skipped"}
    assert 0 < r.ttl(keys.outcomes("s1")) and 0 < r.ttl(keys.owners("s1"))


def test_several_hashes_over_the_same_fields_take_their_own_values(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    fields = ODD + [f"m{i % 7}.py::t{i}" for i in range(25_000)]  # more than two chunks
    runs = [("a#1", 3), ("b#1", 20_000), ("c#1", len(fields) - 20_003)]
    redis_bulk.write_hashes(r, fields, {"one": "pending", "runs": runs}, ttl_s=60)
    assert {k.decode(): v.decode() for k, v in r.hgetall("one").items()} == dict.fromkeys(fields, "pending")
    expected = [v for v, n in runs for _ in range(n)]
    assert {k.decode(): v.decode() for k, v in r.hgetall("runs").items()} == dict(zip(fields, expected, strict=True))
    assert 0 < r.ttl("one") <= 60 and 0 < r.ttl("runs") <= 60
    r.set("ping", "pong")  # every reply was read: the connection went back to the pool clean
    assert r.get("ping") == b"pong"


def test_runs_that_do_not_cover_the_fields_are_refused_before_anything_is_sent(redis_url: str) -> None:
    import pytest

    r = redis.Redis.from_url(redis_url)
    with pytest.raises(ValueError, match="do not cover"):
        redis_bulk.write_hashes(r, ODD, {"h": [("a", len(ODD) - 1)]}, ttl_s=60)
    assert not r.exists("h")
