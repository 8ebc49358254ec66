"""The coordinator's Celery tasks: decode a message, hand it to the Planner, log what is rejected."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Celery

from coordinator.planner import Planner
from farm.celery_app import (
    ASSIGNMENT_COMPLETED,
    ASSIGNMENT_SPLIT,
    CANCEL_SUITE,
    COLLECT_SUITE,
    COORDINATOR_QUEUE,
    RECORD_BATCH,
    SUITE_COLLECTED,
    SUITE_SUBMITTED,
    pool_queue,
    send_assignment,
    send_message,
)
from farm.errors import ProtocolError, SignatureError, SuiteNotFound
from farm.model import Assignment, Collection, Completion, RecordBatch, Split, SuiteSpec
from farm.protocol import decode
from farm.signing import Keyring
from farm.transport import drop_unsigned

log = logging.getLogger("farm.coordinator")
T = TypeVar("T")


def publisher(app: Celery, keyring: Keyring) -> tuple[Callable[[SuiteSpec], None], Callable[[str, Assignment], None]]:
    """The two ways the coordinator publishes work on pool queues, signed with `keyring`."""

    def publish_collect(spec: SuiteSpec) -> None:
        send_message(app, COLLECT_SUITE, spec, pool_queue(spec.pool), keyring=keyring)

    def publish_assignment(pool: str, a: Assignment) -> None:
        send_assignment(app, pool, a, keyring=keyring)

    return publish_collect, publish_assignment


def register(app: Celery, planner: Planner, keyring: Keyring) -> None:
    """Register the coordinator's tasks on `app` under their explicit names; the workers' messages
    count only signed with `keyring` (the submitter's, a bare suite id, are not signed)."""

    def guarded(name: str, kind: type[T], handle: Callable[[T], None]) -> Callable[[bytes], None]:
        def task(signed: bytes) -> None:
            try:
                payload = keyring.open(name, signed)
            except SignatureError as exc:
                drop_unsigned(app, COORDINATOR_QUEUE, signed, str(exc))
                return
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

    # Not shared: a Celery shared task is added to every app finalized later in the process (with
    # this planner), and an app of another test or of Flower would run it against this farm's state.
    app.task(name=SUITE_SUBMITTED, shared=False)(by_id(planner.submitted))
    app.task(name=CANCEL_SUITE, shared=False)(by_id(planner.cancel))
    app.task(name=SUITE_COLLECTED, shared=False)(guarded(SUITE_COLLECTED, Collection, planner.collected))
    app.task(name=RECORD_BATCH, shared=False)(guarded(RECORD_BATCH, RecordBatch, planner.records))
    app.task(name=ASSIGNMENT_COMPLETED, shared=False)(guarded(ASSIGNMENT_COMPLETED, Completion, planner.completed))
    app.task(name=ASSIGNMENT_SPLIT, shared=False)(guarded(ASSIGNMENT_SPLIT, Split, planner.split))
