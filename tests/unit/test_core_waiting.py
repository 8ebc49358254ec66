"""What the submitter says while its suite waits: when, how often, and about what."""

from __future__ import annotations

from farm.waiting import SuiteWatch, WaitingNotices


def _feed(notices: WaitingNotices, status: str, live: int, start: float, end: float) -> list[tuple[float, str]]:
    said = []
    t = start
    while t <= end:
        line = notices.see(status, live, t)
        if line:
            said.append((t, line))
        t += 1.0
    return said


def test_no_live_worker_is_said_after_20s_and_again_every_30s_while_it_lasts() -> None:
    notices = WaitingNotices("nobody")
    said = _feed(notices, "collecting", 0, 0.0, 100.0)
    assert [t for t, _ in said] == [20.0, 50.0, 80.0]
    assert all("no live worker serves pool 'nobody'" in line for _, line in said)
    assert "after 50s" in said[1][1]


def test_the_only_worker_dying_mid_run_is_said_too_and_its_return_ends_the_notices() -> None:
    notices = WaitingNotices("default")
    assert _feed(notices, "running", 1, 0.0, 60.0) == [], "a suite running on a live worker is not waiting"
    said = _feed(notices, "running", 0, 61.0, 111.0)
    assert [t for t, _ in said] == [81.0, 111.0]
    assert _feed(notices, "running", 1, 112.0, 200.0) == []
    again = _feed(notices, "running", 0, 201.0, 221.0)
    assert [t for t, _ in again] == [221.0], "a worker lost again is counted from when it was lost"


def test_no_coordinator_is_said_again_too_and_a_slow_collection_only_once() -> None:
    said = _feed(WaitingNotices("default"), "submitted", 0, 0.0, 55.0)
    assert [t for t, _ in said] == [20.0, 50.0]
    assert "no coordinator has taken the suite" in said[0][1]
    slow = _feed(WaitingNotices("default"), "collecting", 2, 0.0, 200.0)
    assert [t for t, _ in slow] == [20.0]
    assert "has collected the suite yet" in slow[0][1]


def test_a_suite_watch_reads_the_live_workers_at_most_once_a_second() -> None:
    reads = []

    def live() -> int:
        reads.append(1)
        return 0

    watch = SuiteWatch("p", live)
    for i in range(50):
        watch.see("collecting", i * 0.1)
    assert len(reads) == 5
    assert watch.see("finished", 5.0) is None
