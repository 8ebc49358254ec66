"""The Celery app factory: queues, routes, and every Celery setting farm relies on, with why."""

from __future__ import annotations

from celery import Celery
from kombu.entity import Exchange, Queue

from farm.config import Settings
from farm.model import Assignment
from farm.protocol import encode
from farm.signing import Keyring
from farm.task_labels import label
from farm.task_names import (
    ASSIGNMENT_COMPLETED,
    ASSIGNMENT_SPLIT,
    CANCEL_SUITE,
    COLLECT_SUITE,
    COORDINATOR_QUEUE,
    RECORD_BATCH,
    RUN_ASSIGNMENT,
    SUITE_COLLECTED,
    SUITE_SUBMITTED,
)

# The task names are defined in farm.task_names (no Celery there: the submitting client needs
# them too) and exported from here as well.
__all__ = [
    "ASSIGNMENT_COMPLETED", "ASSIGNMENT_SPLIT", "CANCEL_SUITE", "COLLECT_SUITE", "COORDINATOR_QUEUE", "QUIET_TASKS",
    "RECORD_BATCH", "RUN_ASSIGNMENT", "SUITE_COLLECTED", "SUITE_SUBMITTED", "coordinator_queue", "make_app",
    "pool_queue", "send_assignment", "send_message",
]

_COORDINATOR_TASKS = (SUITE_SUBMITTED, SUITE_COLLECTED, RECORD_BATCH, ASSIGNMENT_COMPLETED, ASSIGNMENT_SPLIT,
                      CANCEL_SUITE)

_EXCHANGE = Exchange("farm", type="direct")


def pool_queue(pool: str) -> Queue:
    """The queue that a pool's workers consume (collection and assignments)."""
    name = f"farm.pool.{pool}"
    return Queue(name, _EXCHANGE, routing_key=name)


#: Bookkeeping tasks: a worker sends several record batches and one completion per assignment.
#: They emit no task events, so Flower's task list shows the suites, collections and assignments
#: instead of being buried under them (126 batches for 28 assignments in a real suite).
QUIET_TASKS = (RECORD_BATCH, ASSIGNMENT_COMPLETED, ASSIGNMENT_SPLIT)


def send_message(app: Celery, task: str, message: object, queue: Queue | None = None, *, keyring: Keyring) -> None:
    """Publish a farm message, signed (`farm.signing`), as `task`'s one argument, labelled for Flower
    (`farm.task_labels`)."""
    options = {"queue": queue.name, "routing_key": queue.routing_key} if queue is not None else {}
    app.send_task(task, args=[keyring.seal(task, encode(message))], argsrepr=label(message), kwargsrepr="{}",
                  **options)


def send_assignment(app: Celery, pool: str, a: Assignment, *, keyring: Keyring) -> None:
    """Publish an assignment attempt on its pool's queue."""
    send_message(app, RUN_ASSIGNMENT, a, pool_queue(pool), keyring=keyring)


def coordinator_queue() -> Queue:
    return Queue(COORDINATOR_QUEUE, _EXCHANGE, routing_key=COORDINATOR_QUEUE)


#: How often a consumer looks for delivered messages that were never acknowledged.
_RESTORE_EVERY_S = 5


def _transport_options(settings: Settings, coordinator: bool) -> dict[str, object]:
    """Redis transport options: timeouts on every broker socket, and the coordinator's deliveries
    tracked apart from the pools'.

    A broker cut off without a reset (a link down, packets dropped) would otherwise leave a
    publish waiting forever for its reply, and a consumer's BRPOP too: `socket_timeout` ends a
    command that gets no answer, `socket_connect_timeout` a reconnection that gets none,
    `health_check_interval` makes kombu drop a BRPOP connection whose reply is overdue (then the
    consumer reconnects, and worker_cancel_long_running_tasks_on_connection_loss asks running
    assignments to hand back), and TCP keepalive notices a peer gone while nothing is sent.

    kombu keeps every delivered, unacknowledged message in one sorted set and puts back on its
    queue any message older than the visibility timeout. Pool messages are assignments, which may
    run for hours: they get a long timeout. The coordinator's messages take milliseconds to
    handle, so its own set, under its own keys, gets a short one: when a coordinator is killed
    with messages it had fetched and not acknowledged, the next coordinator gets them back within
    about a minute, not after hours. Its handlers are idempotent for outcomes and counts, so a
    message delivered twice changes no result, with one exception: a record batch delivered again
    counts its records in the attempt's `received` again (docs/how-it-works.md, "Not done yet").
    """
    sockets: dict[str, object] = {
        "socket_timeout": settings.broker_socket_timeout_s,
        "socket_connect_timeout": settings.broker_socket_timeout_s,
        "socket_keepalive": True,
        "health_check_interval": settings.broker_health_check_s,
    }
    if not coordinator:
        return {"visibility_timeout": settings.visibility_timeout_s, **sockets}
    return {
        **sockets,
        "visibility_timeout": settings.coordinator_visibility_s,
        "unacked_key": "farm.unacked.coordinator",
        "unacked_index_key": "farm.unacked.coordinator.index",
        "unacked_mutex_key": "farm.unacked.coordinator.mutex",
        "unacked_restore_interval": _RESTORE_EVERY_S,
        "unacked_restore_throttle": 1,
    }


def make_app(settings: Settings, *, pools: tuple[str, ...] = (), coordinator: bool = False) -> Celery:
    """A Celery app for any farm process; `pools` are the pool queues this process consumes.

    `coordinator` is set only in the coordinator, the one consumer of the coordinator's queue."""
    app = Celery("farm", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        # Only msgpack and JSON on the wire, never pickle: a broker message must not be able
        # to run code in a worker. Payloads are msgpack bytes validated by farm.protocol.
        task_serializer="msgpack",
        accept_content=["msgpack", "json"],
        # kombu's Redis transport, except that a message it cannot decode (garbage pushed on a
        # queue) is dropped and kept in farm:dead-letters instead of stopping the consumer.
        broker_transport="farm.transport:Transport",
        # Celery's consumer, except that a message it cannot use (an undecodable body, an
        # unknown task) is one log line and a dead letter, not a dump with a traceback.
        worker_consumer="farm.consumer:Consumer",
        event_serializer="json",
        # No Celery result backend: suite state lives in farm's own keys in Redis.
        result_backend=None,
        task_ignore_result=True,
        task_queues=[coordinator_queue(), *(pool_queue(p) for p in pools)],
        task_default_queue=COORDINATOR_QUEUE,
        task_default_exchange="farm",
        task_default_routing_key=COORDINATOR_QUEUE,
        task_routes={name: {"queue": COORDINATOR_QUEUE, "routing_key": COORDINATOR_QUEUE}
                     for name in _COORDINATOR_TASKS},
        # Acknowledge after the task ran, so an assignment whose worker dies is delivered again
        # instead of being lost (Knapsack-style "fetched but never run" batches).
        task_acks_late=True,
        # When a pool child is killed mid-task the message goes back to the queue instead of
        # being acknowledged as done. The redelivery never runs the tests twice: the attempt's
        # lease is still held, so the worker drops it; when the lease lapses the coordinator
        # runs the unfinished tests as a new attempt, at most FARM max_attempts (3) times.
        task_reject_on_worker_lost=True,
        # One message in flight per slot: a busy slot must not hoard assignments that an idle
        # slot elsewhere could run now.
        worker_prefetch_multiplier=1,
        # Redis redelivers an unacknowledged message after the visibility timeout; for pools it is
        # longer than any assignment, or long assignments would be delivered again while they run
        # (the copy would be dropped by the lease, but it is noise). See _transport_options.
        broker_transport_options=_transport_options(settings, coordinator),
        # A message published while the broker restarts is retried for about a minute instead of
        # failing the task that sends it (a worker's records, the coordinator's assignments).
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 60, "interval_start": 0, "interval_step": 0.25,
                                   "interval_max": 1.0},
        # Keep retrying the broker, at start-up too: workers outlive a broker restart.
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # On a lost broker connection, stop long tasks rather than finish them unacknowledged
        # (their messages are redelivered; farm's merge counts each test once).
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # Events for Flower: workers, tasks, and task-sent, but none for the bookkeeping tasks
        # (QUIET_TASKS): the coordinator runs them without events (task_annotations below), and
        # a worker, which publishes little else (its collection results, which the coordinator's
        # events show), sends no task-sent events.
        worker_send_task_events=True,
        task_send_sent_event=not pools,
        task_annotations={name: {"send_events": False} for name in QUIET_TASKS},
        # On a cold shutdown (SIGQUIT, or SIGINT twice) running tasks get this long before the
        # worker stops; a warm shutdown (SIGTERM) waits for them. Tasks stopped are redelivered
        # (acks_late) and farm's leases and attempt markers keep them from running twice.
        worker_soft_shutdown_timeout=10.0,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app
