"""The suite deadline, for real: what ran is kept, what runs is stopped, the rest is not_run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from support.helpers import LEAN, copy_fixture, farm


def test_the_suite_deadline_stops_everything_and_reports_what_finished(tmp_path: Path) -> None:
    project = copy_fixture("slow", tmp_path)  # 40 tests of 0.5 s: 10 s on 2 slots
    report_path = tmp_path / "r.json"
    started = time.monotonic()
    result = farm("submit-suite", str(project), "--local-workers", "2", "--deadline", "4s", "--json",
                  str(report_path), "--", *LEAN, "tests")
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Interrupted: suite deadline reached" in result.stdout
    report = json.loads(report_path.read_text(encoding="utf-8"))
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
    assert elapsed < 30, "the deadline did not stop the suite"  # 4 s + start-up and teardown


def test_a_bad_deadline_is_a_usage_error(tmp_path: Path) -> None:
    result = farm("submit-suite", str(copy_fixture("slow", tmp_path)), "--deadline", "-5s")
    assert result.returncode == 4
    assert "--deadline: a duration must be positive" in result.stderr
