"""A Celery task message as kombu's Redis transport keeps it on a queue, built without Celery.

The submitting client publishes one message, `farm.suite_submitted` with the suite id. Through
Celery that costs its import and its producer's set-up (0.06-0.15 s here, before the suite can
start); this module writes the same message: Celery's task protocol 2 (headers, and a body of
`[args, kwargs, embed]` in msgpack, farm's task serializer), in kombu's envelope for Redis (a
JSON object, the body in base64), pushed with LPUSH on the queue's list, as kombu's Redis
channel does for a message published to the default exchange with the queue's name as routing
key. Its consumer cannot tell it from one Celery sent (tests/integration/test_task_message.py
has a Celery worker run it). Flower sees it from the coordinator's task events (received,
started, succeeded); there is no task-sent event, which only a Celery producer emits.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from typing import Any

import msgpack

#: What Celery puts in a protocol 2 body after the arguments: no callbacks, no canvas.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def encode(task: str, args: list[Any], queue: str) -> bytes:
    """The message that runs `task(*args)` from `queue`, as the bytes kombu stores on its list."""
    task_id = str(uuid.uuid4())
    body = msgpack.packb([args, {}, _EMBED], use_bin_type=True)
    envelope = {
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": "binary",
        "content-type": "application/x-msgpack",
        "headers": {
            "lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None, "expires": None,
            "group": None, "group_index": None, "retries": 0, "timelimit": [None, None],
            "root_id": task_id, "parent_id": None, "argsrepr": repr(args), "kwargsrepr": "{}",
            "origin": f"gen{os.getpid()}@{socket.gethostname()}", "ignore_result": None,
            "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
        },
        "properties": {
            "correlation_id": task_id, "reply_to": str(uuid.uuid4()), "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
            "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope).encode()


def push(pipe: Any, task: str, args: list[Any], queue: str) -> None:
    """Queue the message on `pipe` (a Redis client or pipeline): kombu's list for a priority-0
    message is the queue's own name."""
    pipe.lpush(queue, encode(task, args, queue))
