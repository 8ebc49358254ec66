"""A coordinator's presence outlives a few missed heartbeats, and its heartbeat outlives any error."""

from __future__ import annotations

import logging
import threading

import pytest

from coordinator.peers import HEARTBEAT_S, presence_ttl
from coordinator.service import _beat


def test_the_presence_lives_a_lease_and_at_least_three_heartbeats() -> None:
    assert presence_ttl(0.5, 1.0) == 3.0
    assert presence_ttl(10.0, 1.0) == 10.0
    assert presence_ttl(0.1) == 3 * HEARTBEAT_S


class _Flaky:
    """A presence whose first beats raise (not only Redis errors), then the third stops the loop."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.beats = 0

    def beat(self) -> None:
        self.beats += 1
        if self.beats < 3:
            raise ValueError("a broken reply")
        self.stop.set()


def test_the_heartbeat_survives_any_error_and_logs_it_once(caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    presence = _Flaky(stop)
    with caplog.at_level(logging.WARNING, logger="farm.coordinator"):
        _beat(presence, stop, 0.01)  # type: ignore[arg-type]
    assert presence.beats == 3
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["heartbeat failed (trying again every 0.01s)"]
