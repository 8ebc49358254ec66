"""Run-time balancing's pure decisions: who splits, where the cut is, nothing when not worth it."""

from __future__ import annotations

from coordinator import balance, transitions
from farm.attempts import Attempt
from farm.model import Assignment
from farm.states import AttemptState
from workers.attempt_loop import AttemptLoop

IDS = tuple(f"t.py::t{i}" for i in range(10))


def _running(aid: str, tests: tuple[str, ...], **kw: object) -> balance.Running:
    a = Attempt.planned(aid, 1, tests, now=0.0).but(state=AttemptState.RUNNING)
    return balance.Running(a, tests, **kw)  # type: ignore[arg-type]


def test_the_cut_halves_the_time_left_counting_the_tails_start_up() -> None:
    assert balance.cut([1.0] * 10, 0.0) == (5, 5.0)
    assert balance.cut([1.0] * 10, 2.0) == (6, 6.0)  # the tail pays 2 s to start: it gets less
    # A long first test (maybe running): everything after it goes.
    assert balance.cut([11.0, 0.5, 0.5, 0.5], 1.0) == (1, 11.0)


def test_no_cut_when_the_gain_is_below_a_runners_start_up() -> None:
    assert balance.cut([0.3, 0.3, 0.3], 1.0) is None  # 0.9 s left: a new runner costs more
    assert balance.cut([5.0], 0.0) is None  # one test: nothing to give away
    assert balance.cut([], 0.0) is None


def test_the_attempt_with_the_most_time_left_splits_first_and_at_most_one_per_idle_slot() -> None:
    short, long_ = _running("s-a000", IDS[:4]), _running("s-a001", IDS[4:])
    durations = {t: 2.0 for t in IDS[4:]}
    asks = balance.to_split([short, long_], idle=1, durations=durations, mean_s=1.0, overhead_s=1.0)
    assert [(a.attempt.assignment_id, a.seq, a.tail) for a in asks] == [("s-a001", 1, IDS[7:])]
    both = balance.to_split([short, long_], idle=3, durations=durations, mean_s=1.0, overhead_s=1.0)
    assert [a.attempt.assignment_id for a in both] == ["s-a001", "s-a000"]


def test_nothing_is_asked_without_an_idle_slot_or_with_a_request_still_out() -> None:
    r = _running("s-a000", IDS)
    assert balance.to_split([r], idle=0, durations={}, mean_s=1.0, overhead_s=1.0) == []
    out = _running("s-a000", IDS, asked=1, answered=False)
    assert balance.to_split([out], idle=1, durations={}, mean_s=1.0, overhead_s=1.0) == []
    done = _running("s-a000", IDS, asked=1, answered=True)  # carried out: it may split again
    assert [a.seq for a in balance.to_split([done], idle=1, durations={}, mean_s=1.0, overhead_s=1.0)] == [2]
    capped = _running("s-a000", IDS, asked=balance.MAX_SPLITS, answered=True)
    assert balance.to_split([capped], idle=1, durations={}, mean_s=1.0, overhead_s=1.0) == []


def test_idle_slots_are_none_while_an_attempt_waits_on_the_queue() -> None:
    queued = Attempt.planned("s-a000", 1, IDS, now=0.0)
    running = queued.but(assignment_id="s-a001", state=AttemptState.RUNNING)
    assert balance.idle_slots(4, [queued, running], 0) == 0
    assert balance.idle_slots(4, [running], 0) == 3
    assert balance.idle_slots(4, [running], 2) == 1  # two requests out will fill two


def test_the_mean_per_test_comes_from_the_ended_attempts() -> None:
    ended = Attempt.planned("s-a000", 1, IDS, now=0.0).but(state=AttemptState.DONE, wall_s=5.0)
    assert balance.mean_test_s([ended]) == 0.5
    assert balance.mean_test_s([]) == balance.UNKNOWN_TEST_S


def test_a_split_moves_only_the_tests_still_pending_and_owned_and_only_once() -> None:
    old = Attempt.planned("s-a000", 1, IDS, now=0.0).but(state=AttemptState.RUNNING)
    outcomes = {t: "pending" for t in IDS} | {IDS[8]: "passed"}
    owners = {t: old.key for t in IDS} | {IDS[9]: "s-a000#2"}
    head, new = transitions.split_off(old, IDS[5:], outcomes, owners, seq=1, now=1.0)  # type: ignore[misc]
    assert new.assignment_id == "s-a000s1.1" and new.number == 1 and new.test_ids == IDS[5:8]
    assert head.test_ids == IDS[:5] + IDS[8:]
    moved = {t: new.key for t in new.test_ids}
    assert transitions.split_off(head, IDS[5:], outcomes, owners | moved, seq=1, now=2.0) is None
    assert transitions.split_off(old.but(state=AttemptState.LOST), IDS[5:], outcomes, owners, seq=1, now=1.0) is None
    assert transitions.split_off(old.but(requeued=True), IDS[5:], outcomes, owners, seq=1, now=1.0) is None


def _loop() -> AttemptLoop:
    a = Assignment("s", "s-a000", 1, "0" * 64, (), IDS)
    loop = AttemptLoop(a, "w1")
    loop.begin(0.0, canceled=False, stop_reason="")
    loop.runner_started(0.0)
    loop.line({"k": "start", "id": IDS[0], "t": 0.0}, 0.0)
    return loop


def test_the_worker_fences_only_unstarted_tests_and_forgets_them_once_cut() -> None:
    loop = _loop()
    assert loop.split_asked(1, IDS[0:1]) == ()  # running already: nothing to fence
    loop = _loop()
    assert loop.split_asked(1, IDS[:1] + IDS[6:]) == IDS[6:]
    assert loop.split_asked(1, IDS[6:]) == ()  # the same request again
    assert loop.fenced(2, list(IDS[6:])) == ()  # not the fence out
    assert loop.fenced(1, list(IDS[5:])) == IDS[5:]  # the runner cut from the first unstarted one it had
    assert loop.remaining == list(IDS[:5]) and loop.split_off == list(IDS[5:]) and loop.split_seqs == [1] * 5
    assert loop.split_asked(2, IDS[3:]) == IDS[3:5]  # a later request: what is still its own


def test_an_attempts_own_pace_estimates_its_unknown_tests() -> None:
    a = Attempt.planned("s-a000", 1, IDS, now=0.0).but(state=AttemptState.RUNNING, started_at=100.0)
    assert balance.pace(a, 6, 112.0) == 3.0  # 4 tests done in 12 s
    assert balance.pace(a, 10, 105.0) == 5.0  # none done yet: at least the one running took that long
    assert balance.pace(a.but(started_at=0.0), 6, 112.0) == 0.0
    slow = balance.Running(a, IDS[4:], pace_s=3.0)
    (ask,) = balance.to_split([slow], idle=1, durations={}, mean_s=0.01, overhead_s=1.0)
    assert ask.left_s == 18.0 and ask.tail == IDS[7:]
