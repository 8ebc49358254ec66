"""The suite deadline, for real: what ran is kept, what runs is stopped, the rest is not_run."""

from __future__ import annotations

import re
import time
from pathlib import Path

from support.helpers import FIXTURES, LEAN, assert_nothing_left_of, copy_fixture, farm, running_cluster

from farm.cluster import ClusterSpec
from farm.report.schema import load_report


def test_the_suite_deadline_stops_everything_and_reports_what_finished(tmp_path: Path) -> None:
    project = copy_fixture("slow", tmp_path)  # 40 tests of 0.5 s: 10 s on 2 slots
    report_path = tmp_path / "r.json"
    started = time.monotonic()
    # 7 s from submission: the embedded farm's start-up comes out of it (seconds on a loaded
    # machine, where 4 s left no test time at all), and 10 s of tests still cannot all fit.
    result = farm("submit-suite", str(project), "--local-workers", "2", "--deadline", "7s", "--json",
                  str(report_path), "--", *LEAN, "tests")
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Interrupted: suite deadline reached" in result.stdout
    report = load_report(report_path)
    assert report["status"] == "deadline" and report["exit_code"] == 2
    ids = [t["id"] for t in report["tests"]]
    assert len(ids) == len(set(ids)) == 40, "every collected test appears exactly once"
    summary = report["summary"]
    assert summary["passed"] >= 1 and summary["not_run"] >= 1
    assert summary["passed"] + summary["timeout"] + summary["not_run"] == 40
    for test in report["tests"]:
        if test["outcome"] == "timeout":  # it was running at the deadline: stopped, with its stack
            assert test["message"] == "stopped at the suite deadline"
            assert "test_sleeps" in test["longrepr"]
        if test["outcome"] == "not_run":
            assert "deadline" in test["message"]
    assert elapsed < 30, "the deadline did not stop the suite"  # 7 s + teardown
    assert_nothing_left_of(report["suite_id"])


def test_a_bad_deadline_is_a_usage_error(tmp_path: Path) -> None:
    result = farm("submit-suite", str(copy_fixture("slow", tmp_path)), "--deadline", "-5s")
    assert result.returncode == 4
    assert "--deadline: a duration must be positive" in result.stderr


def test_an_assignment_past_its_own_deadline_hands_its_unstarted_tests_back(tmp_path: Path,
                                                                             monkeypatch) -> None:
    """With recorded durations, each assignment gets its own deadline (3 × expected, at least
    FARM_ASSIGNMENT_DEADLINE_MIN_S): a test that hangs is stopped there, well before the suite's
    deadline, and the tests after it run again in a new attempt."""
    monkeypatch.setenv("FARM_ASSIGNMENT_DEADLINE_MIN_S", "3")  # the cluster's coordinator reads it
    monkeypatch.setenv("FARMTEST_HANG_FILE", str(tmp_path / "hang"))  # the runners read it
    project = copy_fixture("overtime", tmp_path)
    with running_cluster(ClusterSpec(workers=1, slots=1)) as cluster:
        first = farm("submit-suite", str(project), "--broker", cluster.broker_url, "--", *LEAN, "tests")
        assert first.returncode == 0, first.stdout + first.stderr  # durations recorded: 0.2 s each
        (tmp_path / "hang").write_text("")
        report_path = tmp_path / "r.json"
        second = farm("submit-suite", str(project), "--broker", cluster.broker_url, "--deadline", "5m",
                      "--json", str(report_path), "--", *LEAN, "tests")
    assert second.returncode == 1, second.stdout + second.stderr
    report = load_report(report_path)
    assert report["status"] == "finished", "the suite deadline was not what stopped it"
    tests = {t["id"].split("::")[-1]: t for t in report["tests"]}
    assert len(report["tests"]) == len(tests) == 12, "every collected test appears exactly once"
    hung = tests["test_quick[3]"]
    assert hung["outcome"] == "timeout" and "assignment's deadline" in hung["message"]
    # The stack shows where it hung: the fixture's `time.sleep(120)` line, in test_quick.
    fixture = (FIXTURES / "overtime" / "tests" / "test_overtime.py").read_text().splitlines()
    hang_line = next(n for n, line in enumerate(fixture, 1) if "time.sleep(120)" in line)
    assert re.search(rf"test_overtime\.py\W+line {hang_line}\b.*test_quick", hung["longrepr"]), hung["longrepr"]
    assert [t["outcome"] for name, t in tests.items() if name != "test_quick[3]"] == ["passed"] * 11
    handed = [a for a in report["assignments"] if a["state"] == "handback"]
    assert len(handed) == 1
    again = [a for a in report["assignments"] if a["id"] == handed[0]["id"] and a["attempt"] == 2]
    assert again and again[0]["state"] == "done"
    for i in range(4, 12):  # unstarted at the deadline: run by the second attempt
        assert [a["attempt"] for a in tests[f"test_quick[{i}]"]["attempts"]] == [2]
    assert_nothing_left_of(report["suite_id"])  # the hung test's runner was killed
