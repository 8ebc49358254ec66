"""Watch a `farm up` process tree from /proc while it runs: peak memory and CPU per role.

`farm up` starts its services in sessions of their own, so they are found by parent pid, not by
process group. Roles, by command line: `coordinator` (`-m coordinator`), `worker` (`-m workers`,
with every pool process and runner below it), `redis` (redis-server or valkey-server).
CPU of a role = the sum over its live processes of utime + stime + cutime + cstime: a runner that
exited and was waited for is in its parent's cutime, so differences between two snapshots are the
CPU spent in between.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY_S = 0.2


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(name))
    return tree


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [w.decode(errors="replace") for w in f.read().split(b"\0") if w]
    except OSError:
        return []


def role(argv: list[str]) -> str | None:
    joined = " ".join(argv)
    if "-m coordinator" in joined:
        return "coordinator"
    if "-m workers" in joined:
        return "worker"
    if argv and os.path.basename(argv[0]).split()[0] in ("redis-server", "valkey-server"):
        return "redis"
    return None


def _status_kb(pid: int, *names: str) -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in names:
                    found[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return found


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICKS  # utime stime cutime cstime


def services(root: int) -> dict[str, list[int]]:
    """Each role's processes below root: the service itself and all its descendants."""
    tree = _children()
    found: dict[str, list[int]] = {}

    def walk(pid: int, current: str | None) -> None:
        for child in tree.get(pid, []):
            mine = current or role(_cmdline(child))
            if mine:
                found.setdefault(mine, []).append(child)
            walk(child, mine)

    walk(root, None)
    return found


def cpu_by_role(root: int) -> dict[str, float]:
    return {name: sum(_cpu_s(pid) for pid in pids) for name, pids in services(root).items()}


def redis_info_memory(port: int) -> dict[str, int]:
    """used_memory and used_memory_peak from INFO memory (a raw RESP command: no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n")
            data = b""
            while not data.endswith(b"\r\n") or data.count(b"\r\n") < 2:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return {}
    out: dict[str, int] = {}
    for line in data.decode(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key in ("used_memory", "used_memory_peak", "used_memory_rss"):
            out[key] = int(value)
    return out


class Sampler:
    """A thread that samples VmRSS/VmHWM of each role every SAMPLE_EVERY_S, for use in a with-block."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_kb: dict[str, int] = {}  # role -> the largest VmHWM of any one of its processes
        self.peak_sum_rss_kb: dict[str, int] = {}  # role -> the largest sum of VmRSS over its processes
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.sample()  # VmHWM is a high-water mark: one read at the end catches any peak in between

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.sample()

    def sample(self) -> None:
        for name, pids in services(self.root).items():
            total = 0
            for pid in pids:
                kb = _status_kb(pid, "VmHWM", "VmRSS")
                total += kb.get("VmRSS", 0)
                self.peak_kb[name] = max(self.peak_kb.get(name, 0), kb.get("VmHWM", 0))
            self.peak_sum_rss_kb[name] = max(self.peak_sum_rss_kb.get(name, 0), total)
        self.samples += 1

    def as_json(self) -> dict[str, Any]:
        mb = 1024.0
        return {
            "samples": self.samples,
            "peak_hwm_mb": {k: round(v / mb, 1) for k, v in self.peak_kb.items()},
            "peak_sum_rss_mb": {k: round(v / mb, 1) for k, v in self.peak_sum_rss_kb.items()},
        }
