"""The suite_submitted message that the client builds without Celery (farm.task_message) is one a
Celery worker of farm's app runs, like a message Celery sent; and a submission imports no Celery.
On a real redis-server."""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import redis
from celery.contrib.testing.worker import start_worker

from farm import keys, task_message
from farm.celery_app import COORDINATOR_QUEUE, SUITE_SUBMITTED, make_app
from farm.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_a_celery_worker_runs_the_message_built_without_celery(redis_url: str) -> None:
    app = make_app(replace(Settings.from_env(), broker_url=redis_url), coordinator=True)
    got: list[object] = []
    ran = threading.Event()

    @app.task(name=SUITE_SUBMITTED, shared=False)  # not given to the apps later tests make
    def submitted(suite_id: object) -> None:
        got.append(suite_id)
        ran.set()

    r = redis.Redis.from_url(redis_url)
    try:
        task_message.push(r, SUITE_SUBMITTED, ["s-20261202-000000-0000wire"], COORDINATOR_QUEUE)
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            assert ran.wait(20), "the worker never ran the message"
        assert got == ["s-20261202-000000-0000wire"]
        assert r.llen(COORDINATOR_QUEUE) == 0
    finally:
        r.close()


def test_a_submission_to_a_running_farm_imports_no_celery(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    script = (
        "import sys\n"
        "from farm.bundle import make_bundle\n"
        "from farm.client import Client\n"
        "from farm.config import Settings\n"
        "from farm import cli\n"
        f"client = Client(Settings(broker_url={redis_url!r}))\n"
        f"client.submit(make_bundle(__import__('pathlib').Path({str(tmp_path)!r}), 10**8, 10**9), project='p',"
        " pool='default', dist='load', pytest_args=())\n"
        "client.close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('celery', 'kombu', 'psutil')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    r = redis.Redis.from_url(redis_url)
    try:
        assert r.llen(COORDINATOR_QUEUE) == 1  # the suite's message is queued all the same
    finally:
        r.close()


def test_with_a_state_store_of_its_own_the_message_goes_to_the_broker(redis_url: str, tmp_path: Path) -> None:
    """FARM_STATE_URL names another Redis than the broker: the suite is stored there, and the
    coordinator's message goes to the broker, where a Celery worker of farm's app runs it."""
    from farm.bundle import make_bundle
    from farm.client import Client

    broker_url, state_url = f"{redis_url.rsplit('/', 1)[0]}/1", f"{redis_url.rsplit('/', 1)[0]}/2"
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    client = Client(replace(Settings.from_env(), broker_url=broker_url, state_url=state_url))
    broker, state = redis.Redis.from_url(broker_url), redis.Redis.from_url(state_url)
    try:
        suite_id = client.submit(make_bundle(tmp_path, 10**8, 10**9), project="p", pool="default", dist="load",
                                 pytest_args=())
        assert state.exists(keys.suite(suite_id))
        assert state.llen(COORDINATOR_QUEUE) == 0
        assert broker.llen(COORDINATOR_QUEUE) == 1

        app = make_app(replace(Settings.from_env(), broker_url=broker_url), coordinator=True)
        got: list[object] = []
        ran = threading.Event()

        @app.task(name=SUITE_SUBMITTED, shared=False)
        def submitted(suite_id: object) -> None:
            got.append(suite_id)
            ran.set()

        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            assert ran.wait(20), "the worker never ran the message"
        assert got == [suite_id]
    finally:
        client.close()
        broker.close()
        state.close()
