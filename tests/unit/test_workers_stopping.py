"""workers.stopping: SIGTERM and SIGUSR2 during a task ask it to hand its work back; outside, they do not."""

from __future__ import annotations

import os
import signal

import pytest

from workers import stopping


@pytest.fixture(autouse=True)
def _restore_handlers():
    term, usr2 = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGUSR2)
    yield
    signal.signal(signal.SIGTERM, term)
    signal.signal(signal.SIGUSR2, usr2)


def test_a_sigterm_during_a_task_is_a_stop_request_and_the_pool_handler_comes_back_after() -> None:
    seen: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))  # stands for billiard's handler
    with stopping.running():
        assert not stopping.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stopping.requested() and seen == []
    os.kill(os.getpid(), signal.SIGTERM)
    assert seen == [signal.SIGTERM], "the pool's own handler was not put back after the task"


def test_a_second_sigterm_during_a_task_goes_to_the_pool_handler() -> None:
    seen: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    with stopping.running():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
    assert seen == [signal.SIGTERM]


def test_sigusr2_asks_only_a_running_task_and_a_new_task_starts_unasked() -> None:
    stopping.install()
    os.kill(os.getpid(), signal.SIGUSR2)  # idle: nothing to stop, and the process lives on
    with stopping.running():
        assert not stopping.requested()
        os.kill(os.getpid(), signal.SIGUSR2)
        assert stopping.requested()
    with stopping.running():
        assert not stopping.requested(), "a request made for an earlier task carried over"


def test_a_sigterm_after_sigusr2_is_the_first_sigterm_not_a_second() -> None:
    """A warm stop of the worker's process group: SIGTERM to the child and SIGUSR2 from the main
    process, both pending when Python runs handlers (SIGUSR2 first, by number). The child must keep
    running to hand its work back; a later SIGTERM still ends it."""
    seen: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    stopping.install()
    with stopping.running():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR2})
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGUSR2)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGUSR2})
        assert stopping.requested() and seen == [], "the group's SIGTERM was taken for a second one"
        os.kill(os.getpid(), signal.SIGTERM)
    assert seen == [signal.SIGTERM]
