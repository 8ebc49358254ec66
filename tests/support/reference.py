"""Run plain pytest on a project and say, per node id, the one outcome farm must report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def expected_outcome(categories: list[str]) -> str:
    """Pytest may count a test twice (passed + error in teardown); farm reports the worse one.

    failed beats error (a failed call with a failing teardown is a failed test, as in pytest's
    JUnit XML), error beats everything else.
    """
    cats = set(categories)
    for worst in ("failed", "error"):
        if worst in cats:
            return worst
    if len(cats) != 1:
        raise AssertionError(f"unexpected category mix {sorted(cats)}")
    return cats.pop()


def run_reference(project: Path, pytest_args: list[str], out: Path) -> tuple[int, dict[str, str]]:
    """(pytest's exit code, {node id: expected farm outcome}) for a plain pytest run."""
    env = dict(os.environ, PYTHONPATH=str(HERE), FARM_REFERENCE_OUT=str(out))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "farm_reference_plugin", "-p", "no:cacheprovider", *pytest_args],
        cwd=project, env=env, capture_output=True, timeout=300,
    )
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["exitstatus"] == proc.returncode
    return proc.returncode, {nodeid: expected_outcome(cats) for nodeid, cats in data["tests"].items()}
