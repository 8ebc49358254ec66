"""The worker's main process reads the fingerprint probe it started ahead before the first pool
fork only: Celery signals every fork (replacements too), and a failing or hanging interpreter must
not cost the main process a probe at each one."""

from __future__ import annotations

from typing import Any

import pytest

from farm.config import Settings
from workers import service


class _Backend:
    def __init__(self) -> None:
        self.started = 0
        self.asked = 0

    def start_environment(self) -> None:
        self.started += 1

    def environment(self) -> str:
        self.asked += 1
        return ""  # the probe failed: nothing cached


def test_the_main_process_reads_the_probe_before_the_first_fork_only(monkeypatch: pytest.MonkeyPatch) -> None:
    handlers: list[Any] = []
    monkeypatch.setattr(service.signals.worker_before_create_process, "connect",
                        lambda handler, **_: handlers.append(handler))
    backend = _Backend()
    service._prefetch_environment(backend, Settings())  # type: ignore[arg-type]
    assert backend.started == 1 and len(handlers) == 1
    for _ in range(5):  # the first fork, then replacements of dead pool processes
        handlers[0](sender=None)
    assert backend.asked == 1


def test_no_prefetch_without_the_collection_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    handlers: list[Any] = []
    monkeypatch.setattr(service.signals.worker_before_create_process, "connect",
                        lambda handler, **_: handlers.append(handler))
    backend = _Backend()
    service._prefetch_environment(backend, Settings(collection_cache=False))  # type: ignore[arg-type]
    assert backend.started == 0 and not handlers


@pytest.mark.parametrize(("argv", "env", "started"), [
    (["--broker", "redis://h/0", "--python", "/opt/py"], {}, ["/opt/py"]),
    (["--broker", "redis://h/0"], {}, ["SELF"]),
    (["--backend", "ssh", "--hosts", "h.toml"], {}, []),
    (["--python", "/opt/py"], {"FARM_COLLECTION_CACHE": "0"}, []),
])
def test_the_fingerprint_starts_before_the_service_imports_celery(
        monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str], started: list[str]) -> None:
    import sys

    from workers import __main__ as entry
    from workers import fingerprint

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    calls: list[str] = []
    monkeypatch.setattr(fingerprint, "start_fingerprint", lambda python: calls.append(python))
    entry.start_fingerprint_early(argv)
    assert calls == [sys.executable if s == "SELF" else s for s in started]


def test_the_fingerprint_starts_before_the_worker_imports_redis_py() -> None:
    # `python -m workers` as it starts: what is imported when the fingerprint script is started.
    # redis-py's import (its asyncio client with it) took 0.3-0.8 s on 2 cores before it.
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = ("import sys\n"
              "import workers.__main__ as entry, workers.fingerprint as fingerprint\n"
              "fingerprint.start_fingerprint = lambda python: print(sorted(\n"
              "    m for m in ('redis', 'celery', 'kombu') if m in sys.modules))\n"
              "entry.start_fingerprint_early(['--python', sys.executable])\n")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    env.pop("FARM_COLLECTION_CACHE", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
