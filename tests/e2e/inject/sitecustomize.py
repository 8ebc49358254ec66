"""Loaded by a service started with this directory on PYTHONPATH (tests/e2e/test_service_exit_codes.py):
with INJECT_CONSUMER_FAILS set, the Celery worker's consumer raises as it starts, which Celery
takes for an unrecoverable error, as it would a bootstep that cannot start."""

import os

if os.environ.get("INJECT_CONSUMER_FAILS"):
    import celery.worker.consumer.consumer as consumer

    def start(self: object) -> None:
        raise RuntimeError("the consumer cannot start (injected)")

    consumer.Consumer.start = start  # type: ignore[assignment,method-assign]
