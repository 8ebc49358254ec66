"""The standby replenish's queue look (workers.service.queue_waits), on the record path: what it
answers from a real redis-server, and how little a broker that does not answer holds it up."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import redis

from workers.service import QUEUE_LOOK_PAUSE_S, queue_waits


def test_the_queue_look_says_whether_a_message_waits(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = "look-test-queue"
    try:
        waits = queue_waits(redis_url, queue)
        assert waits() is False
        client.rpush(f"{queue}\x06\x166", b"message")  # a priority step's list counts too
        assert waits() is True
    finally:
        client.delete(queue, f"{queue}\x06\x166")
        client.close()


class _SilentBroker:
    """A listener that accepts connections and never answers (a broker mid-hiccup), counting them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)  # close() in another thread does not wake accept() on Linux
        self.stopped = threading.Event()
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[_SilentBroker]:
    broker = _SilentBroker()
    try:
        yield broker
    finally:
        broker.close()


def test_a_broker_that_does_not_answer_is_asked_once_per_pause_and_taken_for_yes(silent: _SilentBroker) -> None:
    """A look that times out answers yes (replenish, as before); the next looks within
    QUEUE_LOOK_PAUSE_S answer yes without asking, so a hiccup holds up one record path, not each."""
    now = [1000.0]
    waits = queue_waits(silent.url, "q", timeout_s=0.05, clock=lambda: now[0])
    assert waits() is True
    assert len(silent.accepted) == 1
    now[0] += QUEUE_LOOK_PAUSE_S / 2
    assert waits() is True
    assert len(silent.accepted) == 1, "the look asked a broker that had just failed to answer"
    now[0] += QUEUE_LOOK_PAUSE_S
    assert waits() is True
    assert len(silent.accepted) == 2, "the look never asked again after its pause"
