"""`farm coordinator` and `farm worker` started before their broker: one line each, no traceback,
and they serve suites once it is up (as systemd starts them, in any order)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.helpers import LEAN, farm
from support.services import HandBuiltFarm, wait_for

from farm import keys


@pytest.fixture
def hand_built(tmp_path: Path, redis_server_bin: str) -> Iterator[HandBuiltFarm]:
    services = HandBuiltFarm(tmp_path)
    try:
        yield services
    finally:
        services.stop()


def _project(root: Path) -> Path:
    (root / "proj" / "tests").mkdir(parents=True)
    (root / "proj" / "tests" / "test_ok.py").write_text("def test_one():\n    pass\n\n\ndef test_two():\n    pass\n")
    return root / "proj"


def test_services_wait_for_their_broker_in_one_line_then_serve_a_suite(hand_built: HandBuiltFarm,
                                                                      tmp_path: Path) -> None:
    hand_built.coordinator()
    hand_built.worker("worker", "--slots", "1")
    waiting = {label: re.escape(f"farm {label}: waiting for the broker at {hand_built.broker} "
                                "(Connection refused); retrying")
               for label in ("coordinator", "worker")}
    for label, line in waiting.items():
        wait_for(lambda label=label, line=line: re.search(line, hand_built.output(label)) is not None, 60,
                 f"farm {label} did not say it waits for its broker: {hand_built.output(label)!r}")
    assert hand_built.alive("coordinator") and hand_built.alive("worker"), "a service gave up waiting"

    hand_built.start_redis()
    store = hand_built.store()
    wait_for(lambda: store.hlen(keys.WORKERS) == 1, 60, "the worker did not start once the broker was up")
    store.close()
    result = farm("submit-suite", str(_project(tmp_path)), "--broker", hand_built.broker, "--", *LEAN, "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout

    codes = hand_built.stop()
    for label, line in waiting.items():
        output = hand_built.output(label)
        assert "Traceback" not in output, f"farm {label} printed a traceback:\n{output}"
        assert len(re.findall(line, output)) == 1, f"farm {label} said it waits more than once:\n{output}"
        assert f"farm {label}: the broker at {hand_built.broker} answers" in output
        assert codes[label] == 0, f"farm {label} exited {codes[label]} on SIGTERM:\n{output}"
