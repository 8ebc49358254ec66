"""Faults inside the runner, injected for real: a hung test, os._exit, a segfault, a forked daemon."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
from support.helpers import LEAN, assert_nothing_left_of, copy_fixture, farm

from farm.report.schema import load_report


def _outcomes(report: dict) -> dict[str, str]:
    ids = [t["id"] for t in report["tests"]]
    assert len(ids) == len(set(ids)), "a test was reported twice"
    return {t["id"].split("::")[-1]: t["outcome"] for t in report["tests"]}


def test_hung_crashed_and_daemon_forking_tests_are_recorded_and_the_rest_runs(tmp_path: Path) -> None:
    project = copy_fixture("faults", tmp_path)
    pid_file = tmp_path / "daemon.pid"
    report_path, junit_path = tmp_path / "r.json", tmp_path / "r.xml"
    started = time.monotonic()
    result = farm("submit-suite", str(project), "--local-workers", "1", "--test-timeout", "2s",
                  "--json", str(report_path), "--junit-xml", str(junit_path), "--", *LEAN, "tests/test_faults.py",
                  env={"FARMTEST_DAEMON_PID_FILE": str(pid_file)})
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    report = load_report(report_path)
    assert _outcomes(report) == {
        "test_before": "passed",
        "test_hangs": "timeout",
        "test_after_hang": "passed",
        "test_exits_the_runner": "crashed",
        "test_after_exit": "passed",
        "test_segfaults": "crashed",
        "test_after_segfault": "passed",
        "test_forks_a_daemon": "passed",
        "test_last": "passed",
    }
    assert elapsed < 120, "the hung test was not stopped"  # it sleeps 600 s
    tests = {t["id"].split("::")[-1]: t for t in report["tests"]}
    # The timeout carries the stack of where the test hung.
    assert "test ran past --test-timeout 2s" in tests["test_hangs"]["message"]
    assert 'test_faults.py", line 13 in test_hangs' in tests["test_hangs"]["longrepr"]
    assert "exit code 3" in tests["test_exits_the_runner"]["message"]
    assert "SIGSEGV" in tests["test_segfaults"]["message"]
    assert report["summary"]["timeout"] == 1 and report["summary"]["crashed"] == 2
    # Each crash was run once more; with one worker only, nobody can say whether test or worker.
    for name in ("test_exits_the_runner", "test_segfaults"):
        assert [a["outcome"] for a in tests[name]["attempts"]] == ["crashed", "crashed"]
        assert tests[name]["blame"] == "unknown"
    assert all(t["attempts"] for t in report["tests"]), "a test has no attempt recorded"
    assert_nothing_left_of(report["suite_id"])
    # JUnit: errors with a clear message.
    xml = junit_path.read_text(encoding="utf-8")
    assert 'type="farm.timeout" message="timeout: test ran past --test-timeout 2s"' in xml
    assert 'type="farm.crashed"' in xml
    # The summary names them.
    assert "TIMEOUT tests/test_faults.py::test_hangs" in result.stdout
    assert "1 timeout, 2 crashed" in result.stdout
    # The double-forked daemon (its own session) did not survive its test.
    daemon = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while psutil.pid_exists(daemon) and psutil.Process(daemon).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"daemon {daemon} survived"
        time.sleep(0.1)


def test_a_runner_that_keeps_dying_is_given_up_after_a_bounded_number_of_restarts(tmp_path: Path) -> None:
    project = copy_fixture("faults", tmp_path)
    report_path = tmp_path / "r.json"
    result = farm("submit-suite", str(project), "--local-workers", "1", "--json", str(report_path), "--",
                  *LEAN, "tests/test_crash_loop.py")
    assert result.returncode == 1, result.stderr
    report = load_report(report_path)
    outcomes = [t["outcome"] for t in report["tests"]]
    # One runner, then 3 new ones (MAX_RUNNER_RESTARTS): 4 crashed, the last 2 never ran.
    assert outcomes == ["crashed"] * 4 + ["not_run"] * 2
    assert "runner died 4 times" in report["tests"][-1]["message"]
    assert report["assignments"][0]["state"] == "failed"
    assert_nothing_left_of(report["suite_id"])
