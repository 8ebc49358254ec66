"""Linux process plumbing shared by the embedded farm and the local backend: lifetimes, kills, start times and peaks."""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Container, Iterable

import psutil

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, value)
    except OSError:  # not Linux (or no libc): the guarantees below do not hold, nothing breaks
        pass


def die_with_parent() -> None:
    """In a child before exec: get SIGKILL if the process that started it dies."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def become_subreaper() -> None:
    """Orphans below this process are reparented to it (not to init), so they can be found."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to a process group that may be gone already."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_all(procs: Iterable[psutil.Process | int], sig: int) -> None:
    """Send `sig` to each process (or pid), skipping those that are gone."""
    for proc in procs:
        try:
            (proc if isinstance(proc, psutil.Process) else psutil.Process(proc)).send_signal(sig)
        except psutil.Error:
            pass


def kill_and_reap_new(before: Container[int], timeout: float = 5.0) -> int:
    """SIGKILL every descendant of this process whose pid is not in `before`, and wait for each
    that is (or becomes, once its parent dies) a child of this process; how many were reaped.

    For a subreaper: orphans of what it started were reparented to it, and only it can reap
    them (else each stays a zombie for the process's life). It waits for those pids only
    (waitpid, never -1), so the children it had before, which Popen objects may own, keep
    their exit status. A child it started itself after `before` was taken is killed and reaped
    like an orphan: call this when nothing of its own runs but what is to be cleared away."""
    me = os.getpid()
    reaped = 0
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in descendants() if p.pid not in before]
        if not left:
            return reaped
        signal_all(left, signal.SIGKILL)
        for proc in left:
            try:
                if proc.ppid() != me:
                    continue  # its parent reaps it, or it is reparented here and reaped next round
            except psutil.Error:
                continue
            try:
                pid, _ = os.waitpid(proc.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already (by a Popen that owned it)
                continue
            reaped += pid == proc.pid
        if time.monotonic() > deadline:
            return reaped
        time.sleep(0.005)


def descendants(pid: int | None = None) -> list[psutil.Process]:
    """Every process below `pid` (default: this process); empty if it is gone."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def working_in(root: str) -> list[psutil.Process]:
    """Processes whose working directory is `root` or below it."""
    found = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd") or ""
        if cwd == root or cwd.startswith(root + os.sep):
            found.append(proc)
    return found


def created_at(proc: psutil.Process) -> float:
    """When `proc` started, as an epoch time to a clock tick: psutil's create_time counts from the
    boot time in whole seconds (/proc/stat's btime), up to a second off time.time(); this counts
    back from now on the clock the kernel stamps starts with (CLOCK_BOOTTIME)."""
    since_boot = proc.create_time() - psutil.boot_time()  # the start's ticks since boot, exactly
    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)


def peak_rss(pid: int) -> int:
    """The highest resident memory process `pid` has had (Linux's VmHWM, bytes; 0 if unknown)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
