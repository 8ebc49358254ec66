"""farm's Celery consumer: a message Celery cannot use is dropped in one log line, dead-lettered.

Celery's consumer already survives a message whose body it cannot decode, whose task it does
not know, or that is not a task at all, but logs each with a dump and a traceback. farm's
services log one line and keep the message in farm:dead-letters (farm.transport), as for a
message kombu could not decode; the message is then acknowledged or rejected as Celery does."""

from __future__ import annotations

import json
import logging
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

log = logging.getLogger("farm.consumer")


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer with one-line handlers for unusable messages (`worker_consumer`)."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        _drop(message, exc)
        message.ack()  # as Celery does: never delivered again

    def on_unknown_message(self, body: Any, message: Any) -> None:
        _drop(message, "not a task message")
        message.reject_log_error(log, self.connection_errors)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        _drop(message, f"unknown task {message.headers.get('task')!r}" if isinstance(message.headers, dict) else exc)
        message.reject_log_error(log, self.connection_errors)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        _drop(message, exc)
        message.reject_log_error(log, self.connection_errors)


def _drop(message: Any, why: Exception | str) -> None:
    error = why if isinstance(why, str) else f"{type(why).__name__}: {why}"
    queue = str((message.delivery_info or {}).get("routing_key") or "?")
    keep = getattr(message.channel, "keep_dead_letter", None)
    try:
        raw = json.dumps(message.serializable())
    except Exception:  # not a virtual-transport message, or not serializable again: its body, then
        raw = repr(message.body)
    if keep is None:
        log.error("dropped an unusable message on %s (%s)", queue, error[:300])
        return
    keep(queue, raw, error)
