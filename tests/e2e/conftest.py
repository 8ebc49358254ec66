"""A real farm started with `farm up`, shared by the end-to-end tests of a module."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from support.helpers import FARM

from farm.cluster import free_port


@dataclass(frozen=True)
class RunningFarm:
    broker: str
    flower_port: int
    proc: subprocess.Popen[str]
    startup: str = ""  # what it printed until ready (stdout and stderr)


def start_farm_up(*args: str, timeout: float = 90, env: dict[str, str] | None = None) -> RunningFarm:
    """Start `farm up ARGS` (with `env` on top of ours, minus FARM_*) and wait for the broker line
    it prints when ready."""
    flower_port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FARM_")}, **(env or {})}
    proc = subprocess.Popen([FARM, "up", "--flower", "--flower-port", str(flower_port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.5):
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        match = re.match(r"broker: (redis://\S+)", line)
        if match:
            return RunningFarm(match.group(1), flower_port, proc, "".join(seen))
    stop_farm_up(proc)
    raise AssertionError(f"farm up did not become ready: {''.join(seen)}")


def stop_farm_up(proc: subprocess.Popen[str]) -> int:
    """Ctrl-C, as a user stops it; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout:
        proc.stdout.close()
    return proc.returncode


@pytest.fixture(scope="module")
def running_farm() -> Iterator[RunningFarm]:
    farm = start_farm_up("--workers", "1", "--slots", "2")
    try:
        yield farm
    finally:
        code = stop_farm_up(farm.proc)
        assert code == 0, f"farm up exited with {code} on Ctrl-C"


@pytest.fixture
def farm_up() -> Iterator[Callable[..., RunningFarm]]:
    """Start `farm up ARGS` (any number of times in a test); each is stopped with Ctrl-C after."""
    started: list[RunningFarm] = []

    def start(*args: str, timeout: float = 90, env: dict[str, str] | None = None) -> RunningFarm:
        running = start_farm_up(*args, timeout=timeout, env=env)
        started.append(running)
        return running

    yield start
    for running in started:
        assert stop_farm_up(running.proc) == 0, "farm up did not exit 0 on Ctrl-C"
