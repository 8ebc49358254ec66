"""Run benchmark commands as bounded, timed process groups that never outlive the bench."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# Lines of a command's output kept in the results for diagnosis.
TAIL_LINES = 15


@dataclass
class Timing:
    """One timed command: what ran, how long it took, how it ended."""

    label: str
    command: list[str]
    cwd: str
    wall_s: float | None = None
    cpu_s: float | None = None  # user + system of the command and the children it waited for
    exit_code: int | None = None
    timed_out: bool = False
    error: str | None = None
    summary: str | None = None
    stray_processes_killed: bool = False
    output_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.exit_code == 0 and not self.timed_out


def run_timed(
    label: str,
    command: list[str],
    cwd: Path,
    timeout_s: float,
    log: Path,
    env: dict[str, str] | None = None,
) -> Timing:
    """Run command in its own session, timing wall clock from spawn to exit.

    stdout and stderr go to `log`. On timeout, or on any exception in this
    process (Ctrl-C included), the whole process group gets SIGKILL before
    this returns or re-raises, so xdist workers and the like die with it.
    """
    timing = Timing(label=label, command=list(command), cwd=str(cwd))
    with open(log, "wb") as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            timing.error = f"cannot start {command[0]!r}: {exc.strerror or exc}"
            return timing
        try:
            timing.exit_code = proc.wait(timeout=timeout_s)
            timing.wall_s = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            timing.cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        except subprocess.TimeoutExpired:
            timing.timed_out = True
            timing.error = f"timed out after {timeout_s:g} s; process group killed"
            kill_group(proc.pid)
            timing.exit_code = proc.wait()
        except BaseException:
            kill_group(proc.pid)
            proc.wait()
            raise
    # Anything still in the group after the leader exited is a leak: kill it.
    timing.stray_processes_killed = kill_group(proc.pid)
    lines = log.read_text(errors="replace").splitlines()
    timing.output_tail = lines[-TAIL_LINES:]
    timing.summary = _last_nonblank(lines)
    if timing.error is None and timing.exit_code != 0:
        timing.error = f"exit code {timing.exit_code}"
    return timing


def kill_group(pgid: int) -> bool:
    """SIGKILL every process in the group; True if any was there to kill."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _last_nonblank(lines: list[str]) -> str | None:
    """pytest's summary line, without the `=====` padding it has outside -q."""
    for line in reversed(lines):
        text = line.strip().strip("=").strip()
        if text:
            return text
    return None
