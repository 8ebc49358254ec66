"""`farm coordinator` and `farm worker` exit with the code that says how they ended: 0 on SIGTERM
(a stop asked for), 2 on Ctrl-C, 3 with one line and no traceback on an unrecoverable error."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.helpers import LEAN, farm
from support.services import HandBuiltFarm, wait_for

from farm import keys

INJECT = Path(__file__).parent / "inject"


@pytest.fixture
def hand_built(tmp_path: Path, redis_server_bin: str) -> Iterator[HandBuiltFarm]:
    services = HandBuiltFarm(tmp_path)
    try:
        services.start_redis()
        yield services
    finally:
        services.stop()


def test_a_service_whose_celery_worker_cannot_start_exits_3_in_one_line(
        hand_built: HandBuiltFarm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(INJECT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("INJECT_CONSUMER_FAILS", "1")
    procs = {"coordinator": hand_built.coordinator(), "worker": hand_built.worker("worker", "--slots", "1")}
    for label, proc in procs.items():
        code = proc.wait(timeout=120)
        output = hand_built.output(label)
        assert code == 3, f"farm {label} exited {code}:\n{output}"
        assert f"farm {label}: error: unrecoverable error: RuntimeError: the consumer cannot start (injected)" \
            in output, output
        assert "Traceback" not in output, f"farm {label} printed a traceback:\n{output}"


def test_a_service_stopped_with_ctrl_c_exits_2(hand_built: HandBuiltFarm, tmp_path: Path) -> None:
    hand_built.coordinator()
    hand_built.worker("worker", "--slots", "1")
    store = hand_built.store()
    try:
        wait_for(lambda: store.hlen(keys.WORKERS) == 1, 120, "the worker did not start")
    finally:
        store.close()
    project = tmp_path / "proj" / "tests"
    project.mkdir(parents=True)
    (project / "test_ok.py").write_text("def test_one():\n    pass\n")
    # A suite run through both: each is consuming, its Celery worker's signal handlers installed.
    ran = farm("submit-suite", str(project.parent), "--broker", hand_built.broker, "--", *LEAN, "tests")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for label in ("worker", "coordinator"):
        proc = hand_built.procs[label]
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the foreground process group
        code = proc.wait(timeout=60)
        output = hand_built.output(label)
        assert code == 2, f"farm {label} exited {code} on Ctrl-C:\n{output}"
        assert "Traceback" not in output, f"farm {label} printed a traceback:\n{output}"
