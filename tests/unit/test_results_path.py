"""The coordinator's results path: what a batch costs (reads), and the compact form records are stored and logged in."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import msgpack
from support.scenarios import MemoryWorld, World, _planned

from coordinator.memory_store import MemoryStore
from farm import events
from farm.events import Event, Kind
from farm.model import TestRecord, TestRun, record_to_plain
from farm.outcomes import Outcome
from farm.report.rebuild import fold
from farm.stored import record_from_row, record_row, run_from_row, run_of, run_row

TESTS = tuple(f"t.py::test_{i}" for i in range(12))


class CountingStore(MemoryStore):
    """A stub store that counts how often every attempt of a suite is read."""

    def __init__(self) -> None:
        super().__init__()
        self.attempt_lists = 0

    def attempts(self, suite_id: str) -> Any:
        self.attempt_lists += 1
        return super().attempts(suite_id)


class CountingWorld(MemoryWorld):
    def __init__(self) -> None:
        self.memory = self.counting = CountingStore()
        World.__init__(self, self.memory)


def test_a_batch_that_leaves_tests_pending_does_not_read_every_attempt() -> None:
    w = CountingWorld()
    store = w.counting
    (a,) = _planned(w, "s", TESTS)
    store.attempt_lists = 0
    for t in a.test_ids[:-1]:  # one batch a test: each leaves the suite incomplete
        w.send(a, "w1@h", TestRecord(t, Outcome.PASSED, 0.1))
    assert store.attempt_lists == 0  # main read (and unpacked) every attempt's tests on each batch
    w.send(a, "w1@h", TestRecord(a.test_ids[-1], Outcome.PASSED, 0.1))
    w.complete(a, "w1@h")
    assert w.report("s")["summary"]["passed"] == len(TESTS)


def _records_event(counted: list[TestRecord], runs: list[TestRun], verdicts: list[TestRun] = ()) -> Event:
    (e,) = events.merged({r.test_id: r for r in counted}, {r.key: r for r in runs}, {r.key: r for r in verdicts},
                         assignment="s-a000", attempt=1, worker="w", node="n", at=1.0)
    return events.unpack(events.pack(e))


def test_a_records_event_does_not_carry_the_runs_its_records_imply() -> None:
    records = [TestRecord(f"t{i}", Outcome.PASSED, 0.1 * i, started_at=5.0 + i) for i in range(3)]
    runs = [run_of(r, assignment="s-a000", attempt=1, worker="w", node="n") for r in records]
    e = _records_event(records, runs)
    assert e.data["derived"] == [0, 1, 2] and e.data["runs"] == []  # main logged every run again
    assert "counted" not in e.data and [record_from_row(v) for v in e.data["c"]] == records
    f = fold([e])
    assert f.counted == {r.test_id: r for r in records}
    assert f.runs == {r.key: r for r in runs}


def test_a_run_that_differs_from_its_counted_record_is_logged_whole() -> None:
    first = TestRecord("t0", Outcome.FAILED, 0.5, started_at=1.0)
    again = TestRun("t0", "s-a000", 1, "w", "n", "passed", 0.2, 2.0)  # a duplicate in the batch: the last run wins
    flaky = TestRecord("t1", Outcome.FLAKY, 0.3, started_at=3.0, message="failed, then passed when run again")
    e = _records_event([first, flaky], [again, run_of(flaky, assignment="s-a000", attempt=1, worker="w", node="n")])
    assert e.data["derived"] == [1]
    assert [run_from_row(v) for v in e.data["runs"]] == [again]
    assert fold([e]).runs["t1\0s-a000\x001"].outcome == "passed"  # a flaky record's run was a pass


def test_verdicts_are_kept_only_where_no_run_exists() -> None:
    real = TestRun("t0", "s-a000", 1, "w", "n", "passed", 0.2, 2.0)
    verdict = TestRun("t0", "s-a000", 1, "w", "n", "not_run", 0.0, 0.0)
    f = fold([_records_event([], [real]), _records_event([], [], [verdict])])
    assert f.runs[real.key] == real


def test_the_older_records_event_form_still_folds() -> None:
    """Logs written before the compact form: maps, and every run."""
    r = TestRecord("t0", Outcome.FAILED, 0.5, started_at=1.0, longrepr="boom", sections=(("out", "x"),))
    run = TestRun("t0", "s-a000", 1, "w", "n", "failed", 0.5, 1.0)
    old = Event(Kind.RECORDS, 1.0, "s-a000", 1, "w", "n", "1 failed",
                {"counted": [record_to_plain(r)], "runs": [asdict(run)], "verdicts": []})
    f = fold([events.unpack(events.pack(old))])
    assert f.counted == {"t0": r} and f.runs == {run.key: run}


def test_stored_rows_round_trip_and_the_map_form_reads() -> None:
    r = TestRecord("t0", Outcome.ERROR, 0.5, "teardown", "m", "lr", (("a", "b"),), 1.0, 0.1, 0.2, 0.3, "t0[x]")
    run = TestRun("t0", "s-a000", 2, "w", "n", "error", 0.5, 1.0, True)
    for packed in (record_row(r), record_to_plain(r)):
        assert record_from_row(msgpack.unpackb(msgpack.packb(packed), raw=False)) == r
    for packed_run in (run_row(run), asdict(run)):
        assert run_from_row(msgpack.unpackb(msgpack.packb(packed_run), raw=False)) == run
    assert len(msgpack.packb(record_row(r))) < len(msgpack.packb(record_to_plain(r)))
