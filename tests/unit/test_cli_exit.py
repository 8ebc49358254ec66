"""The `farm` command exits without the interpreter's last garbage collection (farm.cli: objects
left are frozen first), and its atexit handlers still run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import atexit, gc, sys
atexit.register(lambda: print("frozen" if gc.get_freeze_count() > 0 else "not frozen"))
sys.argv = ["farm", "--version"]
from farm.cli import entry
entry()
"""


def test_the_command_exits_with_what_is_left_frozen_and_its_atexit_handlers_run() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "frozen"
    assert out.stdout.startswith("farm, version")
