"""The runner's per-test path kept cheap: a plain pass skips the teststatus hook only where pytest's
own plugins are its only implementations, and the local backend reads a runner's pipe in gulps."""

from __future__ import annotations

import fcntl
import os
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_core_runner_plugin import run_pytest

from workers.backends import local
from workers.pytest_plugin.run_mode import only_pytest_status

CUSTOM = "tests/test_c.py::test_custom"
PLAIN = "tests/test_c.py::test_plain"


def _project(root: Path, conftest: str | None) -> Path:
    tests = "def test_custom():\n    pass\n\n\ndef test_plain():\n    pass\n"
    files = {"pytest.ini": "[pytest]\n", "tests/test_c.py": tests}
    if conftest is not None:
        files["tests/conftest.py"] = conftest
    for rel, text in files.items():
        (root / "project" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "project" / rel).write_text(textwrap.dedent(text), encoding="utf-8")
    local.install_plugin(root / "plugin")
    return root


def test_a_conftest_teststatus_hook_still_decides_a_passing_tests_category(tmp_path: Path) -> None:
    # A conftest.py of a test directory (loaded during collection, after the plugin is configured)
    # gives a passing call a category of its own: the plugin must ask the hook, not assume "passed".
    conftest = """
        def pytest_report_teststatus(report, config):
            if report.when == "call" and report.passed and report.nodeid.endswith("test_custom"):
                return "xpassed", "X", "XPASS"
    """
    run = run_pytest(_project(tmp_path, conftest), "run", [CUSTOM, PLAIN], "-q")
    tests = run.tests()
    assert tests[CUSTOM]["phases"]["call"]["cat"] == "xpassed"
    assert not tests[CUSTOM].get("compact"), "not sent as a plain pass"
    assert tests[PLAIN].get("compact"), "the hook's None for the other test leaves it a plain pass"


def test_only_pytest_status_is_true_for_pytest_alone_and_false_with_a_hook_of_another_plugin() -> None:
    def impl(module: str) -> Any:
        function = lambda report, config: None  # noqa: E731
        function.__module__ = module
        return SimpleNamespace(function=function)

    def config(*modules: str) -> Any:
        hook = SimpleNamespace(get_hookimpls=lambda: [impl(m) for m in modules])
        return SimpleNamespace(hook=SimpleNamespace(pytest_report_teststatus=hook))

    assert only_pytest_status(config("_pytest.runner", "_pytest.skipping", "_pytest.terminal"))
    assert not only_pytest_status(config("_pytest.runner", "conftest", "_pytest.terminal"))
    assert not only_pytest_status(SimpleNamespace(hook=None)), "an unknown pluggy: always ask the hook"


def test_the_record_pipe_is_enlarged_where_the_system_allows() -> None:
    read_fd, write_fd = local.record_pipe()
    try:
        size = fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ)
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        assert size >= min(local.PIPE_BYTES, limit)
    finally:
        os.close(read_fd)
        os.close(write_fd)


class _Clock:
    """time for local.LocalRun.read_lines: monotonic stands still unless a sleep moves it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_read_lines_lets_lines_gather_after_a_read_that_found_some(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(local, "time", clock)
    read_fd, write_fd = os.pipe()
    run = local.LocalRun.__new__(local.LocalRun)  # only the reading half: no process
    run.read_fd, run.buffer, run.eof, run.last_read, run.on_begun = read_fd, b"", False, 0.0, None
    os.set_blocking(read_fd, False)
    try:
        os.write(write_fd, b"S0 1.0\n")
        assert run.read_lines(timeout=0.05) == [b"S0 1.0"]
        assert clock.sleeps == [], "the first read does not wait"
        os.write(write_fd, b"P0 0.0 0.0 0.0\nS1 2.0\n")
        assert run.read_lines(timeout=0.05) == [b"P0 0.0 0.0 0.0", b"S1 2.0"]
        assert clock.sleeps == [pytest.approx(local.READ_INTERVAL_S)], "the next read waits for more lines to gather"
    finally:
        os.close(read_fd)
        os.close(write_fd)
