"""Run-time balancing through the Planner, over either store: an idle slot takes a running
attempt's unstarted tail (coordinator/balance.py), with the races a split can meet.

Run over the stub store by tests/unit/test_split_scenarios.py and over a real redis-server by
tests/integration/test_split_scenarios_redis.py."""

from __future__ import annotations

from farm import events, keys
from farm.model import Assignment, Completion, RecordBatch, Split, SuiteSpec, TestRecord
from farm.outcomes import Outcome
from support.scenarios import LEASE_S, World

TESTS = tuple(f"t.py::t{i:02d}" for i in range(40))


def _two_slots(w: World, sid: str) -> tuple[Assignment, Assignment]:
    """Two workers of one slot; 40 tests without history: two assignments of 20."""
    w.add_worker("w1@h")
    w.add_worker("w2@h")
    w.submit(sid)
    w.collect(sid, TESTS)
    a0, a1 = [a for a in w.published if a.suite_id == sid]
    assert (a0.test_ids, a1.test_ids) == (TESTS[:20], TESTS[20:])
    return a0, a1


def _complete(w: World, a: Assignment, worker: str, *, took: float, split_off: tuple[str, ...] = (),
              seq: int = 1) -> None:
    now = w.clock()
    w.planner.completed(Completion(a.suite_id, a.assignment_id, a.attempt, worker, f"local:{worker}", "done",
                                   now - took, now, 0, len(a.test_ids) - len(split_off),
                                   split_off=split_off, split_seqs=(seq,) * len(split_off)))


def _first_ends_while_second_runs(w: World, sid: str) -> tuple[Assignment, tuple[str, ...]]:
    """a000 ends (1 s a test) while a001 has run 2 tests: a001 is asked to split; its tail."""
    a0, a1 = _two_slots(w, sid)
    w.take(a0, "w1@h")
    w.take(a1, "w2@h")
    w.send(a1, "w2@h", *(TestRecord(t, Outcome.PASSED, 1.0) for t in TESTS[20:22]))
    assert w.store.split_asks(sid) == {}, "asked to split while no slot was idle"
    w.send(a0, "w1@h", *(TestRecord(t, Outcome.PASSED, 1.0) for t in a0.test_ids))
    _complete(w, a0, "w1@h", took=20.0)
    assert w.store.split_asks(sid) == {keys.attempt_key(a1.assignment_id, 1): 1}
    # 18 tests left of 1 s each, 1 s to start a runner: the last 9 go (10 s and 9 + 1 s).
    return a1, TESTS[31:]


def an_idle_slot_takes_the_unstarted_tail(w: World) -> None:
    a1, tail = _first_ends_while_second_runs(w, "sp")
    published = len(w.published)
    w.planner.split(Split("sp", a1.assignment_id, 1, "w2@h", 1, tail))
    new = w.published[-1]
    assert len(w.published) == published + 1
    assert (new.assignment_id, new.attempt, new.test_ids) == (f"{a1.assignment_id}s1.1", 1, tail)
    w.planner.split(Split("sp", a1.assignment_id, 1, "w2@h", 1, tail))  # delivered twice: nothing more
    assert len(w.published) == published + 1
    w.send(a1, "w2@h", TestRecord(tail[0], Outcome.FAILED))  # the head's runner never runs the tail: dropped
    w.run(new, "w1@h")
    w.send(a1, "w2@h", *(TestRecord(t, Outcome.PASSED, 1.0) for t in TESTS[22:31]))
    _complete(w, a1, "w2@h", took=11.0, split_off=tail)
    report = w.report("sp")
    assert report["exit_code"] == 0 and report["summary"]["passed"] == 40
    assert sorted(t["id"] for t in report["tests"]) == list(TESTS)
    by_id = {a["id"]: a for a in report["assignments"]}
    assert by_id[a1.assignment_id]["tests"] == list(TESTS[20:31])
    assert by_id[new.assignment_id]["tests"] == list(tail) and by_id[new.assignment_id]["state"] == "done"
    assert [e.kind for e in w.store.events("sp")].count(events.Kind.SPLIT) == 2  # the head's and the tail's


def a_completion_before_its_split_message_moves_the_tail(w: World) -> None:
    a1, tail = _first_ends_while_second_runs(w, "early")
    w.send(a1, "w2@h", *(TestRecord(t, Outcome.PASSED, 1.0) for t in TESTS[22:31]))
    _complete(w, a1, "w2@h", took=11.0, split_off=tail)  # handled first: the tail is not taken as not run
    new = w.published[-1]
    assert new.test_ids == tail and new.assignment_id == f"{a1.assignment_id}s1.1"
    published = len(w.published)
    w.planner.split(Split("early", a1.assignment_id, 1, "w2@h", 1, tail))  # the Split message, late
    assert len(w.published) == published
    w.run(new, "w1@h")
    report = w.report("early")
    assert report["exit_code"] == 0 and report["summary"]["passed"] == 40


def a_worker_lost_after_its_cut_runs_the_tail_once(w: World) -> None:
    a1, tail = _first_ends_while_second_runs(w, "cut")
    # Its runner confirmed the cut, then the worker died before its Split got through.
    w.hold_lease("cut", keys.attempt_key(a1.assignment_id, 1), None)
    w.tick(LEASE_S)
    again = w.published[-1]
    assert (again.assignment_id, again.attempt, again.test_ids) == (a1.assignment_id, 2, TESTS[22:])
    published = len(w.published)
    w.planner.split(Split("cut", a1.assignment_id, 1, "w2@h", 1, tail))  # it gets through now: too late
    assert len(w.published) == published
    w.run(again, "w1@h")
    report = w.report("cut")
    assert report["exit_code"] == 0 and report["summary"]["passed"] == 40
    assert sorted(t["id"] for t in report["tests"]) == list(TESTS)
    assert not any("s1." in a["id"] for a in report["assignments"])


def nothing_is_split_when_it_is_not_worth_a_runner(w: World) -> None:
    a0, a1 = _two_slots(w, "small")
    w.take(a0, "w1@h")
    w.take(a1, "w2@h")
    w.send(a1, "w2@h", *(TestRecord(t, Outcome.PASSED, 0.01) for t in TESTS[20:37]))
    w.send(a0, "w1@h", *(TestRecord(t, Outcome.PASSED, 0.01) for t in a0.test_ids))
    _complete(w, a0, "w1@h", took=0.4)  # 0.02 s a test: 3 tests left are not worth a runner's start
    assert w.store.split_asks("small") == {}


def a_module_is_not_split_under_dist_loadfile(w: World) -> None:
    w.add_worker("w1@h")
    w.add_worker("w2@h")
    w._submit(SuiteSpec("lf", "proj", "0" * 64, "default", "loadfile", (), w.clock()))
    w.planner.submitted("lf")
    tests = tuple(f"{m}.py::t{i:02d}" for m in "ab" for i in range(20))
    w.collect("lf", tests)
    a0, a1 = [a for a in w.published if a.suite_id == "lf"]
    w.take(a0, "w1@h")
    w.take(a1, "w2@h")
    w.send(a1, "w2@h", *(TestRecord(t, Outcome.PASSED, 1.0) for t in a1.test_ids[:2]))
    w.send(a0, "w1@h", *(TestRecord(t, Outcome.PASSED, 1.0) for t in a0.test_ids))
    _complete(w, a0, "w1@h", took=20.0)  # as worth it as in _first_ends_while_second_runs, but one module
    assert w.store.split_asks("lf") == {}


def an_attempt_whose_runner_cannot_fence_is_not_asked(w: World) -> None:
    a0, a1 = _two_slots(w, "ssh")
    w.take(a0, "w1@h")
    w.take(a1, "w2@h")
    records = tuple(TestRecord(t, Outcome.PASSED, 1.0) for t in TESTS[20:22])
    w.planner.records(RecordBatch("ssh", a1.assignment_id, 1, "w2@h", "ssh:host-b", records))  # an SSH runner
    w.send(a0, "w1@h", *(TestRecord(t, Outcome.PASSED, 1.0) for t in a0.test_ids))
    _complete(w, a0, "w1@h", took=20.0)
    assert w.store.split_asks("ssh") == {}  # it would never answer: the idle slot stays free to offer


def the_history_is_read_once_per_suite_however_many_attempts_end(w: World) -> None:
    """Balancing, a tail's publication and the finish read the project's recorded durations (the
    whole hash: 100,000 fields for a suite of 100,000 tests) once per suite, not per completion."""
    reads: list[str] = []
    read = w.store.durations

    def counted(project: str) -> dict[str, float]:
        reads.append(project)
        return read(project)

    w.store.durations = counted  # type: ignore[method-assign]
    w.planner = w.start_coordinator()
    a0, a1 = _two_slots(w, "memo")  # planned without history: two assignments of 20
    planned = len(reads)  # the plan's own read (coordinator.planner.collected)
    w.store.record_durations("proj", {t: 1.0 for t in TESTS})  # an earlier suite's, finished meanwhile
    w.take(a0, "w1@h")
    w.take(a1, "w2@h")
    w.send(a1, "w2@h", *(TestRecord(t, Outcome.PASSED, 1.0) for t in TESTS[20:22]))
    w.send(a0, "w1@h", *(TestRecord(t, Outcome.PASSED, 1.0) for t in a0.test_ids))
    _complete(w, a0, "w1@h", took=20.0)  # balancing: a001 is asked to split, by its recorded durations
    ask = w.store.split_asks("memo")
    assert ask == {keys.attempt_key(a1.assignment_id, 1): 1}, ask
    tail = TESTS[31:]  # 18 tests of 1 s recorded, 1 s to start a runner: the last 9
    w.planner.split(Split("memo", a1.assignment_id, 1, "w2@h", 1, tail))
    new = w.published[-1]
    assert new.test_ids == tail and new.expected_s == len(tail) * 1.0  # the tail's time, from the history
    w.run(new, "w1@h")  # a completion: balancing again
    w.send(a1, "w2@h", *(TestRecord(t, Outcome.PASSED, 1.0) for t in TESTS[22:31]))
    _complete(w, a1, "w2@h", took=11.0, split_off=tail)  # and again, then the finish
    assert w.report("memo")["summary"]["passed"] == 40
    assert len(reads) - planned == 1, f"the history was read {len(reads) - planned} times after planning"


SPLIT_SCENARIOS = [
    the_history_is_read_once_per_suite_however_many_attempts_end,
    an_idle_slot_takes_the_unstarted_tail,
    a_completion_before_its_split_message_moves_the_tail,
    a_worker_lost_after_its_cut_runs_the_tail_once,
    nothing_is_split_when_it_is_not_worth_a_runner,
    a_module_is_not_split_under_dist_loadfile,
    an_attempt_whose_runner_cannot_fence_is_not_asked,
]
