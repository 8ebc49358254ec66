"""A subreaper kills and reaps the orphans below it, and leaves its own Popen children's status alone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, os, subprocess, time
    import psutil
    from farm.processes import become_subreaper, descendants, kill_and_reap_new

    become_subreaper()
    own = subprocess.Popen(["sh", "-c", "sleep 1; exit 7"])  # a Popen this process still owns
    before = {p.pid for p in descendants()}
    runner = subprocess.Popen(["sh", "-c", "sleep 60 & (setsid sleep 60 &) ; exit 0"])  # leaves two orphans
    runner.wait()
    deadline = time.monotonic() + 10
    while len([p for p in descendants() if p.name() == "sleep"]) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    orphans = sorted(p.pid for p in descendants() if p.pid not in before)
    reaped = kill_and_reap_new(before)
    left = [(p.pid, p.status()) for p in descendants() if p.pid not in before]
    print(json.dumps({"orphans": orphans, "reaped": reaped, "left": left, "own": own.wait()}))
""")


def test_orphans_are_killed_and_reaped_and_an_owned_popen_keeps_its_exit_status() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert len(result["orphans"]) == 2, result
    assert result["reaped"] == 2 and result["left"] == [], result
    assert result["own"] == 7, "reaping took the exit status of a child a Popen owns"
