"""The event log's pieces: its stored form, which attempt change is which event, the fold over
hand-built logs, the trimmed log, and the stub store's bound."""

from __future__ import annotations

import msgpack
import pytest

from coordinator.memory_store import MemoryStore
from farm import events
from farm.attempts import Attempt
from farm.errors import LogIncomplete, ProtocolError
from farm.events import Event, Kind
from farm.model import Collection, SuiteSpec, TestRecord, TestRun
from farm.outcomes import Outcome
from farm.protocol import encode
from farm.report.rebuild import fold, rebuild
from farm.states import AttemptState

SPEC = SuiteSpec("s", "p", "0" * 64, "default", "load", (), 100.0)
IDS = ("t.py::a", "t.py::b")
A1 = Attempt.planned("s-a000", 1, IDS, now=101.0)


def _records(*records: TestRecord, attempt: int = 1, fenced: bool = False, kind: Kind = Kind.RECORDS) -> Event:
    runs = {f"{r.test_id}\0s-a000\0{attempt}": TestRun(r.test_id, "s-a000", attempt, "w", "n", r.outcome.value,
                                                        r.duration_s, 0.0, fenced) for r in records}
    counted = {} if fenced else {r.test_id: r for r in records}
    verdicts = {k: v for k, v in runs.items() if v.outcome == "not_run"}
    return events.merged(counted, {k: v for k, v in runs.items() if k not in verdicts}, verdicts,
                         assignment="s-a000", attempt=attempt, worker="w", node="n", at=103.0, kind=kind)[0]


def _finished(status: str = "finished", code: int = 0) -> Event:
    return events.finished(status=status, exit_code=code, message="", started_at=100.0, finished_at=110.0,
                           stopped="", workers=())


def _log(*middle: Event) -> list[Event]:
    collection = Collection("s", "w", 0, IDS)
    return [events.submitted(SPEC), events.collected(collection, list(IDS), [A1], 102.0), *middle, _finished()]


def test_an_event_survives_its_stored_form() -> None:
    e = _records(TestRecord("t.py::a", Outcome.PASSED, 0.5))
    assert events.unpack(events.pack(e)) == e


def test_a_newer_or_garbled_event_is_one_protocol_error() -> None:
    newer = msgpack.packb({"v": events.VERSION + 1, "k": "submitted"})
    with pytest.raises(ProtocolError, match="upgrade farm"):
        events.unpack(newer)
    with pytest.raises(ProtocolError, match="not a farm event"):
        events.unpack(b"\x93garbage")


def test_each_attempt_change_is_named_by_what_changed() -> None:
    published = A1.but(published_at=101.5)
    claimed = published.but(state=AttemptState.RUNNING, worker="w")
    started = claimed.but(node="n")
    ended = started.but(state=AttemptState.DONE, finished_at=109.0)
    kinds = [events.changed(o, n, 0.0) for o, n in
             [(A1, published), (published, published.but(published_at=150.0)), (published, claimed),
              (claimed, started), (started, ended), (started, started.but(received=2))]]
    assert [e.kind if e else None for e in kinds] == [Kind.PUBLISHED, Kind.PUBLISHED, Kind.CLAIMED, Kind.STARTED,
                                                       Kind.ENDED, None]
    assert kinds[1] is not None and kinds[1].detail == "again"


def test_the_fold_replays_the_stores_writes_in_order() -> None:
    log = _log(
        _records(TestRecord("t.py::a", Outcome.FAILED)),
        _records(TestRecord("t.py::a", Outcome.PASSED)),  # a later write wins, as HSET
        _records(TestRecord("t.py::b", Outcome.PASSED), attempt=2, fenced=True),
        events.of_attempt(Kind.ENDED, A1.but(state=AttemptState.DONE, worker="w", finished_at=109.0), 109.0),
    )
    f = fold([*log, _records(TestRecord("t.py::b", Outcome.ERROR))])  # after the report: not in it
    assert {t: r.outcome for t, r in f.counted.items()} == {"t.py::a": Outcome.PASSED}
    assert sorted((r.test_id, r.fenced) for r in f.runs.values()) == [("t.py::a", False), ("t.py::b", True)]
    (a,) = f.attempts.values()
    assert (a.state, a.worker, a.test_ids) == (AttemptState.DONE, "w", IDS)  # its tests kept from its creation


def test_a_not_run_verdict_never_replaces_a_run() -> None:
    ran = _records(TestRecord("t.py::a", Outcome.PASSED))
    verdict = _records(TestRecord("t.py::a", Outcome.NOT_RUN), kind=Kind.DEADLINE)
    f = fold(_log(ran, verdict))
    (run,) = f.runs.values()
    assert run.outcome == "passed"


def test_the_rebuilt_report_has_what_the_log_says() -> None:
    report = rebuild(_log(_records(TestRecord("t.py::a", Outcome.PASSED), TestRecord("t.py::b", Outcome.FAILED))))
    assert report["suite_id"] == "s" and report["exit_code"] == 0
    assert [(t["id"], t["outcome"]) for t in report["tests"]] == [("t.py::a", "passed"), ("t.py::b", "failed")]


def test_a_trimmed_or_unfinished_log_cannot_give_the_report() -> None:
    log = _log(_records(TestRecord("t.py::a", Outcome.PASSED)))
    with pytest.raises(LogIncomplete, match="trimmed"):
        rebuild(log[1:], "s")
    with pytest.raises(LogIncomplete, match="has not finished"):
        rebuild(log[:-1], "s")
    assert LogIncomplete("x").exit_code == 3


def test_the_stub_stores_log_keeps_its_newest_entries_up_to_the_cap() -> None:
    store = MemoryStore(clock=lambda: 5.0)
    store.submit(SPEC)
    assert store.start_collecting("s", 1.0)
    assert store.plan(Collection("s", "w", 0, IDS), list(IDS), [A1], now=1.0)
    for _ in range(events.cap(len(IDS)) + 10):
        store.merge("s", [TestRecord("t.py::a", Outcome.PASSED)], assignment="s-a000", attempt=1, worker="w",
                    node="n", kind=Kind.DEADLINE)
    logged = store.events("s")
    assert len(logged) == events.cap(len(IDS)) and logged[0].kind == Kind.DEADLINE
    assert all(e.at == 5.0 for e in logged)  # stamped by the store's clock


def test_the_collected_event_carries_the_plans_ids_once_and_folds_back_whole() -> None:
    ids = tuple(f"t.py::f[{i}]" for i in range(6))
    skipped = TestRecord("u.py", Outcome.SKIPPED, phase="setup")  # decided at collection, not runnable
    collection = Collection("s", "w", 0, ids, decided=(skipped,))
    order = [*ids, "u.py"]
    attempts = [Attempt.planned("s-a000", 1, (ids[0], ids[3], ids[5]), now=101.0),
                Attempt.planned("s-a001", 1, (ids[1], ids[2], ids[4]), now=101.0)]
    stored = events.pack(events.collected(collection, order, attempts, 102.0))
    assert sum(stored.count(t.encode()) for t in ids) == len(ids)  # each id once, in `order`
    f = fold([events.unpack(stored)])
    assert f.collection == collection and f.order == order
    assert [a.test_ids for a in f.attempts.values()] == [a.test_ids for a in attempts]


def test_a_collected_event_of_an_older_farm_still_folds() -> None:
    collection = Collection("s", "w", 0, IDS)
    older = Event(Kind.COLLECTED, 102.0, worker="w", data={
        "collection": encode(collection), "order": list(IDS), "attempts": [A1.to_stored()]})
    f = fold([events.unpack(events.pack(older))])
    assert f.collection == collection and f.order == list(IDS)
    assert [a.test_ids for a in f.attempts.values()] == [IDS]

