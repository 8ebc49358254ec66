"""The worker's side of a VM's pre-started runner (workers/vm_runner.py in the guest).

`prime` runs once a VM is ready, before any assignment: over the SSH connection kept from the
readiness check it unpacks one archive (the runner, the unpacker, the plugin) into the guest
and starts the runner, which imports pytest and waits. `send` hands it a request: one line and
the bundle's bytes on the same channel, so an assignment costs no login, no SFTP session and no
Python start. The records come back as with the ssh backend (`VMRun` is an SSHRun whose close
leaves the connection to the backend: the VM is destroyed, or kept for the suite's first run).
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import paramiko

from farm.errors import InfrastructureError
from workers.backends.base import RunRequest, runner_env, tests_file_text
from workers.backends.local import plugin_files, runner_argv
from workers.backends.ssh import REMOTE_RUNNER, UNPACK_SOURCE, SSHRun
from workers.backends.vm import VM

VM_RUNNER = Path(__file__).resolve().parent.parent / "vm_runner.py"
#: What vm_runner.py shares with the local backend's standby (importing pytest, becoming `python -m pytest`).
STANDBY = Path(__file__).resolve().parent.parent / "pytest_standby.py"
#: Where the runner's files and each run's directory live in the guest (a tmpfs).
RUNNER_DIR = "/tmp/farm-runs"
PYTHON = "python3"
#: How long the guest may take to start Python and import pytest under TCG (a loaded machine).
STANDBY_TIMEOUT_S = 120.0


@lru_cache(maxsize=1)
def runner_archive() -> bytes:
    """The runner (with the standby module it imports), the unpacker and the plugin, as one .tar.gz
    (one upload per VM)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        files = [(VM_RUNNER, "vm_runner.py"), (STANDBY, "pytest_standby.py"), (REMOTE_RUNNER, "remote_runner.py"),
                 (UNPACK_SOURCE, "farm_unpack.py"), *((s, f"plugin/{r}") for s, r in plugin_files())]
        for source, name in files:
            data = source.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(source.stat().st_mtime)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def prime(vm: VM, timeout: float = STANDBY_TIMEOUT_S) -> None:
    """Upload the runner into the ready VM and start it; returns once it has imported pytest."""
    client: paramiko.SSHClient = vm.client
    try:
        stdin, stdout, stderr = client.exec_command(
            f"mkdir -p {RUNNER_DIR} && tar -xzf - -C {RUNNER_DIR}", timeout=timeout)
        stdin.write(runner_archive())
        stdin.channel.shutdown_write()
        if stdout.channel.recv_exit_status() != 0:
            raise InfrastructureError(f"VM {vm.name}: cannot unpack the runner: "
                                      f"{stderr.read().decode(errors='replace').strip()}")
        channel = client.get_transport().open_session()  # type: ignore[union-attr]
        channel.exec_command(f"{PYTHON} {RUNNER_DIR}/vm_runner.py {RUNNER_DIR}")
        deadline = time.monotonic() + timeout
        seen = b""
        while b'{"k": "standby"' not in seen:
            if time.monotonic() > deadline:
                raise InfrastructureError(f"VM {vm.name}: the runner did not start within {timeout:.0f}s")
            if channel.recv_ready():
                seen += channel.recv(1 << 16)
            elif channel.exit_status_ready() or channel.closed:
                err = channel.recv_stderr(1 << 16).decode(errors="replace").strip()
                raise InfrastructureError(f"VM {vm.name}: the runner ended before it was ready: {err[-2000:]}")
            else:
                time.sleep(0.02)
    except (paramiko.SSHException, OSError) as exc:
        raise InfrastructureError(f"VM {vm.name}: cannot start the runner: {exc}") from None
    vm.channel = channel


def request_header(request: RunRequest, size: int, runner_dir: str = RUNNER_DIR) -> tuple[str, dict[str, Any]]:
    """The run's label (its directory under `runner_dir`) and the request line's JSON (pure)."""
    label = f"{request.label}-{uuid.uuid4().hex[:8]}"
    workdir = f"{runner_dir}/{label}"
    return label, {
        "label": label, "argv": runner_argv(PYTHON, request), "niceness": request.niceness,
        "tests": tests_file_text(request), "size": size,
        "env": runner_env(request, workdir, f"{runner_dir}/plugin"),
    }


def send(vm: VM, request: RunRequest) -> str:
    """Hand `request` to the VM's runner: one line and the bundle; the run's directory in the guest."""
    bundle = request.bundle.read_bytes()
    label, header = request_header(request, len(bundle))
    vm.channel.sendall(b"run " + json.dumps(header).encode() + b"\n" + bundle)
    return f"{RUNNER_DIR}/{label}"


class VMRun(SSHRun):
    """A run on a VM's pre-started runner. Closing it stops the runner if it still runs, then
    hands the VM back (`on_close`): the connection stays open for the backend to keep or end."""

    def __init__(self, vm: VM, node: str, workdir: str, on_close: Callable[[], None],
                 diagnose: Callable[[], str]) -> None:
        super().__init__(vm.client, vm.channel, node, workdir, on_close, diagnose)

    def reusable(self) -> bool:
        """Whether the runner reported its end and waits for another request."""
        return self.exit_code is not None and self.exit_code != -1 and not self.channel.closed

    def _release(self) -> None:
        """Nothing: the channel stays open for the runner's next request, and nothing is removed in
        the guest (a VM serves one suite, then is destroyed whole)."""
