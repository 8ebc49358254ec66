"""Fixtures shared by every test tier, and the checks that tests leave nothing behind."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from support.helpers import ROOT, need

collect_ignore = ["fixtures", "support"]

SESSION_MARK = "FARMTEST_SESSION"
os.environ[SESSION_MARK] = uuid.uuid4().hex
# Everything this session and the farms it starts put in temp dirs goes in a private one, so the
# leftover check below sees only our own leftovers (not those of other sessions on the machine).
SESSION_TMP = Path(tempfile.mkdtemp(prefix="farm-tests-"))
os.environ["TMPDIR"] = str(SESSION_TMP)
tempfile.tempdir = None
TIERS = ("unit", "integration", "e2e", "system", "faults")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier, from the directory it lives in."""
    for item in items:
        parts = Path(str(item.fspath)).resolve().relative_to(ROOT / "tests").parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


def _ours() -> list[psutil.Process]:
    """Processes started by this test session (they inherit its marker), except itself."""
    mark = os.environ[SESSION_MARK]
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(SESSION_MARK) == mark:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _cluster_dirs() -> set[str]:
    return {p.name for p in SESSION_TMP.glob("farm-cluster-*")}


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """Fail the session if tests leave processes or cluster directories behind."""
    before = _cluster_dirs()
    yield
    deadline = time.monotonic() + 10
    while _ours() and time.monotonic() < deadline:
        time.sleep(0.2)
    stray = [" ".join(p.cmdline()[:4]) for p in _ours() if p.is_running()]
    for p in _ours():
        try:
            p.kill()
        except psutil.Error:
            pass
    leftover = _cluster_dirs() - before
    assert not stray, f"tests left processes running: {stray}"
    assert not leftover, f"tests left cluster directories: {sorted(leftover)}"


def pytest_unconfigure(config: pytest.Config) -> None:
    """The session's private temp dir goes in every case (--collect-only runs no fixture)."""
    shutil.rmtree(SESSION_TMP, ignore_errors=True)


@pytest.fixture(autouse=True)
def private_cache_home(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's farm commands keep the embedded farm's history in a cache of their own: never the
    user's, and never one test's durations steering another test's split."""
    cache = Path(tempfile.mkdtemp(prefix="xdg-cache-", dir=SESSION_TMP))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("FARM_HISTORY_DIR", raising=False)
    return cache


@pytest.fixture(scope="session")
def redis_server_bin() -> str:
    path = shutil.which("redis-server")
    need(path is not None, "redis-server is not installed")
    assert path is not None
    return path
