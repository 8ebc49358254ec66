"""Failure analysis through `farm submit-suite` on the embedded farm: the JSON's `analysis` and the
summary's failure-analysis block classify a suite with one test of each kind of failure."""

from __future__ import annotations

import json
from pathlib import Path

from support.helpers import LEAN, copy_fixture, farm

from farm.report.schema import load_report

PREFIX = "tests/test_kinds.py::"


def test_every_kind_of_failure_is_classified_in_the_json_and_the_summary(tmp_path: Path) -> None:
    project = copy_fixture("analysis", tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    report_path = tmp_path / "r.json"
    result = farm("submit-suite", str(project), "--local-workers", "2", "--rerun-failures", "1",
                  "--test-timeout", "2s", "--json", str(report_path), "-v", "--", *LEAN, "tests",
                  env={"FARMTEST_FLAKY_DIR": str(state)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    report = load_report(report_path)
    classes = {c["class"]: c for c in report["analysis"]["classes"]}
    assert [c["class"] for c in report["analysis"]["classes"]] == [
        "failed", "setup_teardown_error", "timeout", "crashed", "flaky"]
    assert classes["failed"]["tests"] == [PREFIX + "test_fails"]
    assert classes["setup_teardown_error"]["tests"] == [PREFIX + "test_setup_error", PREFIX + "test_teardown_error"]
    assert classes["setup_teardown_error"]["detail"] == {"phases": {"setup": 1, "teardown": 1}}
    assert classes["timeout"]["tests"] == [PREFIX + "test_hangs"]
    assert classes["timeout"]["detail"] == {"kinds": {"test_timeout": 1}}
    assert classes["crashed"]["tests"] == [PREFIX + "test_crashes"]
    assert classes["crashed"]["detail"] == {"blame": {"unknown": 1}}  # the embedded farm is one worker
    assert classes["flaky"]["tests"] == [PREFIX + "test_flaky"]
    assert all(c["count"] == len(c["tests"]) for c in classes.values())
    # The file holds it as written, for readers of the JSON without farm.
    assert json.loads(report_path.read_text(encoding="utf-8"))["analysis"] == report["analysis"]
    lines = result.stdout.splitlines()
    line = ("failures: 1 test failure, 2 setup/teardown errors, 1 timeout, 1 crash (blame: unknown), 1 flaky")
    assert line in lines, result.stdout
    at = lines.index(line)
    assert "failure analysis" in lines[at - 1] and lines[at - 1].startswith("=")
    assert lines[at + 1:at + 6] == [
        f"  test failures: {PREFIX}test_fails",
        f"  setup/teardown errors: {PREFIX}test_setup_error, {PREFIX}test_teardown_error",
        f"  timeouts: {PREFIX}test_hangs", f"  crashes: {PREFIX}test_crashes", f"  flaky: {PREFIX}test_flaky"]
    assert lines[-1].startswith("=") and "failed" in lines[-1]  # the final line is still last
