"""Runs pytest on a remote host for a worker (an SSH host, a VM); copied there with each run.

Standard library only, Linux only: it runs under the host's own python3, which needs pytest and
nothing of farm. Usage: `python3 remote_runner.py WORKDIR`, where WORKDIR holds what the worker
uploaded: `bundle.tar.gz`, `farm_unpack.py` (farm/unpack.py), `plugin/farm_runner_plugin/` (the
runner plugin's package) and `request.json` ({"argv": [...], "env": {...}, "niceness": N}).

It unpacks the bundle into WORKDIR/project and starts pytest there, in its own session, with
its output in WORKDIR/output.log. On stdout it writes one line per record the plugin sends
(JSON, as the plugin wrote it), framed by `{"k": "pid", ...}` first and `{"k": "exit",
"code": N}` last. On stdin it takes `stop GRACE [stacks]`: SIGUSR1 first when stacks are asked
for (the plugin's faulthandler writes every thread's stack), then TERM to pytest's group and
every process below this one, GRACE seconds, KILL. EOF on stdin (the worker went away) stops
the run the same way. This process is a child subreaper: whatever the tests started, daemons
included, is found and killed before it exits.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import tarfile
import time
from typing import Any

PR_SET_CHILD_SUBREAPER = 36


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
    _signal_all(_descendants(os.getpid()), signal.SIGKILL)  # what the tests left running
    _emit({"k": "exit", "code": proc.returncode})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
