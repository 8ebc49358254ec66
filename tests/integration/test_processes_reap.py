"""A subreaper kills and reaps the orphans below it, and leaves its own Popen children's status alone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, os, subprocess, sys, time
    from farm.processes import become_subreaper, descendants, kill_and_reap_new

    become_subreaper()
    own = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1); raise SystemExit(7)"])
    before = {p.pid for p in descendants()}
    # A runner that leaves two orphans: a plain Popen, and one in a session of its own.
    leave = "import subprocess; subprocess.Popen(['sleep', '60']); subprocess.Popen(['setsid', 'sleep', '60'])"
    subprocess.run([sys.executable, "-c", leave], check=True)
    deadline = time.monotonic() + 10
    new = []
    while time.monotonic() < deadline:
        new = [p for p in descendants() if p.pid not in before]
        if len(new) == 2 and all(p.name() == "sleep" for p in new):
            break
        time.sleep(0.05)
    orphans = sorted(p.pid for p in new)
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
