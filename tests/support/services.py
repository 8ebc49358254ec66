"""A farm built by hand, as an operator runs one: redis-server, `farm coordinator`, `farm worker`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from farm import signing
from farm.cluster import free_port
from support.helpers import FARM


class HandBuiltFarm:
    """Processes started with the installed `farm` command; their output goes to a log file each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.broker = f"redis://127.0.0.1:{self.port}/0"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        #: The farm's signing key, as an operator makes one (docs/operations.md, Message signing).
        self.key_file = signing.write_key_file(root / "signing.key")

    def start_redis(self) -> None:
        data = self.root / "redis"
        data.mkdir(exist_ok=True)
        self._spawn("redis", ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(data),
                              "--save", "", "--appendonly", "no", "--daemonize", "no"])
        client = redis.Redis(port=self.port)
        wait_for(lambda: _pings(client), 20, "redis-server did not start")
        client.close()

    def coordinator(self, *args: str) -> subprocess.Popen[bytes]:
        return self._spawn("coordinator", [FARM, "coordinator", "--broker", self.broker, *args])

    def worker(self, label: str, *args: str) -> subprocess.Popen[bytes]:
        return self._spawn(label, [FARM, "worker", "--broker", self.broker, "--cache-dir",
                                   str(self.root / f"cache-{label}"), *args])

    def output(self, label: str) -> str:
        return (self.root / f"{label}.log").read_text(errors="replace")

    def alive(self, label: str) -> bool:
        return self.procs[label].poll() is None

    def store(self) -> redis.Redis:
        return redis.Redis(port=self.port)

    def stop(self) -> dict[str, int]:
        """SIGTERM (a warm shutdown, as systemd stops a service), then SIGKILL; the exit codes."""
        codes = {}
        for label, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            _signal_group(proc.pid, signal.SIGKILL)  # pool children, runners
            codes[label] = proc.returncode
        self.procs.clear()
        return codes

    def _spawn(self, label: str, argv: list[str]) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
        env["FARM_SIGNING_KEY_FILE"] = str(self.key_file)
        with open(self.root / f"{label}.log", "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, cwd=self.root)
        self.procs[label] = proc
        return proc


def wait_for(condition: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, why
        time.sleep(0.1)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
