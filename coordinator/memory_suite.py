"""One suite as the stub store (`coordinator.memory_store`) keeps it, and the lock that makes its methods atomic."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from farm.attempts import Attempt
from farm.model import TestRecord, TestRun

T = TypeVar("T")


@dataclass
class Suite:
    fields: dict[str, Any]
    outcomes: dict[str, str] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    records: dict[str, TestRecord] = field(default_factory=dict)
    runs: dict[str, TestRun] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    attempts: dict[str, Attempt] = field(default_factory=dict)
    current: dict[str, str] = field(default_factory=dict)
    reruns: dict[str, int] = field(default_factory=dict)
    crash_retries: dict[str, int] = field(default_factory=dict)
    leases: dict[str, str] = field(default_factory=dict)
    splits: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)  # attempt key -> (seq, tail)
    batches: set[str] = field(default_factory=set)  # numbered batches merged (keys.batch_member)
    report: str | None = None
    log: list[bytes] = field(default_factory=list)  # the event log (packed, as the stream keeps them)
    logged: int = 0  # events ever appended (the log keeps the newest)


def atomic(cls: type[T]) -> type[T]:
    """Make every public method of `cls` hold the instance's lock (an RLock) while it runs."""
    for name, method in list(vars(cls).items()):
        if callable(method) and not name.startswith("_"):
            setattr(cls, name, _locked(method))
    return cls


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    return call
