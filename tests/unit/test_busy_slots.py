"""A worker's collection splits over the slots not running another task (workers/busy_slots.py)."""

from __future__ import annotations

import multiprocessing
import os
from types import SimpleNamespace
from typing import Any

from farm.config import Settings
from workers.tasks import WorkerContext


def _hold(ctx: WorkerContext, ready: Any, release: Any, leave: bool) -> None:
    with ctx.busy.held():
        ready.set()
        release.wait(30)
        if leave:
            os._exit(0)  # killed mid-task: its entry is never given back


def test_a_worker_collects_in_as_many_runners_as_it_has_slots_not_running_a_task() -> None:
    fork = multiprocessing.get_context("fork")
    ctx = WorkerContext(app=None, settings=Settings(), backend=SimpleNamespace(parallel_collection=True),
                        keyring=None, name="w", slots=3, cores=8)  # type: ignore[arg-type]
    assert ctx.collectors() == 3
    children = []
    for leave in (False, True):
        ready, release = fork.Event(), fork.Event()
        child = fork.Process(target=_hold, args=(ctx, ready, release, leave))
        child.start()
        assert ready.wait(30)
        children.append((child, release))
    with ctx.busy.held():  # the collecting process itself: not another task
        assert ctx.collectors() == 1
    for child, release in children:
        release.set()
        child.join(30)
    assert ctx.collectors() == 3  # one gave its slot back, the other died holding it
    ctx.settings = Settings(parallel_collection=False)
    assert ctx.collectors() == 1


def test_no_more_runners_collect_than_the_worker_has_processors() -> None:
    ctx = WorkerContext(app=None, settings=Settings(), backend=SimpleNamespace(parallel_collection=True),
                        keyring=None, name="w", slots=16, cores=2)  # type: ignore[arg-type]
    assert ctx.collectors() == 2
