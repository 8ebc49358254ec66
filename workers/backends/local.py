"""The local backend: each runner is a fresh pytest process in its own directory and session."""

from __future__ import annotations

import errno
import hashlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from farm.config import Settings
from farm.model import LOCAL_NODE
from farm.processes import (
    become_subreaper,
    descendants,
    die_with_parent,
    kill_and_reap_new,
    signal_all,
    signal_group,
)
from workers.backends import fence_files
from workers.backends.base import RunRequest, WithoutLifecycle, runner_env, tests_file_text
from workers.bundles import ProjectTrees
from workers.collection_cache import FINGERPRINT_SCRIPT

PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "pytest_plugin"
PLUGIN_MODULE = "farm_runner_plugin"


def plugin_files() -> list[tuple[Path, str]]:
    """The runner plugin's files, each with its path under a run's `plugin/` directory: the whole
    package, as PLUGIN_MODULE (shared by every backend)."""
    return [(source, f"{PLUGIN_MODULE}/{source.name}") for source in sorted(PLUGIN_SOURCE.glob("*.py"))]


def install_plugin(plugin_dir: Path) -> None:
    """Copy the runner plugin into `plugin_dir`, which the runner's PYTHONPATH names."""
    for source, relative in plugin_files():
        target = plugin_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def plugin_digest() -> str:
    """The sha256 of the runner plugin's source: a collection depends on it too."""
    return hashlib.sha256(b"".join(source.read_bytes() for source, _ in plugin_files())).hexdigest()


#: Each interpreter's fingerprint, computed once per worker process (environment_fingerprint).
_FINGERPRINTS: dict[str, str] = {}


def environment_fingerprint(python: str) -> str:
    """What a collection under `python` depends on besides the bundle and the arguments: the
    interpreter, its installed distributions (run under it, in a runner's environment) and the
    runner plugin's source; "" when it cannot tell (then nothing is cached). Computed once per
    worker process: a distribution installed while the worker runs is noticed by the runners'
    check, not here."""
    if python not in _FINGERPRINTS:
        plugin = plugin_digest()
        try:
            done = subprocess.run([python, "-c", FINGERPRINT_SCRIPT], env=_runner_env(os.environ), capture_output=True,
                                  text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.SubprocessError):
            return ""
        if done.returncode != 0 or not done.stdout.strip():
            return ""
        _FINGERPRINTS[python] = f"{plugin}\n{done.stdout.strip()}"
    return _FINGERPRINTS[python]


def runner_argv(python: str, request: RunRequest) -> list[str]:
    """The pytest command line for a request (shared by every backend)."""
    argv = [python, "-m", "pytest", "-p", PLUGIN_MODULE, "-p", "no:cacheprovider"]
    if request.mode == "collect":
        argv.append("--collect-only")
    return argv + list(request.pytest_args)


class LocalBackend(WithoutLifecycle):
    """Runs pytest as a subprocess of the worker, under `python`."""

    name = "local"

    def __init__(self, python: str | None = None, scratch: Path | None = None,
                 max_unpacked_bytes: int = Settings.max_unpacked_bytes) -> None:
        self.python = python or sys.executable
        self.scratch = scratch or Path.home() / ".cache" / "farm" / "runs"
        self.max_unpacked_bytes = max_unpacked_bytes
        # Each bundle unpacked and byte-compiled once per worker (its slots share the disk) and digest,
        # beside the run directories (CACHE/trees); runs copy it.
        self.trees = ProjectTrees(self.scratch.parent / "trees", self.python, max_unpacked_bytes)

    def environment(self) -> str:
        """The fingerprint of the interpreter runners use (workers/collection_cache.py)."""
        return environment_fingerprint(self.python)

    def start(self, request: RunRequest) -> LocalRun:
        workdir = self.scratch / f"{request.label}-{uuid.uuid4().hex[:8]}"
        project = workdir / "project"
        plugin_dir = workdir / "plugin"
        try:
            plugin_dir.mkdir(parents=True)
            install_plugin(plugin_dir)
            self.trees.copy(request.bundle, project)
            (workdir / "tests.json").write_text(tests_file_text(request), encoding="utf-8")  # runner_env names it
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return LocalRun(self.python, request, workdir, project, plugin_dir)


class LocalRun:
    """A pytest subprocess in its own session, its records on a pipe."""

    def __init__(
        self, python: str, request: RunRequest, workdir: Path, project: Path, plugin_dir: Path
    ) -> None:
        self.node = f"{LOCAL_NODE}{socket.gethostname()}"
        self.workdir = workdir
        self.log_path = workdir / "output.log"
        self.stack_path = workdir / "stacks.txt"
        become_subreaper()
        self.before = {p.pid for p in descendants()}
        read_fd, write_fd = os.pipe()
        env = _runner_env(os.environ)
        env.update({
            **runner_env(request, str(workdir), str(plugin_dir)),
            "FARM_RECORD_FD": str(write_fd),
            **(fence_files.env(workdir) if request.mode == "run" else {}),
        })
        try:
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    runner_argv(python, request),
                    cwd=project,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(write_fd,),
                    start_new_session=True,  # its own process group: stop() takes the whole group
                    preexec_fn=lambda: _prepare_child(request.niceness),
                )
        finally:
            os.close(write_fd)
        self.read_fd = read_fd
        os.set_blocking(read_fd, False)
        self.buffer = b""
        self.eof = False
        self.exit_code: int | None = None

    def read_lines(self, timeout: float) -> list[bytes]:
        if self.eof:
            if timeout:
                time.sleep(min(timeout, 0.05))
            return []
        ready, _, _ = select.select([self.read_fd], [], [], timeout)
        if not ready:
            return []
        chunks = []
        while True:
            try:
                chunk = os.read(self.read_fd, 1 << 20)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    break
                raise
            if not chunk:
                self.eof = True
                break
            chunks.append(chunk)
        data = self.buffer + b"".join(chunks)
        *lines, self.buffer = data.split(b"\n")
        return lines

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is None:
            return None
        if not self.eof:
            # The runner ended; its forked children may hold the pipe open, so don't wait for EOF
            # longer than it takes to drain what is there.
            return None if self._pending() else code
        return code

    def _pending(self) -> bool:
        ready, _, _ = select.select([self.read_fd], [], [], 0)
        return bool(ready) and not self.eof

    def stop(self, grace: float, *, stacks: bool = False) -> int:
        if stacks and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGUSR1)  # faulthandler writes the stacks to stacks.txt
                time.sleep(0.3)
            except ProcessLookupError:
                pass
        _kill_tree(self.proc, grace)
        return self.proc.wait()

    def fence(self, seq: int, tail: tuple[str, ...]) -> None:
        fence_files.write_fence(self.workdir, seq, tail)

    def fence_reply(self) -> tuple[int, list[str]] | None:
        return fence_files.read_reply(self.workdir)

    def stack_dump(self) -> str:
        try:
            return self.stack_path.read_text(errors="replace").strip()
        except OSError:
            return ""

    def output_tail(self, limit: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - limit))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.stop(grace=1.0)
        else:
            signal_group(self.proc.pid, signal.SIGKILL)  # anything it left running in its group
        # Daemons the tests started (even double-forked, in sessions of their own) were
        # reparented to this process, the subreaper: nothing the tests started survives, and
        # none stays a zombie of this pool process.
        kill_and_reap_new(self.before)
        try:
            os.close(self.read_fd)
        except OSError:
            pass
        shutil.rmtree(self.workdir, ignore_errors=True)


def _prepare_child(niceness: int) -> None:
    """In the runner before exec: die with the worker process that started it, and take the
    CPU priority its assignment was given."""
    die_with_parent()
    if niceness > 0:
        os.nice(niceness)


def _runner_env(base: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    """The worker's environment minus farm's and Celery's own variables."""
    return {k: v for k, v in base.items() if not k.startswith(("FARM_", "CELERY_", "PYTHONPATH"))}


def _kill_tree(proc: subprocess.Popen[bytes], grace: float) -> None:
    """TERM the runner's group and descendants, wait `grace`, then KILL what is left."""
    below = descendants(proc.pid)
    signal_group(proc.pid, signal.SIGTERM)
    signal_all(below, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    signal_group(proc.pid, signal.SIGKILL)
    signal_all(below, signal.SIGKILL)
    proc.wait()
