"""Connections to the state store (Redis) for the long-running services.

A service's connection rides out a Redis restart: every command is retried on connection and
timeout errors with a capped exponential backoff for about RETRY_WINDOW_S seconds, and a
transaction whose connection dropped while it watched keys fails with WatchError, which every
WATCH/MULTI loop in farm already retries. The submitter (farm.client) does not use this: a user
pointing at the wrong broker is told at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

#: Roughly how long a command keeps retrying while the state store is unreachable.
RETRY_WINDOW_S = 30.0
_BACKOFF_CAP_S = 1.0

R = TypeVar("R")
T = TypeVar("T")
#: What a transaction writes (given the MULTI pipeline), or None: nothing.
Write = Callable[[Any], None] | None


def connect(url: str, *, timeout: float = 10.0) -> redis.Redis:
    """A client that retries through a Redis restart (see the module docstring)."""
    retries = int(RETRY_WINDOW_S / _BACKOFF_CAP_S) + 5  # the first few waits are shorter than the cap
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=timeout,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=_BACKOFF_CAP_S, base=0.05), retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


def transact(client: Any, watch: Sequence[str], read: Callable[[Any], R],
             decide: Callable[[R], tuple[T, Write]], *, tries: int = 0) -> T:
    """farm's one read-decide-write primitive: WATCH `watch`, `read` through the pipeline, let
    `decide` (pure) say what to return and what to write; the write happens in MULTI, and all of
    it again if a watched key changed (at most `tries` times if given: then `redis.WatchError`
    is raised)."""
    with client.pipeline() as pipe:
        for n in itertools.count(1):
            try:
                pipe.watch(*watch)
                result, write = decide(read(pipe))
                if write is None:
                    pipe.unwatch()
                    return result
                pipe.multi()
                write(pipe)
                pipe.execute()
                return result
            except redis.WatchError:
                if n == tries:
                    raise
    raise AssertionError("unreachable")
