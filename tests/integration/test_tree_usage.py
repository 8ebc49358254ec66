"""The runner tree's sampling reads only the tree (/proc/PID/task/TID/children), and finds what
psutil's machine-wide walk finds: real processes, a grandchild included."""

from __future__ import annotations

import subprocess
import sys
import time

from farm.processes import descendants
from workers.backends.tree_usage import TreeUsage, tree_pids

HOLDER = "import time; b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); print(flush=True); time.sleep(60)"


def test_the_tree_walk_finds_every_descendant_psutil_finds_and_sums_their_memory() -> None:
    shell = subprocess.Popen(["bash", "-c", f"(sleep 60; true) & {sys.executable} -c \"{HOLDER}\" & wait"],
                             stdout=subprocess.PIPE)
    try:
        assert shell.stdout is not None
        shell.stdout.readline()  # the holder has touched its 64 MiB
        deadline = time.monotonic() + 30
        while len(descendants(shell.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        expected = {shell.pid, *(p.pid for p in descendants(shell.pid))}
        assert len(expected) == 4  # the shell, the subshell, its sleep, the holder
        assert set(tree_pids(shell.pid)) == expected
        usage = TreeUsage()
        assert usage.sample(shell.pid) >= 64 * 2**20
        assert usage.peak_rss_bytes >= 64 * 2**20
    finally:
        for proc in descendants(shell.pid):
            proc.kill()
        shell.kill()
        shell.wait()
    assert tree_pids(shell.pid) == []
