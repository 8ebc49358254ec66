"""Asking a pool child's running assignment to stop early and hand its unstarted tests back.

Two things ask: the worker's main process when it shuts down (SIGUSR2 to each pool child, from
the `worker_shutting_down` signal), and Celery itself when the broker connection is lost
(`worker_cancel_long_running_tasks_on_connection_loss` sends SIGTERM to the child running the
task). Either way the child's running assignment stops its runner, keeps the records of the
tests that finished, and completes `handback`; the coordinator queues the rest again at once,
instead of waiting for the assignment to end or for its lease to lapse.

The SIGTERM handler is ours only while an assignment runs: billiard installs its own (exit the
child) after every initializer, so it is swapped in and out around each task. A second SIGTERM
during the same task goes to billiard's handler, and ends the child as before. Only a second
SIGTERM counts as one: a warm shutdown of the worker's process group (`farm up`, systemd) sends the
child SIGTERM and, from the main process, SIGUSR2 at once, and Python runs pending handlers in
signal-number order (SIGUSR2 first), so "already asked" must not read as "asked twice".
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import psutil

_stop = threading.Event()
_busy = False
_termed = False  # a SIGTERM came during the running task
_previous_term: Any = signal.SIG_DFL


def install() -> None:
    """In each pool child, at start: SIGUSR2 asks the running assignment to stop."""
    signal.signal(signal.SIGUSR2, _on_usr2)


def _on_term(signum: int, frame: FrameType | None) -> None:
    global _termed
    if _busy and not _termed:
        _termed = True
        _stop.set()
        return
    signal.signal(signal.SIGTERM, _previous_term)  # a second one: the pool's own handling
    if callable(_previous_term):
        _previous_term(signum, frame)
    elif _previous_term != signal.SIG_IGN:
        os.kill(os.getpid(), signal.SIGTERM)


def _on_usr2(signum: int, frame: FrameType | None) -> None:
    if _busy:
        _stop.set()


@contextlib.contextmanager
def running() -> Iterator[None]:
    """Around one task: a stop request made before it started does not apply to it."""
    global _busy, _previous_term, _termed
    _stop.clear()
    _termed = False
    main = threading.current_thread() is threading.main_thread()  # signals only reach the main thread
    if main:
        _previous_term = signal.signal(signal.SIGTERM, _on_term)
    _busy = True
    try:
        yield
    finally:
        _busy = False
        if main:
            signal.signal(signal.SIGTERM, _previous_term)


def requested() -> bool:
    """Whether the running assignment was asked to stop and hand its work back."""
    return _stop.is_set()


def ask_pool_children() -> int:
    """In the worker's main process: ask every pool child to hand its work back; how many."""
    asked = 0
    for child in psutil.Process().children():
        try:
            child.send_signal(signal.SIGUSR2)
            asked += 1
        except psutil.Error:
            continue
    return asked
