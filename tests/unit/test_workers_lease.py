"""workers.lease: when a worker takes its attempt's lease as lost, and what a lost lease stops."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
import redis

from farm.model import Completion
from workers import lease
from workers.lease import Lease, LeaseKeeper, verdict
from workers.tasks import AttemptSink

LEASE_S = 3.0


@pytest.mark.parametrize(("renewed", "since", "expected"), [
    (True, 0.0, Lease.HELD),
    (True, 10.0, Lease.HELD),  # renewed just now: the time since the last one no longer matters
    (False, 0.0, Lease.GONE),  # the key is gone or another's: taken as lost, whatever the time
    (None, 2.9, Lease.HELD),  # no answer, but the last renewal still holds
    (None, 3.0, Lease.LAPSED),  # no answer for a whole lease period: as good as lost
])
def test_the_verdict_on_a_renewal(renewed: bool | None, since: float, expected: Lease) -> None:
    assert verdict(renewed, 100.0 - since, 100.0, LEASE_S) is expected


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Renewals:
    """A scripted state store: each renewal answers the next of `answers` (an exception is raised)."""

    answers: list[bool | Exception]
    calls: int = 0

    def __call__(self) -> bool:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _keeper(renew: Renewals, clock: Clock) -> LeaseKeeper:
    return LeaseKeeper(renew, LEASE_S, LEASE_S / 4, name="farm:lease:s:a#1", clock=clock)


def test_a_worker_cut_off_for_a_lease_period_takes_its_lease_as_lost_and_stops_renewing() -> None:
    clock, renew = Clock(), Renewals([True, *[redis.TimeoutError("timed out")] * 5])
    keeper = _keeper(renew, clock)
    clock.now += 0.75
    assert keeper.check() is Lease.HELD
    for _ in range(3):  # 0.75 s apart: still within the lease renewed at 1000.75
        clock.now += 0.75
        assert keeper.check() is Lease.HELD and not keeper.lost()
    clock.now += 0.75  # 3 s after the last renewal that got through
    assert keeper.check() is Lease.LAPSED and keeper.lost()
    calls = renew.calls
    clock.now += 0.75
    assert keeper.check() is Lease.LAPSED and renew.calls == calls, "a lost lease was renewed again"


def test_a_renewal_that_finds_the_lease_gone_is_final_even_if_the_next_would_succeed() -> None:
    clock, renew = Clock(), Renewals([False, True])
    keeper = _keeper(renew, clock)
    assert keeper.check() is Lease.GONE and keeper.lost()
    assert keeper.check() is Lease.GONE and renew.calls == 1


def test_a_stalled_worker_knows_its_lease_is_lost_as_soon_as_it_is_continued_before_any_renewal() -> None:
    clock, renew = Clock(), Renewals([True])
    keeper = _keeper(renew, clock)
    clock.now += 20.0  # SIGSTOP for 20 s: no thread ran meanwhile
    assert keeper.lost() and keeper.state is Lease.LAPSED and renew.calls == 0


def test_the_keepers_thread_renews_until_stopped_and_gives_up_on_a_gone_lease() -> None:
    held = Renewals([True] * 1000)
    with LeaseKeeper(held, LEASE_S, 0.01) as keeper:
        assert not keeper.wait_lost(0.3)
    assert held.calls >= 3 and not keeper.lost()
    with LeaseKeeper(Renewals([True, True, False]), LEASE_S, 0.01) as keeper:
        assert keeper.wait_lost(10) and keeper.state is Lease.GONE


@dataclass
class BlockedLink:
    """Stands for a worker whose broker link is cut: every publish hangs until released."""

    release: threading.Event = field(default_factory=threading.Event)
    sent: list[Completion] = field(default_factory=list)

    def send_completion(self, completion: Completion) -> None:
        self.release.wait(30)
        self.sent.append(completion)


def _completion() -> Completion:
    return Completion("s", "s-a001", 1, "w@h", "", "done", 0.0, 0.0, 0, 0, "")


def test_a_send_blocked_on_a_cut_link_is_left_behind_once_the_lease_is_lost() -> None:
    app, clock = BlockedLink(), Clock()
    keeper = _keeper(Renewals([]), clock)
    sink = AttemptSink(app, keeper)  # type: ignore[arg-type]
    done = threading.Event()

    def send() -> None:
        sink.send_completion(_completion())
        done.set()

    threading.Thread(target=send, daemon=True).start()
    assert not done.wait(0.5), "the send did not wait for its publish while the lease was held"
    clock.now += LEASE_S  # no renewal for a lease period
    assert done.wait(5), "a send blocked on a cut link kept the attempt from stopping"
    assert sink.is_stopping() and not sink.is_canceled("s") and sink.stop_reason("s") == ""
    app.release.set()  # the link is back: what was left behind still gets there (and is fenced)
    for _ in range(100):
        if app.sent:
            break
        threading.Event().wait(0.05)
    assert app.sent == [_completion()]


def test_a_publish_that_fails_while_the_lease_is_held_raises_in_the_sender() -> None:
    class FailingLink:
        def send_completion(self, completion: Completion) -> None:
            raise ConnectionError("broker gone")

    sink = AttemptSink(FailingLink(), _keeper(Renewals([]), Clock()))  # type: ignore[arg-type]
    with pytest.raises(ConnectionError, match="broker gone"):
        sink.send_completion(_completion())


def test_renewals_use_a_connection_that_gives_up_within_its_timeout() -> None:
    conn = lease.quick_connection("redis://127.0.0.1:1/0", 0.5)
    kwargs = conn.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.5
    assert kwargs["retry"].get_retries() == 0
