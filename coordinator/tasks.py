"""The coordinator's Celery tasks: decode a message, hand it to the Planner, log what is rejected."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Celery

from coordinator.planner import Planner
from farm.celery_app import (
    ASSIGNMENT_COMPLETED,
    CANCEL_SUITE,
    COLLECT_SUITE,
    RECORD_BATCH,
    SUITE_COLLECTED,
    SUITE_SUBMITTED,
    pool_queue,
    send_assignment,
    send_message,
)
from farm.errors import ProtocolError, SuiteNotFound
from farm.model import Assignment, Collection, Completion, RecordBatch, SuiteSpec
from farm.protocol import decode

log = logging.getLogger("farm.coordinator")
T = TypeVar("T")


def publisher(app: Celery) -> tuple[Callable[[SuiteSpec], None], Callable[[str, Assignment], None]]:
    """The two ways the coordinator publishes work on pool queues."""

    def publish_collect(spec: SuiteSpec) -> None:
        send_message(app, COLLECT_SUITE, spec, pool_queue(spec.pool))

    def publish_assignment(pool: str, a: Assignment) -> None:
        send_assignment(app, pool, a)

    return publish_collect, publish_assignment


def register(app: Celery, planner: Planner) -> None:
    """Register the coordinator's tasks on `app` under their explicit names."""

    def guarded(kind: type[T], handle: Callable[[T], None]) -> Callable[[bytes], None]:
        def task(payload: bytes) -> None:
            try:
                message = decode(payload, kind)
            except ProtocolError as exc:
                log.error("rejected a %s message: %s", kind.__name__, exc)
                return
            try:
                handle(message)
            except SuiteNotFound as exc:
                log.error("%s message dropped: %s", kind.__name__, exc)
        return task

    def by_id(handle: Callable[[str], None]) -> Callable[[Any], None]:
        def task(suite_id: Any) -> None:
            if not isinstance(suite_id, str) or not 0 < len(suite_id) <= 128:
                log.error("rejected a malformed suite id %r", suite_id)
                return
            try:
                handle(suite_id)
            except SuiteNotFound as exc:
                log.error("message dropped: %s", exc)
        return task

    app.task(name=SUITE_SUBMITTED)(by_id(planner.submitted))
    app.task(name=CANCEL_SUITE)(by_id(planner.cancel))
    app.task(name=SUITE_COLLECTED)(guarded(Collection, planner.collected))
    app.task(name=RECORD_BATCH)(guarded(RecordBatch, planner.records))
    app.task(name=ASSIGNMENT_COMPLETED)(guarded(Completion, planner.completed))
