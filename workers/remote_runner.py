"""Runs pytest on a remote host for a worker (an SSH host, a VM); copied there with each run.

Standard library only, Linux only: it runs under the host's own python3, which needs pytest and
nothing of farm. Usage: `python3 remote_runner.py WORKDIR`, where WORKDIR holds what the worker
uploaded: `bundle.tar.gz`, `farm_unpack.py` (farm/unpack.py), `plugin/farm_runner_plugin/` (the
runner plugin's package) and `request.json` ({"argv": [...], "env": {...}, "niceness": N}).

It unpacks the bundle into WORKDIR/project and starts pytest there, in its own session, with
its output in WORKDIR/output.log. On stdout it writes one line per record the plugin sends
(JSON, as the plugin wrote it), framed by `{"k": "pid", ...}` first and `{"k": "exit",
"code": N, "cpu_s": S, "peak_rss_bytes": B, "left": [[STARTED, ARGV], ...]}` last: the CPU seconds
of everything it reaped, the largest peak RSS among them (getrusage(RUSAGE_CHILDREN)), and the
processes the tests left running when pytest ended on its own (none after a stop). On stdin
it takes `stop GRACE [stacks]`: SIGUSR1 first when stacks are asked for (the plugin's
faulthandler writes every thread's stack), then TERM to pytest's group and every process
below this one, GRACE seconds, KILL. EOF on stdin (the worker went away) stops the run the
same way. This process is a child subreaper: whatever the tests started, daemons included, is
found and killed before it exits.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tarfile
import time
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
#: Set once a stop was obeyed: what was left then was killed by the stop, not left by a test.
STOPPED: list[bool] = []


def _subreaper() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _descendants(root: int) -> list[int]:
    """Every process below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _stop(proc: Any, grace: float, stacks: bool) -> None:
    STOPPED.append(True)
    if stacks and proc.poll() is None:
        _signal_all([proc.pid], signal.SIGUSR1)
        time.sleep(0.3)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            pass
        _signal_all(_descendants(os.getpid()), sig)
        if sig == signal.SIGTERM:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass


def _started(pid: int) -> float:
    """When process `pid` started, epoch seconds to a clock tick (as farm.processes.created_at)."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        ticks = int(fh.read().decode(errors="replace").rsplit(")", 1)[1].split()[19])
    since_boot = ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)


def _leftovers(exclude: int) -> list[list[object]]:
    """The processes below this one but `exclude` (pytest, ended): [started, command line] each."""
    found: list[list[object]] = []
    for pid in _descendants(os.getpid()):
        if pid == exclude:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
            if argv:  # a zombie has none
                found.append([_started(pid), " ".join(argv)])
        except (OSError, ValueError, IndexError):
            continue
    return sorted(found)


def _reap(pids: list[int]) -> None:
    """Wait for those of `pids` that are (reparented) children of this one, so their CPU counts."""
    deadline = time.monotonic() + 2.0
    waiting = list(pids)
    while waiting and time.monotonic() < deadline:
        for pid in list(waiting):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue  # not dead yet
            except ChildProcessError:  # not ours (its parent reaps it) or reaped already
                pass
            waiting.remove(pid)
        if waiting:
            time.sleep(0.01)


def _usage() -> dict[str, object]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "peak_rss_bytes": usage.ru_maxrss * 1024}


def _emit(obj: dict[str, object]) -> None:
    sys.stdout.buffer.write(json.dumps(obj).encode() + b"\n")
    sys.stdout.buffer.flush()


def relay(proc: Any, read_fd: int, stdin_fd: int) -> bytes | None:
    """Pass the plugin's record lines from `read_fd` on to stdout and obey the stop commands on
    `stdin_fd` until `proc` (a Popen, or anything with its pid, poll and wait) ended and every
    record was passed on; returns what was read from stdin past the last command line (None once
    stdin is closed)."""
    sources = [read_fd, stdin_fd]
    pending, commands = b"", b""
    while True:
        ready, _, _ = select.select(sources, [], [], 0.2)
        if read_fd in ready:
            chunk = os.read(read_fd, 1 << 20)
            if chunk:
                data = pending + chunk
                *lines, pending = data.split(b"\n")
                for line in lines:
                    sys.stdout.buffer.write(line + b"\n")
                sys.stdout.buffer.flush()
            else:
                sources.remove(read_fd)
        if stdin_fd in ready:
            chunk = os.read(stdin_fd, 4096)
            if not chunk:  # the worker is gone
                _stop(proc, 1.0, False)
                sources.remove(stdin_fd)
            commands += chunk
            while b"\n" in commands:
                line, commands = commands.split(b"\n", 1)
                words = line.decode(errors="replace").split()
                if words and words[0] == "stop":
                    _stop(proc, float(words[1]) if len(words) > 1 else 3.0, "stacks" in words[2:])
        if proc.poll() is not None and (read_fd not in sources or not select.select([read_fd], [], [], 0)[0]):
            # Ended, and every record it wrote was passed on (forked children may hold the pipe).
            return None if stdin_fd not in sources else commands


def main(workdir: str) -> int:
    _subreaper()
    with open(os.path.join(workdir, "request.json"), encoding="utf-8") as fh:
        request = json.load(fh)
    project = os.path.join(workdir, "project")
    # farm/unpack.py, uploaded beside this file: tarfile's "data" filter, also where Python has
    # none (before 3.11.4, as Debian 12's python3 in farm's VM image).
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from farm_unpack import unpack_safely

    try:
        with tarfile.open(os.path.join(workdir, "bundle.tar.gz")) as archive:
            unpack_safely(archive, project)
    except (tarfile.TarError, OSError) as exc:  # a member out of the project, a full disk: no run
        message = f"farm remote runner: the bundle cannot be unpacked: {exc}"
        with open(os.path.join(workdir, "output.log"), "w", encoding="utf-8") as log:
            log.write(message + "\n")
        sys.stderr.write(message + "\n")
        _emit({"k": "exit", "code": 3})  # as pytest's internal error: the run did not happen
        return 0
    read_fd, write_fd = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_", "CELERY_", "PYTHONPATH"))}
    env.update({str(k): str(v) for k, v in request["env"].items()})
    env["FARM_RECORD_FD"] = str(write_fd)
    niceness = int(request.get("niceness", 0))
    with open(os.path.join(workdir, "output.log"), "wb") as log:
        proc = subprocess.Popen(
            [str(a) for a in request["argv"]], cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, pass_fds=(write_fd,), start_new_session=True,
            preexec_fn=(lambda: os.nice(niceness)) if niceness > 0 else None,
        )
    os.close(write_fd)
    _emit({"k": "pid", "pid": proc.pid})
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    relay(proc, read_fd, stdin.fileno())
    left = [] if STOPPED else _leftovers(proc.pid)
    below = _descendants(os.getpid())
    _signal_all(below, signal.SIGKILL)  # what the tests left running
    _reap(below)
    _emit({"k": "exit", "code": proc.returncode, **_usage(), "left": left[:50]})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
