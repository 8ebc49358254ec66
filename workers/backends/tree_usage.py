"""What a local runner's process tree uses: resident memory sampled while it runs, CPU from the reaped children."""

from __future__ import annotations

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
        try:
            root = psutil.Process(pid)
            rss = root.memory_info().rss
        except psutil.Error:
            return 0
        for proc in descendants(pid):
            try:
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss, peak_rss(pid))
        return rss

    def end(self) -> None:
        """Once the runner and what it left were reaped."""
        self.cpu_s = max(0.0, children_cpu_s() - self._cpu_before)


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
