"""The Celery app factory: queues, routes, and every Celery setting farm relies on, with why."""

from __future__ import annotations

from celery import Celery
from kombu.entity import Exchange, Queue

from farm.config import Settings

#: The coordinator's queue: suite lifecycle, record batches, completions.
COORDINATOR_QUEUE = "farm.coordinator"

#: Explicit task names (never derived from module paths, so moving code strands no message).
SUITE_SUBMITTED = "farm.suite_submitted"
SUITE_COLLECTED = "farm.suite_collected"
RECORD_BATCH = "farm.record_batch"
ASSIGNMENT_COMPLETED = "farm.assignment_completed"
CANCEL_SUITE = "farm.cancel_suite"
COLLECT_SUITE = "farm.collect_suite"
RUN_ASSIGNMENT = "farm.run_assignment"

_COORDINATOR_TASKS = (SUITE_SUBMITTED, SUITE_COLLECTED, RECORD_BATCH, ASSIGNMENT_COMPLETED, CANCEL_SUITE)

_EXCHANGE = Exchange("farm", type="direct")


def pool_queue(pool: str) -> Queue:
    """The queue that a pool's workers consume (collection and assignments)."""
    name = f"farm.pool.{pool}"
    return Queue(name, _EXCHANGE, routing_key=name)


def coordinator_queue() -> Queue:
    return Queue(COORDINATOR_QUEUE, _EXCHANGE, routing_key=COORDINATOR_QUEUE)


def make_app(settings: Settings, *, pools: tuple[str, ...] = ()) -> Celery:
    """A Celery app for any farm process; `pools` are the pool queues this process consumes."""
    app = Celery("farm", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        # Only msgpack and JSON on the wire, never pickle: a broker message must not be able
        # to run code in a worker. Payloads are msgpack bytes validated by farm.protocol.
        task_serializer="msgpack",
        accept_content=["msgpack", "json"],
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
        # Redis redelivers an unacknowledged message after the visibility timeout; it must be
        # longer than any assignment, or long assignments run twice.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        # Keep retrying the broker, at start-up too: workers outlive a broker restart.
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # On a lost broker connection, stop long tasks rather than finish them unacknowledged
        # (their messages are redelivered; farm's merge counts each test once).
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # Events for Flower: workers, tasks, and task-sent.
        worker_send_task_events=True,
        task_send_sent_event=True,
        # On a cold shutdown (SIGQUIT, or SIGINT twice) running tasks get this long before the
        # worker stops; a warm shutdown (SIGTERM) waits for them. Tasks stopped are redelivered
        # (acks_late) and farm's leases and attempt markers keep them from running twice.
        worker_soft_shutdown_timeout=10.0,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app
