"""The SSH backend: runners on static hosts (bare metal, long-lived VMs), reached with paramiko.

Per run: a slot of a host is taken (a file lock shared by the worker's pool processes), an SSH
connection is opened with key authentication and the host key checked against known_hosts
(RejectPolicy: an unknown or changed key is refused, never learned), the bundle, the runner
plugin and workers/remote_runner.py are uploaded over SFTP into a fresh directory, and the
remote runner is started over an SSH channel. Records stream back on the channel's stdout as
tests finish; stop requests go down its stdin. close() removes the directory and frees the slot.
"""

from __future__ import annotations

import fcntl
import json
import select
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import paramiko

from farm import unpack
from farm.errors import InfrastructureError
from farm.suite_env import SuiteEnv
from workers import remote_env
from workers.backends.base import RunRequest, Usage, WithoutLifecycle, runner_env, tests_file_text
from workers.backends.local import PLUGIN_MODULE, plugin_files, runner_argv
from workers.backends.ssh_hosts import HostsFile, SSHHost
from workers.suite_envs import PreparedEnv

REMOTE_RUNNER = Path(__file__).resolve().parent.parent / "remote_runner.py"
#: What the remote runner unpacks bundles with (stdlib only), uploaded beside it.
UNPACK_SOURCE = Path(unpack.__file__)
CONNECT_TIMEOUT_S = 15.0
#: How long stop() waits for the remote runner to report its end beyond the grace it was given.
STOP_SLACK_S = 10.0


def connect(host: SSHHost, known_hosts: Path, sock: Any = None) -> paramiko.SSHClient:
    """An authenticated SSH client for `host`, its key checked; InfrastructureError otherwise.
    `sock`: a connected socket to use (a VM's, already probed for the banner)."""
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(known_hosts))
    except OSError as exc:
        raise InfrastructureError(f"cannot read known_hosts {known_hosts}: {exc.strerror or exc}") from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if sock is None and host.proxy:
        sock = paramiko.ProxyCommand(host.proxy.replace("%h", host.address).replace("%p", str(host.port)))
    try:
        client.connect(host.address, port=host.port, username=host.user,
                       key_filename=str(host.key) if host.key else None, timeout=CONNECT_TIMEOUT_S,
                       banner_timeout=CONNECT_TIMEOUT_S, auth_timeout=CONNECT_TIMEOUT_S, sock=sock,
                       allow_agent=False, look_for_keys=host.key is None)
    except paramiko.BadHostKeyException:
        client.close()
        raise InfrastructureError(f"host {host.name}: its host key does not match {known_hosts}: refused") from None
    except paramiko.SSHException as exc:
        client.close()
        raise InfrastructureError(f"host {host.name}: {exc}") from None
    except OSError as exc:
        client.close()
        raise InfrastructureError(f"host {host.name}: cannot connect to {host.address}:{host.port}: {exc}") from None
    return client


class _Slot:
    """One of a host's slots, held through an exclusive lock on a file (released at close)."""

    def __init__(self, host: SSHHost, fh: IO[str]) -> None:
        self.host, self.fh = host, fh

    def release(self) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


class SSHBackend(WithoutLifecycle):
    """Starts runners on the hosts of a hosts file."""

    name = "ssh"

    def prepare_env(self, env: SuiteEnv, archive: Path, bundle_digest: str) -> PreparedEnv:
        """Nothing on the worker: each run builds or reuses the suite's environment on its host
        (workers/remote_env.py), from wheels the worker fetched."""
        return remote_env.prepared(env, archive)

    def __init__(self, hosts: HostsFile, scratch: Path | None = None) -> None:
        self.hosts = hosts
        runs = scratch or Path.home() / ".cache" / "farm" / "runs"
        self.locks = runs / "ssh-slots"
        self.wheels = remote_env.WheelCache(runs.parent / "wheels")

    def _acquire(self, timeout: float = 600.0) -> _Slot:
        """A free slot, the least loaded host first (every pool process shares the lock files)."""
        self.locks.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        while True:
            for slot_index in range(max(h.slots for h in self.hosts.hosts)):
                for host in self.hosts.hosts:
                    if slot_index >= host.slots:
                        continue
                    fh = open(self.locks / f"{host.name}-{slot_index}.lock", "a")
                    try:
                        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        fh.close()
                        continue
                    return _Slot(host, fh)
            if time.monotonic() > deadline:
                raise InfrastructureError("no free slot on any SSH host (more worker slots than host slots?)")
            time.sleep(0.2)

    def start(self, request: RunRequest) -> SSHRun:
        slot = self._acquire()
        return start_on(slot.host, self.hosts.known_hosts, request, node=f"ssh:{slot.host.name}",
                        on_close=slot.release, wheels=self.wheels)


def start_on(host: SSHHost, known_hosts: Path, request: RunRequest, *, node: str,
             on_close: Callable[[], None] = lambda: None, diagnose: Callable[[], str] = lambda: "",
             wheels: remote_env.WheelCache | None = None) -> SSHRun:
    """Upload a run to `host` and start the remote runner there. `on_close` runs once the run is
    closed, or at once if it could not start; `diagnose` adds what the environment knows when the
    connection is lost. With a suite environment, it is built on the host first (from `wheels`)
    unless the host has it, and pytest runs under its interpreter."""
    try:
        client = connect(host, known_hosts)
    except BaseException:
        on_close()
        raise
    try:
        python = host.python
        if request.env:
            ready = remote_env.ensure(client, host.python, request.env, wheels or remote_env.WheelCache(
                Path.home() / ".cache" / "farm" / "wheels"), envs=host.envs, scratch=host.workdir,
                max_kept=remote_env.HOST_MAX_KEPT, node=node, where=f"ssh:{host.name}", bundle=request.bundle)
            python, request = ready.python, replace(request, paths=(*request.paths, *ready.paths))
    except BaseException:
        client.close()
        on_close()
        raise
    return upload_and_start(client, host.python, python, host.workdir, request, node=node, on_close=on_close,
                            diagnose=diagnose)


def upload_and_start(client: paramiko.SSHClient, runner_python: str, python: str, workdir_root: str,
                     request: RunRequest, *, node: str, on_close: Callable[[], None],
                     diagnose: Callable[[], str] = lambda: "", close_client: bool = True) -> SSHRun:
    """Upload a run through `client` and start workers/remote_runner.py under `runner_python`,
    pytest under `python` (shared by the ssh backend and the libvirt one's suites with an
    environment). `close_client`: the run owns the connection (an SSH host's; a VM's stays)."""
    workdir = f"{workdir_root.rstrip('/')}/{request.label}-{uuid.uuid4().hex[:8]}"
    try:
        _run(client, f"mkdir -p {shlex.quote(workdir)}/plugin/{PLUGIN_MODULE}")
        with client.open_sftp() as sftp:
            sftp.put(str(request.bundle), f"{workdir}/bundle.tar.gz")
            for source, relative in plugin_files():
                sftp.put(str(source), f"{workdir}/plugin/{relative}")
            sftp.put(str(REMOTE_RUNNER), f"{workdir}/remote_runner.py")
            sftp.put(str(UNPACK_SOURCE), f"{workdir}/farm_unpack.py")
            with sftp.open(f"{workdir}/tests.json", "w") as fh:
                fh.write(tests_file_text(request))
            with sftp.open(f"{workdir}/request.json", "w") as fh:
                fh.write(json.dumps({"argv": runner_argv(python, request),
                                     "env": runner_env(request, workdir, f"{workdir}/plugin"),
                                     "niceness": request.niceness}))
        channel = client.get_transport().open_session()  # type: ignore[union-attr]
        channel.exec_command(f"{shlex.quote(runner_python)} {shlex.quote(workdir + '/remote_runner.py')} "
                             f"{shlex.quote(workdir)}")
    except (paramiko.SSHException, OSError, InfrastructureError) as exc:
        _cleanup(client, workdir, close=close_client)
        on_close()
        raise InfrastructureError(f"{node}: could not start the runner: {exc} {diagnose()}".strip()) from None
    return SSHRun(client, channel, node, workdir, on_close, diagnose, close_client=close_client)


class SSHRun:
    """A remote runner: its records on the channel's stdout, its stop requests on its stdin."""

    def __init__(self, client: paramiko.SSHClient, channel: paramiko.Channel, node: str, workdir: str,
                 on_close: Callable[[], None], diagnose: Callable[[], str] = lambda: "", *,
                 close_client: bool = True) -> None:
        self.client, self.channel, self.workdir = client, channel, workdir
        self.close_client = close_client
        self.on_close, self.diagnose = on_close, diagnose
        self.node = node
        self.buffer = b""
        self.exit_code: int | None = None
        self.closed = False
        self.measured = Usage()  # what the remote runner's exit line says its tree used (nothing: unmeasured)

    def read_lines(self, timeout: float) -> list[bytes]:
        if self.exit_code is not None:
            if timeout:
                time.sleep(min(timeout, 0.05))
            return []
        ready, _, _ = select.select([self.channel], [], [], timeout)
        if not ready and not self.channel.recv_ready():
            return []
        chunks, eof = [], False
        while self.channel.recv_ready():
            chunks.append(self.channel.recv(1 << 20))
        if not chunks:  # readable without data: the channel closed
            chunk = self.channel.recv(1 << 20)
            eof = not chunk
            chunks.append(chunk)
        data = self.buffer + b"".join(chunks)
        *lines, self.buffer = data.split(b"\n")
        out = []
        for line in lines:
            if line.startswith((b'{"k": "exit"', b'{"k": "pid"')):
                frame: dict[str, Any] = json.loads(line)
                if frame["k"] == "exit":
                    self.exit_code = int(frame["code"])
                    self.measured = remote_usage(frame)
                continue
            out.append(line)
        if eof and self.exit_code is None:
            self._lost()
        return out

    def _lost(self) -> None:
        status = self.channel.recv_exit_status() if self.channel.exit_status_ready() else -1
        self.exit_code = -1  # asked again, it has ended
        why = self.diagnose() or self.output_tail(2000)
        raise InfrastructureError(f"{self.node}: the remote runner ended without reporting (status {status}); "
                                  f"the connection may be lost\n{why}")

    def poll(self) -> int | None:
        return self.exit_code

    def reusable(self) -> bool:
        """Whether the runner reported its end (its environment may serve another run)."""
        return self.exit_code is not None and self.exit_code != -1

    def sample(self) -> int:
        """Not sampled from here (that would measure the ssh channel): 0, so --max-memory does not act."""
        return 0

    def usage(self) -> Usage:
        return self.measured

    def stop(self, grace: float, *, stacks: bool = False) -> int:
        if self.exit_code is None:
            try:
                self.channel.sendall(f"stop {grace:g}{' stacks' if stacks else ''}\n".encode())
            except (OSError, paramiko.SSHException):
                pass
            deadline = time.monotonic() + grace + STOP_SLACK_S + (0.3 if stacks else 0.0)
            while self.exit_code is None and time.monotonic() < deadline:
                self.read_lines(0.1)
        if self.exit_code is None:
            raise InfrastructureError(f"{self.node}: the remote runner did not stop")
        return self.exit_code

    def _read_remote(self, name: str, limit: int) -> str:
        try:
            with self.client.open_sftp() as sftp, sftp.open(f"{self.workdir}/{name}", "rb") as fh:
                size = fh.stat().st_size or 0
                fh.seek(max(0, size - limit))
                return bytes(fh.read(limit)).decode("utf-8", "replace")
        except (OSError, paramiko.SSHException):
            return ""

    def output_tail(self, limit: int = 4000) -> str:
        return self._read_remote("output.log", limit)

    def stack_dump(self) -> str:
        return self._read_remote("stacks.txt", 1 << 20).strip()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.exit_code is None:
                try:
                    self.stop(1.0)
                except InfrastructureError:
                    pass
            self._release()
        finally:
            self.on_close()

    def _release(self) -> None:
        """What a run gives back once it ended: its channel, and its directory on the host."""
        self.channel.close()
        _cleanup(self.client, self.workdir, close=self.close_client)


def remote_usage(frame: dict[str, Any]) -> Usage:
    """What a remote runner's exit line says (workers/remote_runner.py); nothing if it says nothing
    or something malformed (a runner of an older farm, a VM's runner: unmeasured)."""
    try:
        left = tuple((float(at), str(argv)) for at, argv in frame.get("left") or ())
        return Usage(int(frame.get("peak_rss_bytes") or 0), float(frame.get("cpu_s") or 0.0), left)
    except (TypeError, ValueError):
        return Usage()


def _run(client: paramiko.SSHClient, command: str) -> None:
    _, stdout, stderr = client.exec_command(command, timeout=CONNECT_TIMEOUT_S)
    if stdout.channel.recv_exit_status() != 0:
        raise InfrastructureError(f"remote command failed: {command}: {stderr.read().decode(errors='replace')}")


def _cleanup(client: paramiko.SSHClient, workdir: str, *, close: bool = True) -> None:
    try:
        _run(client, f"rm -rf {shlex.quote(workdir)}")
    except (InfrastructureError, paramiko.SSHException, OSError):
        pass
    finally:
        if close:
            client.close()

