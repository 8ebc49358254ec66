"""The collection cache (workers/collection_cache.py) on a real redis-server, and through a real farm:
a second submission is planned without collecting, a runner that collects otherwise drops the entry."""

from __future__ import annotations

import textwrap
import time
import uuid
from pathlib import Path

import redis
from support.helpers import LEAN

from farm import keys
from farm.bundle import make_bundle
from farm.client import Client
from farm.cluster import LocalCluster
from farm.config import Settings
from farm.model import Collection, TestRecord
from farm.outcomes import Outcome
from workers.collection_cache import CollectionCache, cache_key, collect_cached

IDS = ("tests/test_a.py::test_1", "tests/test_a.py::test_2", "tests/test_b.py::test_3")


def _collection(**changes: object) -> Collection:
    fields: dict[str, object] = {"suite_id": "s1", "worker": "w1", "exit_code": 0, "test_ids": IDS,
                                 "duration_s": 1.5, "output": "some output"}
    fields.update(changes)
    return Collection(**fields)  # type: ignore[arg-type]


def test_the_key_names_bundle_arguments_and_interpreter() -> None:
    base = cache_key("d" * 64, ("-q", "tests"), "py-a")
    assert base == cache_key("d" * 64, ("-q", "tests"), "py-a")
    assert len({base, cache_key("e" * 64, ("-q", "tests"), "py-a"), cache_key("d" * 64, ("tests",), "py-a"),
                cache_key("d" * 64, ("-q", "tests"), "py-b"), cache_key("d" * 64, ("-q tests",), "py-a")}) == 5


def test_a_clean_collection_is_kept_with_its_item_counts_and_dropped_on_demand(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    cache = CollectionCache(r, 60)
    cache.put("k1", _collection())
    assert cache.get("k1") == _collection(output="")
    assert cache.files("k1") == {"tests/test_a.py": 2, "tests/test_b.py": 1}
    assert 0 < r.ttl(keys.collection_cache("k1")) <= 60
    cache.invalidate("k1", "a runner collected otherwise")
    assert cache.get("k1") is None and cache.files("k1") == {}


def test_failed_or_erroring_collections_are_not_kept(redis_url: str) -> None:
    cache = CollectionCache(redis.Redis.from_url(redis_url), 60)
    error = TestRecord("tests/test_c.py", Outcome.ERROR, phase="collect")
    skip = TestRecord("tests/test_d.py", Outcome.SKIPPED, phase="collect")
    for key, collection in {"exit2": _collection(exit_code=2), "errors": _collection(decided=(error,)),
                            "empty": _collection(exit_code=5, test_ids=())}.items():
        cache.put(key, collection)
        assert cache.get(key) is None, key
    cache.put("skips", _collection(decided=(skip,)))
    assert cache.get("skips") is not None


def test_a_second_collection_of_the_same_key_comes_from_the_cache(redis_url: str) -> None:
    cache = CollectionCache(redis.Redis.from_url(redis_url), 60)
    calls: list[str] = []

    def collect() -> Collection:
        calls.append("collect")
        return _collection()

    first = collect_cached(cache, "k2", "s1", "w1", collect)
    second = collect_cached(cache, "k2", "s2", "w2", collect)
    assert calls == ["collect"]
    assert first == _collection()
    assert (second.suite_id, second.worker, second.test_ids, second.duration_s) == ("s2", "w2", IDS, 0.0)


_COUNTED = '''
    import os
    import tempfile
    import pytest

    # How many times this module was imported in this farm (its runners share the cluster's TMPDIR):
    # the collection sees two parameters, every runner after it three.
    _path = os.path.join(tempfile.gettempdir(), "imports-{tag}")
    with open(_path, "a") as _fh:
        _fh.write("x")
    _imports = os.path.getsize(_path)

    @pytest.mark.parametrize("n", range(2 if _imports == 1 else 3))
    def test_grows(n):
        pass

    def test_plain():
        pass
    '''


def _submit(cluster: LocalCluster, project: Path) -> dict:
    settings = Settings(broker_url=cluster.broker_url)
    client = Client(settings)
    try:
        bundle = make_bundle(project, settings.max_bundle_bytes)
        sid = client.submit(bundle, project=project.name, pool="default", dist="load",
                            pytest_args=(*LEAN, "tests"))
        client.wait(sid, lambda p: None, interval_s=0.1)
        return client.report(sid)
    finally:
        client.close()


def _project(root: Path, tag: str, grows: bool) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "tests" / "conftest.py").write_text("")
    body = _COUNTED.format(tag=tag) if grows else "def test_one():\n    pass\n\ndef test_two():\n    pass\n"
    (root / "tests" / "test_mod.py").write_text(textwrap.dedent(body).lstrip())
    return root


def test_a_second_submission_is_planned_from_the_cache(cluster: LocalCluster, tmp_path: Path) -> None:
    project = _project(tmp_path / f"cached-{uuid.uuid4().hex[:8]}", "", grows=False)
    first, second = _submit(cluster, project), _submit(cluster, project)
    assert first["collection"]["duration_s"] > 0
    assert second["collection"]["duration_s"] == 0.0, _worker_log(cluster, 0)[-3000:]
    assert [t["id"] for t in second["tests"]] == [t["id"] for t in first["tests"]]
    assert {t["outcome"] for t in second["tests"]} == {"passed"}


def test_a_runner_that_collects_other_items_drops_the_cached_collection(cluster: LocalCluster,
                                                                         tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    project = _project(tmp_path / f"grows-{tag[:8]}", tag, grows=True)
    first = _submit(cluster, project)
    assert len(first["tests"]) == 3  # as collected: test_grows[0], [1], test_plain
    assert any("collected otherwise than the cached collection" in a["message"] for a in first["assignments"])
    r = redis.Redis.from_url(cluster.broker_url)
    assert not r.keys("farm:collection:*") or not _entry_for(r, first), "the runners dropped the entry"
    log = _worker_log(cluster)
    assert "dropped the cached collection" in log and "tests/test_mod.py: 4 items collected, 3 planned" in log
    second = _submit(cluster, project)
    assert second["collection"]["duration_s"] > 0, "collected afresh"
    assert len(second["tests"]) == 4


def _entry_for(r: redis.Redis, report: dict) -> bool:
    wanted = {t["id"] for t in report["tests"]}
    for key in r.keys("farm:collection:*"):
        name = keys.text(key)
        if name.endswith(":files"):
            continue
        files = r.hgetall(f"{name}:files")
        if {keys.text(f) for f in files} == {i.split("::", 1)[0] for i in wanted} and sum(
                int(n) for n in files.values()) == len(wanted):
            return True
    return False


def _worker_log(cluster: LocalCluster, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = "".join(p.read_text(errors="replace") for p in cluster.root.glob("worker-*.log"))
        if "dropped the cached collection" in text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def test_a_store_that_does_not_answer_costs_the_cache_not_the_collection() -> None:
    cache = CollectionCache(redis.Redis(port=1, socket_connect_timeout=0.5), 60)  # nothing listens on port 1
    collection = collect_cached(cache, "k3", "s1", "w1", _collection)
    assert collection == _collection()
