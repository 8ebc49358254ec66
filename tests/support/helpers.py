"""Helpers for integration and end-to-end tests: fixture projects, the farm command, CI rules."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from farm.cluster import ClusterSpec, LocalCluster

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
FARM = str(Path(sys.executable).parent / "farm")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: Leaves the hypothesis pytest plugin (installed in our venv for our own tests) out of the
#: suites that farm runs in tests: it adds ~1 s to every pytest start-up here.
LEAN = ("-p", "no:hypothesispytest")


def need(condition: bool, why: str) -> None:
    """A service a test needs and cannot have: a failure in CI, a skip elsewhere."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required in CI: {why}")
        pytest.skip(why)


@functools.cache
def netns_usable() -> str:
    """Why network namespaces cannot be made and entered here, or "" when they can: root and
    iproute2, and `ip netns exec` working, which it does not in a chroot whose / is not a mount
    point ("mount --make-rslave /" failed: Invalid argument), e.g. ../shared/tools/fresh-machine's."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    if os.geteuid() != 0 or not Path(ip).exists():
        return "network namespaces need root and iproute2"
    name = f"farmprobe-{os.getpid()}"
    made = subprocess.run([ip, "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add fails here: {made.stderr.strip()}"
    try:
        entered = subprocess.run([ip, "netns", "exec", name, "true"], capture_output=True, text=True)
        return "" if entered.returncode == 0 else f"ip netns exec fails here: {entered.stderr.strip()}"
    finally:
        subprocess.run([ip, "netns", "del", name], capture_output=True)


def copy_fixture(name: str, dest_root: Path) -> Path:
    """A private copy of a fixture project (so no parent ini file or cache leaks in)."""
    dest = dest_root / name
    shutil.copytree(FIXTURES / name, dest)
    return dest


def farm(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `farm` command as a user would (no FARM_* variables unless given)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    return subprocess.run([FARM, *args], env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@contextlib.contextmanager
def running_cluster(spec: ClusterSpec) -> Iterator[LocalCluster]:
    """A real farm on this machine, ready (every worker registered), stopped afterwards."""
    cluster = LocalCluster(spec)
    cluster.start()
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()


def runner_mode(proc: psutil.Process) -> str | None:
    """What a local runner process does, "collect" or "run" (None: it is no runner, or gone). Told
    by its directory, CACHE/runs/LABEL-XXXXXXXX/project (LABEL: SUITE-collect, or ID-aNNN-runnerN),
    not by its command line: a pre-started runner's stays `python .../pytest_standby.py`."""
    try:
        cwd = Path(proc.cwd())
    except psutil.Error:
        return None
    if cwd.name != "project" or cwd.parent.parent.name != "runs":
        return None
    return "collect" if re.search(r"-collect-[0-9a-f]{8}$", cwd.parent.name) else "run"


def assert_nothing_left_of(suite_id: str, timeout: float = 10) -> None:
    """No process still works in one of the suite's run directories (runners, what tests started).

    Run directories are named after the assignment, whose id starts with the suite's."""
    deadline = time.monotonic() + timeout
    left: list[str] = []
    while time.monotonic() < deadline:
        left = []
        for proc in psutil.process_iter(["pid", "cwd", "cmdline"]):
            try:
                if suite_id in (proc.info["cwd"] or ""):
                    left.append(f"{proc.info['pid']} {' '.join(proc.info['cmdline'] or [])[:200]}")
            except psutil.Error:
                continue
        if not left:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of suite {suite_id} left behind: {left}")


def submit_no_wait(broker: str, project: Path, *pytest_args: str) -> str:
    """Submit a project's suite to a running farm (the lean plugin set, `tests` by default) and
    return its id without waiting."""
    submit = farm("submit-suite", str(project), "--broker", broker, "--no-wait", "--", *LEAN,
                  *(pytest_args or ("tests",)))
    assert submit.returncode == 0, submit.stderr
    return submit.stdout.strip()


def stderr_lines_until(proc: subprocess.Popen[str], pattern: str, count: int, timeout: float) -> list[str]:
    """Lines of a running command's stderr until `count` of them match `pattern` (progress lines
    redrawn with \\r count one each); fails if it takes longer than `timeout` or the command exits."""
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while sum(1 for line in lines if re.search(pattern, line)) < count:
        assert time.monotonic() < deadline, f"no {count} lines matching {pattern!r} in: {lines[-20:]}"
        assert proc.poll() is None, f"the command exited early: {lines[-20:]}"
        if sel.select(timeout=0.5):
            lines += proc.stderr.readline().replace("\r", "\n").splitlines()
    return lines
