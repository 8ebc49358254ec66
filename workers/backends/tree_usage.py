"""What a local runner's process tree uses: resident memory sampled while it runs, CPU from the reaped children."""

from __future__ import annotations

import os
import resource

import psutil

from farm.processes import created_at, descendants, peak_rss


def children_cpu_s() -> float:
    """CPU seconds of every child this process has waited for (and of theirs): getrusage(RUSAGE_CHILDREN)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class TreeUsage:
    """The resident memory of a runner (`pid`) and its descendants, sampled; the CPU of what this
    process reaped between `begin` and `end` (the runner, its waited-for children, the orphans this
    subreaper reaps), so children that exited between samples count."""

    def __init__(self) -> None:
        self.peak_rss_bytes = 0
        self.cpu_s = 0.0
        self._cpu_before = 0.0

    def begin(self) -> None:
        """Before the runner starts (nothing else this process started is reaped until `end`)."""
        self._cpu_before = children_cpu_s()

    def sample(self, pid: int) -> int:
        """The tree's resident memory now (bytes; 0 once the runner is gone); the peak keeps the
        highest of the sums and of the runner's own high-water mark (which a spike between two
        samples raises too)."""
        pids = tree_pids(pid)
        if not pids:
            return 0
        rss = sum(_rss(p) for p in pids)
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss, peak_rss(pid))
        return rss

    def end(self) -> None:
        """Once the runner and what it left were reaped."""
        self.cpu_s = max(0.0, children_cpu_s() - self._cpu_before)


_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_pids(pid: int) -> list[int]:
    """`pid` and every process below it (empty if it is gone), from /proc/PID/task/TID/children:
    only the tree is read, where psutil's children(recursive=True) reads every process on the
    machine (1.3 ms a sample with 90 processes, growing with them; this: ~0.03 ms). psutil's
    walk where the kernel has no children files."""
    if not os.path.exists(f"/proc/{pid}"):
        return []
    if not os.path.exists(f"/proc/{pid}/task/{pid}/children"):
        return [pid, *(p.pid for p in descendants(pid))]
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as f:
                    stack.extend(int(child) for child in f.read().split())
            except (OSError, ValueError):
                continue
    return found


def _rss(pid: int) -> int:
    """A process's resident memory in bytes (/proc/PID/statm), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def leftovers(before: set[int], exclude: int) -> list[tuple[float, str]]:
    """This process's descendants that are not in `before` (nor `exclude`, the runner) and still
    alive: (when each started, its command line), oldest first."""
    found = []
    for proc in descendants():
        if proc.pid in before or proc.pid == exclude:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            found.append((created_at(proc), " ".join(proc.cmdline()) or proc.name()))
        except psutil.Error:
            continue
    return sorted(found)
