"""The restart policy of a local farm's processes: back-off, restart counts, giving up."""

from __future__ import annotations

import signal

import pytest

from farm.supervision import GiveUp, Restart, RestartPolicy, Supervisor, describe_exit


def test_a_dead_process_is_restarted_after_the_first_delay() -> None:
    sup = Supervisor(RestartPolicy(first_delay_s=1.0))
    assert sup.exited("worker-0", now=100.0) == Restart("worker-0", at=101.0, delay_s=1.0, count=1)
    assert sup.waiting("worker-0")
    assert sup.due(100.5) == []
    assert sup.due(101.0) == ["worker-0"]
    assert sup.due(102.0) == [], "a restart is due once"
    assert not sup.waiting("worker-0")


def test_the_back_off_doubles_with_each_restart_in_the_window_up_to_its_cap() -> None:
    sup = Supervisor(RestartPolicy(first_delay_s=1.0, max_delay_s=5.0, burst=10, window_s=1000.0))
    delays = []
    now = 0.0
    for _ in range(5):
        decision = sup.exited("coordinator", now)
        assert isinstance(decision, Restart)
        delays.append(decision.delay_s)
        now = decision.at + 0.1  # it starts, and dies at once again
        assert sup.due(now) == ["coordinator"]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_process_that_keeps_dying_is_given_up_after_the_burst() -> None:
    sup = Supervisor(RestartPolicy(first_delay_s=1.0, burst=3, window_s=60.0))
    counts = [sup.exited("worker-1", t) for t in (0.0, 2.0, 5.0)]
    assert [d.count for d in counts if isinstance(d, Restart)] == [1, 2, 3]
    decision = sup.exited("worker-1", 10.0)
    assert isinstance(decision, GiveUp)
    assert decision.why == "it was restarted 3 times within 60s"


def test_a_process_that_stayed_up_for_the_window_starts_over() -> None:
    sup = Supervisor(RestartPolicy(first_delay_s=1.0, burst=2, window_s=60.0))
    assert sup.exited("flower", 0.0).delay_s == 1.0  # type: ignore[union-attr]
    assert sup.exited("flower", 10.0).delay_s == 2.0  # type: ignore[union-attr]
    later = sup.exited("flower", 200.0)  # up for minutes since: not a crash loop
    assert later == Restart("flower", at=201.0, delay_s=1.0, count=1)


def test_processes_are_counted_apart() -> None:
    sup = Supervisor(RestartPolicy(first_delay_s=1.0))
    sup.exited("worker-0", 0.0)
    sup.exited("worker-0", 1.5)
    assert sup.exited("worker-1", 1.5) == Restart("worker-1", at=2.5, delay_s=1.0, count=1)
    assert sup.due(2.5) == ["worker-1"]
    assert sup.due(3.5) == ["worker-0"]  # its second restart waits 2 s


def test_a_fatal_process_is_never_restarted() -> None:
    sup = Supervisor(fatal=frozenset({"redis"}))
    assert sup.exited("redis", 0.0) == GiveUp("redis", "it is not restarted")
    assert sup.due(100.0) == []
    assert isinstance(sup.exited("worker-0", 0.0), Restart)


def test_clear_forgets_pending_restarts() -> None:
    sup = Supervisor()
    sup.exited("worker-0", 0.0)
    sup.clear()
    assert sup.due(1000.0) == []


@pytest.mark.parametrize(("code", "text"), [
    (-signal.SIGKILL, "killed by SIGKILL"), (-signal.SIGTERM, "killed by SIGTERM"), (1, "code 1"), (0, "code 0"),
    (-200, "killed by signal 200"),
])
def test_exits_are_described_as_a_user_reads_them(code: int, text: str) -> None:
    assert describe_exit(code) == text


def test_a_service_that_exits_with_a_usage_error_is_given_up_at_once_and_a_failed_one_restarted() -> None:
    """Exit 4 (a bad option or setting, a broker refusing the password) would come back at every
    restart; exit 3 (an unrecoverable error: maybe its broker's, which passes) is restarted."""
    sup = Supervisor(RestartPolicy(first_delay_s=1.0))
    decision = sup.exited("worker-0", 0.0, 4)
    assert isinstance(decision, GiveUp) and "usage error" in decision.why
    assert not sup.waiting("worker-0")
    assert isinstance(sup.exited("worker-1", 0.0, 3), Restart)
