"""A runner started in a warm VM before its assignment arrives (the libvirt backend); copied into
the guest with remote_runner.py, farm_unpack.py and the runner plugin when the VM is booted.

Standard library and pytest only. Usage: `python3 vm_runner.py DIR`, where DIR holds those files
(the plugin as DIR/plugin/farm_runner_plugin/, pytest_standby.py beside it). It imports pytest and its
built-in plugins (pytest_standby.preload, as the local backend's standby does),
writes `{"k": "standby"}` on stdout, then waits on stdin for a request:

    run {"label": ..., "argv": [...], "env": {...}, "niceness": N, "tests": "...", "size": N}\\n
    <N bytes: the bundle archive>

It unpacks the bundle into DIR/LABEL/project and forks: the child becomes the pytest process
(its own session, output into DIR/LABEL/output.log, the request's environment) without starting
Python or importing pytest again; this process relays its records and stop commands exactly as
remote_runner.py does, framed by `{"k": "pid"}` and `{"k": "exit"}`, kills whatever the tests
left, and then waits for the next request. The worker sends a second request only for the
first assignment of the suite it collected (same bundle, same arguments); EOF ends it.
The VM is never shared between suites: it is destroyed once the worker is done with it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tarfile
import traceback
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
BASE_PATH = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(HERE, "plugin"))

from farm_unpack import unpack_safely  # noqa: E402
from pytest_standby import become_pytest, preload  # noqa: E402
from remote_runner import _descendants, _emit, _signal_all, _subreaper, relay  # noqa: E402

preload()


class Forked:
    """The forked pytest process, as relay() and remote_runner._stop see a Popen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int | None:
        import time

        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.returncode


def _read_request(stdin_fd: int, buffered: bytes) -> tuple[dict[str, Any], bytes, bytes] | None:
    """The next request and its bundle (None at EOF); a stop line left from the last run is skipped."""
    data = buffered
    while True:
        while b"\n" in data:
            line, rest = data.split(b"\n", 1)
            if line.startswith(b"run "):
                request: dict[str, Any] = json.loads(line[4:])
                size = int(request["size"])
                buffer = bytearray(rest)  # grown in place: a bundle arrives in many small reads
                while len(buffer) < size:
                    chunk = os.read(stdin_fd, 1 << 20)
                    if not chunk:
                        return None
                    buffer += chunk
                return request, bytes(buffer[:size]), bytes(buffer[size:])
            data = rest  # a stop sent as the last run ended: nothing to stop now
        chunk = os.read(stdin_fd, 1 << 16)
        if not chunk:
            return None
        data += chunk


def _child(request: dict[str, Any], project: str, log_fd: int, write_fd: int, read_fd: int) -> None:
    """In the forked child: become `python3 -m pytest ARGS` in `project` (never returns)."""
    code = 3
    try:
        os.setsid()
        os.close(read_fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as subprocess restores them
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        niceness = int(request.get("niceness", 0))
        if niceness > 0:
            os.nice(niceness)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_", "CELERY_", "PYTHONPATH"))}
        env.update({str(k): str(v) for k, v in request["env"].items()})
        env["FARM_RECORD_FD"] = str(write_fd)
        become_pytest([str(a) for a in request["argv"]], env, project, BASE_PATH)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(workdir: str, request: dict[str, Any], bundle: bytes, stdin_fd: int) -> bytes | None:
    """Run one request; what stdin held past it (None once stdin closed)."""
    run_dir = os.path.join(workdir, os.path.basename(str(request["label"])))
    project = os.path.join(run_dir, "project")
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "bundle.tar.gz"), "wb") as fh:
        fh.write(bundle)
    with open(os.path.join(run_dir, "tests.json"), "w", encoding="utf-8") as fh:
        fh.write(str(request["tests"]))
    log_path = os.path.join(run_dir, "output.log")
    try:
        with tarfile.open(os.path.join(run_dir, "bundle.tar.gz")) as archive:
            unpack_safely(archive, project)
    except (tarfile.TarError, OSError) as exc:
        with open(log_path, "w", encoding="utf-8") as log:
            log.write(f"farm remote runner: the bundle cannot be unpacked: {exc}\n")
        _emit({"k": "exit", "code": 3})
        return b""
    read_fd, write_fd = os.pipe()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(request, project, log_fd, write_fd, read_fd)
    os.close(write_fd)
    os.close(log_fd)
    proc = Forked(pid)
    _emit({"k": "pid", "pid": pid})
    left: bytes | None = relay(proc, read_fd, stdin_fd)
    os.close(read_fd)
    _signal_all(_descendants(os.getpid()), signal.SIGKILL)  # what the tests left running
    while proc.poll() is None:  # relay saw it end; reaped here if it had not been yet
        proc.wait(1.0)
    _emit({"k": "exit", "code": proc.returncode})
    return left


def main(workdir: str) -> int:
    _subreaper()
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    stdin_fd = stdin.fileno()
    _emit({"k": "standby", "pid": os.getpid()})
    left: bytes | None = b""
    while left is not None:
        got = _read_request(stdin_fd, left)
        if got is None:
            break
        request, bundle, left = got
        left = serve(workdir, request, bundle, stdin_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
