"""The waiting client's pause between two polls ends when the suite ends (its `ended` stream gets
the entry the finish writes with the report), not at the next poll; and the finish writes it. On a
real redis-server."""

from __future__ import annotations

import time

import redis
from test_planner import _planner, _report, _submit

from farm import keys
from farm.client import Client
from farm.config import Settings
from farm.model import Collection, Completion, RecordBatch, TestRecord
from farm.outcomes import Outcome

SUITE = "s-20261201-000000-0000wake"


def test_a_pause_ends_when_the_suite_has_ended_and_not_before(redis_url: str) -> None:
    client = Client(Settings(broker_url=redis_url))
    r = redis.Redis.from_url(redis_url)
    try:
        assert client._pause(SUITE, 0.2) is False  # not ended: the whole interval, then a poll
        r.xadd(keys.ended(SUITE), {"s": "finished"})
        assert client._pause(SUITE, 3600.0) is True  # ended: at once (else this would block an hour)
        assert keys.ended(SUITE) in keys.suite_keys(SUITE)  # it expires and is deleted with the suite
    finally:
        client.close()
        r.close()


def test_the_finish_writes_the_end_with_the_report(redis_url: str) -> None:
    planner, state, published = _planner(redis_url)
    sid = "s-20261201-000000-00000end"
    _submit(state, planner, sid)
    planner.collected(Collection(sid, "w@h", 0, ("t.py::a",)))
    assert state.r.xlen(keys.ended(sid)) == 0, "ended before it ran"
    (a,) = published.assignments
    now = time.time()
    planner.records(RecordBatch(sid, a.assignment_id, 1, "w@h", "local:h", (TestRecord("t.py::a", Outcome.PASSED),)))
    planner.completed(Completion(sid, a.assignment_id, 1, "w@h", "local:h", "done", now, now, 0, 1))
    assert _report(state, sid)["summary"]["passed"] == 1
    assert state.r.xlen(keys.ended(sid)) == 1
    assert 0 < state.r.ttl(keys.ended(sid)) <= state.settings.suite_ttl_s
