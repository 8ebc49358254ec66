"""The waiting client's pause between two polls ends at the suite's `finished` event, not at the
next poll: what it reads of the suite's log, on a real redis-server."""

from __future__ import annotations

import redis

from farm import events, keys
from farm.client import Client, ends_suite
from farm.config import Settings

SUITE = "s-20261201-000000-0000wake"


def _append(url: str, event: events.Event) -> str:
    r = redis.Redis.from_url(url)
    try:
        return keys.text(r.xadd(keys.events(SUITE), {"e": events.pack(event)}))
    finally:
        r.close()


def _finished() -> events.Event:
    return events.finished(status="finished", exit_code=0, message="", started_at=1.0, finished_at=2.0,
                           stopped="", workers=())


def _ended() -> events.Event:
    return events.Event(events.Kind.ENDED, 1.5, "a000", 1, "w", "local:w", "done")


def test_only_the_finished_event_or_an_unreadable_one_ends_the_suite() -> None:
    assert ends_suite([events.pack(_ended()), events.pack(_finished())])
    assert not ends_suite([events.pack(_ended())])
    assert ends_suite([b"not an event"])  # another farm's: the caller only polls sooner
    assert not ends_suite([])


def test_a_pause_ends_at_the_finished_event(redis_url: str) -> None:
    client = Client(Settings(broker_url=redis_url))
    try:
        _append(redis_url, _ended())
        done = _append(redis_url, _finished())
        later = _append(redis_url, _ended())
        # The pause stops at the finished event (a pause that read on for its whole interval
        # would be at the entry after it): the end is seen without a poll's wait.
        assert client._pause(SUITE, 2.0, "0-0") == done
        assert client._pause(SUITE, 0.2, done) == later
    finally:
        client.close()


def test_a_pause_reads_through_other_events_until_its_interval_ends(redis_url: str) -> None:
    client = Client(Settings(broker_url=redis_url))
    try:
        _append(redis_url, _ended())
        last = _append(redis_url, _ended())
        assert client._pause(SUITE, 0.2, "0-0") == last
        assert client._pause(SUITE, 0.2, last) == last  # nothing new: the same place after the interval
    finally:
        client.close()
