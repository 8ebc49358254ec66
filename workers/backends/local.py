"""The local backend: each runner is a pytest process in its own directory and session. Each pool
process keeps one pre-started runner (workers/pytest_standby.py: Python started, pytest imported)
ready for its next assignment, and starts a fresh `python -m pytest` when it cannot use it."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
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
from farm.suite_env import SuiteEnv
from workers.backends import fence_files
from workers.backends.base import RunRequest, Usage, WithoutLifecycle, runner_env, tests_file_text
from workers.backends.tree_usage import TreeUsage, leftovers
from workers.bundles import ProjectTrees, TreeBounds
from workers.fingerprint import FINGERPRINTS as _FINGERPRINTS
from workers.fingerprint import probe_output as _probe_output
from workers.fingerprint import runner_base_env as _runner_env
from workers.fingerprint import start_fingerprint
from workers.suite_envs import EnvBuildError, EnvCache, PreparedEnv

PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "pytest_plugin"
PLUGIN_MODULE = "farm_runner_plugin"
STANDBY_SCRIPT = Path(__file__).resolve().parent.parent / "pytest_standby.py"
#: The shortest time between two reads of a runner's record pipe. A trivial test takes about half a
#: millisecond: read at every line, the pool process would wake (and the runner be preempted) at
#: every test; a pipe no one waits on takes a write without waking anyone. The lines wait in
#: the pipe meanwhile (PIPE_BYTES), so a runner killed then loses none of them.
READ_INTERVAL_S = 0.02
#: The record pipe's capacity asked for (Linux: F_SETPIPE_SZ, up to /proc/sys/fs/pipe-max-size;
#: else the default 64 KiB): a runner writing a large failure report blocks only when it is full.
PIPE_BYTES = 1 << 18
#: How long an assignment waits for its pool process's standby to finish importing pytest before it
#: starts a fresh runner instead (a standby started as the last assignment began may still be importing).
STANDBY_WAIT_S = 30.0

log = logging.getLogger("farm.worker")


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


def environment_fingerprint(python: str) -> str:
    """What a collection under `python` depends on besides the bundle and the arguments: the
    interpreter, its installed distributions (run under it, in a runner's environment) and the
    runner plugin's source; "" when it cannot tell (then nothing is cached). Computed once per
    worker process (or inherited from the main process, start_fingerprint): a distribution
    installed while the worker runs is noticed by the runners' check, not here."""
    if python not in _FINGERPRINTS:
        plugin = plugin_digest()
        answer = _probe_output(python)
        if answer is None or answer[0] != 0 or not answer[1].strip():
            return ""
        _FINGERPRINTS[python] = f"{plugin}\n{answer[1].strip()}"
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
    #: Its runners are processes on this machine: a collection may split over the worker's slots.
    parallel_collection = True

    def __init__(self, python: str | None = None, scratch: Path | None = None,
                 max_unpacked_bytes: int = Settings.max_unpacked_bytes, standby: bool = Settings.local_standby,
                 kept_trees: Path | None = None, envs: EnvCache | None = None) -> None:
        self.python = python or sys.executable
        # Pre-started runners (FARM_LOCAL_STANDBY, `farm worker --no-standby`): one per pool process,
        # from process_started on; a backend whose process_started was never called starts fresh ones.
        self.use_standby = standby
        self.pooled = False  # process_started was called: this process keeps a standby
        self.standby: Standby | None = None
        self.scratch = scratch or Path.home() / ".cache" / "farm" / "runs"
        self.max_unpacked_bytes = max_unpacked_bytes
        # Each bundle unpacked and byte-compiled once per worker (its slots share the disk) and digest,
        # beside the run directories (CACHE/trees); runs copy it. With `kept_trees` (the embedded
        # farm's `--kept-trees DIR`), once per digest in that directory, bounded and kept across farms.
        # Whether more work waits on this worker's queue (set by the worker service; None: always
        # taken as yes). Without, the next standby waits for the end of the run (_replenish_beside).
        self.queued: Callable[[], bool] | None = None
        self.trees = (ProjectTrees(kept_trees, self.python, max_unpacked_bytes, bounds=TreeBounds())
                      if kept_trees is not None else ProjectTrees(self.scratch.parent / "trees", self.python,
                                                                   max_unpacked_bytes))
        # The suite environments this worker builds and keeps (workers/suite_envs.py; by default beside the trees).
        self.envs = envs if envs is not None else EnvCache(self.scratch.parent / "envs")

    def environment(self) -> str:
        """The fingerprint of the interpreter runners use (workers/collection_cache.py)."""
        return environment_fingerprint(self.python)

    def prepare_env(self, env: SuiteEnv, archive: Path, bundle_digest: str) -> PreparedEnv:
        """The suite environment of `env` for the bundle `archive`, built or reused
        (workers/suite_envs.py): EnvBuildError when it cannot be built."""
        fingerprint = self.environment()
        if not fingerprint:
            raise EnvBuildError(f"could not build the suite's environment: {self.python} does not run")
        return self.envs.prepare(env, self.trees.tree(archive), bundle_digest, self.python, fingerprint)

    def release_env(self, prepared: PreparedEnv) -> None:
        """The run `prepare_env` was for has ended: its environment may be evicted again."""
        self.envs.release(prepared.key)

    def start_environment(self) -> None:
        """Begin computing `environment()` in the background (the worker's main process, at its
        start: see start_fingerprint)."""
        start_fingerprint(self.python)

    def process_started(self) -> None:
        """In each pool process: start its standby, for its first assignment."""
        if self.use_standby:
            self.pooled = True
            self._replenish()

    def shutdown(self) -> None:
        """End this process's standby (pool processes' standbys die with them, or at stdin's EOF)."""
        if self.standby is not None:
            self.standby.discard()
            self.standby = None

    def _replenish(self) -> None:
        try:
            self.standby = Standby(self.python, standby_env(os.environ))
        except OSError as exc:  # never fatal: the next assignment starts a fresh runner
            log.warning("cannot start a pre-started runner under %s: %s", self.python, exc)
            self.standby = None

    def _take_standby(self, env: dict[str, str], project: Path) -> Standby | None:
        """This process's standby if it can become the runner `env` describes in `project`, else
        None (then it is discarded); in both cases the next one starts, once this run has begun."""
        standby, self.standby = self.standby, None
        if standby is None:
            return None
        why = standby.unfit(env, project, STANDBY_WAIT_S)
        if why == NOT_READY:
            log.warning("pre-started runner not ready within %.0fs: this worker process starts fresh runners "
                        "from now on", STANDBY_WAIT_S)
            self.use_standby = False
        if why:
            log.info("pre-started runner not used (%s): starting a fresh one", why)
            standby.discard()
            return None
        return standby

    def start(self, request: RunRequest) -> LocalRun:
        workdir = self.scratch / f"{request.label}-{uuid.uuid4().hex[:8]}"
        project = workdir / "project"
        plugin_dir = workdir / "plugin"
        try:
            plugin_dir.mkdir(parents=True)
            install_plugin(plugin_dir)
            # pytest's rewritten test modules are kept without the pass hook (workers/pytest_rewrites.py).
            self.trees.copy(request.bundle, project,
                            rewritten=not any("enable_assertion_pass_hook" in a
                                              for a in (*request.pytest_args, os.environ.get("PYTEST_ADDOPTS", ""))))
            (workdir / "tests.json").write_text(tests_file_text(request), encoding="utf-8")  # runner_env names it
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        # A standby is this backend's interpreter started ahead: a run in a suite environment (another
        # interpreter, other packages) starts fresh, and leaves the standby for the next run without one.
        use_standby = self.use_standby and self.pooled and not request.python
        try:
            run = LocalRun(request.python or self.python, request, workdir, project, plugin_dir,
                           take_standby=self._take_standby if use_standby else None)
        except BaseException:
            if use_standby:
                self._replenish()
            raise
        if use_standby:
            # The next assignment's standby starts once this runner is under way (its first line,
            # or its end), not beside its start, where both would import pytest on the same cores.
            # After a collection come the suite's assignments, never queued yet while it runs.
            run.on_begun = lambda: self._replenish_beside(run, collecting=request.mode == "collect")
        return run

    def _replenish_beside(self, run: LocalRun, collecting: bool = False) -> None:
        if self.standby is None and self.use_standby:
            if not collecting and self.queued is not None and not self.queued():
                # Nothing waits for this slot (a small suite's last assignments): a standby started
                # now would import pytest beside the runners, on their cores, for no assignment.
                # It starts once this run is over, ready for what comes next.
                run.on_closed = self._replenish_idle
                return
            self._replenish()
        if self.standby is not None:
            run.before.add(self.standby.proc.pid)  # no leftover of that run

    def _replenish_idle(self) -> None:
        if self.standby is None and self.use_standby:
            self._replenish()


class LocalRun:
    """A pytest subprocess in its own session, its records on a pipe: a fresh `python -m pytest`, or
    a standby that became it (`take_standby` is given the runner's environment and project)."""

    def __init__(
        self, python: str, request: RunRequest, workdir: Path, project: Path, plugin_dir: Path,
        take_standby: Callable[[dict[str, str], Path], Standby | None] | None = None,
    ) -> None:
        self.node = f"{LOCAL_NODE}{socket.gethostname()}"
        self.workdir = workdir
        self.log_path = workdir / "output.log"
        self.stack_path = workdir / "stacks.txt"
        become_subreaper()
        self.before = {p.pid for p in descendants()}
        env = _runner_env(os.environ)
        env.update({
            **runner_env(request, str(workdir), str(plugin_dir), str(project)),
            **(fence_files.env(workdir) if request.mode == "run" else {}),
        })
        self.buffer = b""
        self.eof = False
        self.last_read = 0.0  # monotonic time of the last read that found lines
        self.exit_code: int | None = None
        self.on_begun: Callable[[], None] | None = None  # called once: its first line, or its close
        self.on_closed: Callable[[], None] | None = None  # called once, at the end of close
        self.tree = TreeUsage()
        self.stopped = False  # stopped by the worker: its tree was killed, no leftovers are told
        self.left: tuple[tuple[float, str], ...] = ()
        standby = take_standby(env, project) if take_standby is not None else None
        self.tree.begin()  # after take_standby, which may reap a standby it discards
        became = standby.become(runner_argv(python, request), env, project, self.log_path, request.niceness) \
            if standby is not None else None
        self.standby_used = became is not None
        if became is not None:
            self.proc, self.read_fd = became
            os.set_blocking(self.read_fd, False)
            return
        if standby is not None:
            standby.discard()
        read_fd, write_fd = record_pipe()
        env["FARM_RECORD_FD"] = str(write_fd)
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

    def read_lines(self, timeout: float) -> list[bytes]:
        if self.eof:
            if timeout:
                time.sleep(min(timeout, 0.05))
            return []
        wait = self.last_read + READ_INTERVAL_S - time.monotonic()
        if wait > 0 and timeout > 0:  # let lines gather (READ_INTERVAL_S)
            time.sleep(min(wait, timeout))
            timeout = max(0.0, timeout - wait)
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
        if lines:
            self.last_read = time.monotonic()
            self._begun()
        return lines

    def _begun(self) -> None:
        begun, self.on_begun = self.on_begun, None
        if begun is not None:
            begun()

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
        self.stopped = True
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

    def sample(self) -> int:
        return self.tree.sample(self.proc.pid) if self.proc.returncode is None else 0

    def usage(self) -> Usage:
        return Usage(self.tree.peak_rss_bytes, self.tree.cpu_s, self.left)

    def close(self) -> None:
        self._begun()  # before the leftovers are taken: the new standby is none of them
        if self.proc.poll() is None:
            self.stop(grace=1.0)
        else:
            if not self.stopped:  # what its tests left running: leaks (workers/runner.py says whose)
                self.left = tuple(leftovers(self.before, self.proc.pid))
            signal_group(self.proc.pid, signal.SIGKILL)  # anything it left running in its group
        # Daemons the tests started (even double-forked, in sessions of their own) were
        # reparented to this process, the subreaper: nothing the tests started survives, and
        # none stays a zombie of this pool process.
        kill_and_reap_new(self.before)
        self.tree.end()
        try:
            os.close(self.read_fd)
        except OSError:
            pass
        shutil.rmtree(self.workdir, ignore_errors=True)
        closed, self.on_closed = self.on_closed, None
        if closed is not None:  # after the leftovers were taken: a standby it starts is none of them
            closed()


class Standby:
    """A pre-started runner (workers/pytest_standby.py) in its own session, waiting for one request;
    its record pipe made when it started. Started with `env`: the environment a runner would get
    minus what differs per run (PYTHONPATH, which names the run's plugin directory and which the
    standby applies to sys.path itself, and the FARM_* variables pytest reads only once it runs)."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.env = env
        read_fd, write_fd = record_pipe()
        try:
            self.proc = subprocess.Popen(
                [python, str(STANDBY_SCRIPT)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, pass_fds=(write_fd,), start_new_session=True, preexec_fn=die_with_parent)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.read_fd, self.write_fd = read_fd, write_fd  # the number the standby holds it as
        self.modules: set[str] | None = None
        self.files: dict[str, tuple[int, int, int] | None] = {}  # what it loaded, as on disk then

    def unfit(self, env: dict[str, str], project: Path, wait: float) -> str:
        """Why this standby cannot become the runner `env` describes in `project` ("" if it can):
        it is gone or not ready within `wait` seconds, the environment differs in what Python reads
        only at its start, or a file of the project would have shadowed a module it has loaded."""
        if startup_env(env) != startup_env(self.env):
            return "the environment changed since it started"
        if self.modules is None and self.proc.poll() is None and not self._ready(wait):
            return NOT_READY
        if self.proc.poll() is not None:
            return "it ended"
        if file_versions(self.files) != self.files:
            return "the interpreter or a module it loaded changed on disk since it started"
        shadowed = sorted(self.modules & top_level_names(project)) if self.modules is not None else []
        return f"the project shadows {', '.join(shadowed)}" if shadowed else ""

    def _ready(self, wait: float) -> bool:
        """Wait for its line saying pytest is imported; keeps which modules it loaded."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], wait)
        if not ready:
            return False
        try:
            line = json.loads(self.proc.stdout.readline() or b"null")
        except ValueError:
            return False
        if not isinstance(line, dict) or line.get("k") != "standby":
            return False
        self.modules = {str(m) for m in line.get("modules", ())}
        self.files = file_versions(str(f) for f in line.get("files", ()))
        return True

    def become(self, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path,
               niceness: int) -> tuple[subprocess.Popen[bytes], int] | None:
        """Hand it the run: it becomes `argv` in `cwd` with `env`; its process and record pipe, or
        None if it ended before it could read the request (then discard it)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"argv": argv, "env": {**env, "FARM_RECORD_FD": str(self.write_fd)}, "cwd": str(cwd),
                   "niceness": niceness, "log": str(log_path)}
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.close()
        except OSError:  # it ended since it said it was ready
            return None
        self.proc.stdout.close()
        return self.proc, self.read_fd

    def discard(self) -> None:
        """End it (it is not used) and reap it."""
        if self.proc.returncode is None:  # reaped already: its pid may be another process's now
            signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:  # a request it could not read: nothing to flush it to
                    pass
        os.close(self.read_fd)


#: Why a standby is discarded when it did not say it was ready within STANDBY_WAIT_S: then this
#: process starts fresh runners only (a standby that hangs at start would cost every assignment).
NOT_READY = "it was not ready in time"


def record_pipe() -> tuple[int, int]:
    """A runner's record pipe (read end, write end), as large as PIPE_BYTES where the system allows."""
    read_fd, write_fd = os.pipe()
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        try:
            fcntl.fcntl(write_fd, set_size, PIPE_BYTES)
        except OSError:  # above the system's limit: the default size
            pass
    return read_fd, write_fd


def file_versions(paths: Iterable[str]) -> dict[str, tuple[int, int, int] | None]:
    """Each file's (inode, size, mtime in ns), None if it is gone: a package upgraded on disk
    while a standby waited changes them."""
    out: dict[str, tuple[int, int, int] | None] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out[path] = None
        else:
            out[path] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def standby_env(base: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    """The environment a standby starts with: a runner's (LocalRun), but for what differs per run."""
    return {**_runner_env(base), "PYTHONDONTWRITEBYTECODE": "1"}


def startup_env(env: dict[str, str]) -> dict[str, str]:
    """What of a runner's environment only its start applies (Python's PYTHON* variables, -X options
    via PYTHONxxx, the locale, TZ, and whatever else a module pytest imports may read): all of it
    but PYTHONPATH (a standby applies it to sys.path) and FARM_* (read by the plugin as it runs)."""
    return {k: v for k, v in env.items() if k != "PYTHONPATH" and not k.startswith("FARM_")}


def top_level_names(project: Path) -> set[str]:
    """The module names a project's top directory provides (first on a fresh runner's sys.path):
    its modules and regular packages (a directory without __init__.py shadows nothing)."""
    names = set()
    try:
        for entry in os.scandir(project):
            if entry.is_dir():
                if os.path.exists(os.path.join(entry.path, "__init__.py")):
                    names.add(entry.name)
            elif entry.name.endswith((".py", ".pyc", ".so", ".pyd")):
                names.add(entry.name.partition(".")[0])
    except OSError:
        pass
    return names


def _prepare_child(niceness: int) -> None:
    """In the runner before exec: die with the worker process that started it, and take the
    CPU priority its assignment was given."""
    die_with_parent()
    if niceness > 0:
        os.nice(niceness)


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
