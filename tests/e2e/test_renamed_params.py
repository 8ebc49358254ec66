"""A suite whose parameter ids come from the time: `farm submit-suite` runs it as pytest does (exit 0)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from support.helpers import LEAN, assert_nothing_left_of, copy_fixture, farm

from farm.report.schema import load_report


def test_tests_whose_parameter_ids_change_between_collections_run_and_pass(tmp_path: Path) -> None:
    project = copy_fixture("renamed_params", tmp_path)
    report_path, junit_path = tmp_path / "r.json", tmp_path / "junit.xml"
    result = farm("submit-suite", str(project), "--local-workers", "2", "--json", str(report_path), "--junit-xml",
                  str(junit_path), "--", *LEAN, "tests/test_stamped.py")
    assert result.returncode == 0, result.stdout + result.stderr
    report = load_report(report_path)
    assert report["summary"]["passed"] == report["summary"]["total"] == 10
    renamed = {t["id"]: t["ran_as"] for t in report["tests"] if t["ran_as"]}
    assert len(renamed) == 9, "the 6 stamped tests and the 3 stamped methods ran under other ids"
    for planned, ran in renamed.items():
        assert planned != ran and planned.split("[")[0] == ran.split("[")[0]
    assert "warnings summary" in result.stdout
    assert "farm: 9 tests ran under another id than planned" in result.stdout
    some = next(iter(renamed))
    assert f"  {some} ran as {renamed[some]}" in result.stdout
    props = [p.get("value") for p in ET.parse(junit_path).getroot().iter("property") if p.get("name") == "farm.ran_as"]
    assert sorted(props) == sorted(renamed.values())
    assert_nothing_left_of(report["suite_id"])


def test_when_no_match_is_sound_the_error_names_what_the_worker_collected(tmp_path: Path) -> None:
    project = copy_fixture("renamed_params", tmp_path)
    marks = tmp_path / "marks"
    marks.mkdir()
    report_path = tmp_path / "r.json"
    result = farm("submit-suite", str(project), "--local-workers", "1", "--json", str(report_path), "--", *LEAN,
                  "tests/test_growing.py", env={"FARMTEST_GROWING_DIR": str(marks)})
    assert result.returncode == 1, result.stdout + result.stderr
    report = load_report(report_path)
    errors = [t for t in report["tests"] if t["outcome"] == "error"]
    assert len(errors) == 2  # planned 2 items; every runner collects 3, so none is matched
    for test in errors:
        assert test["message"].startswith(
            "not collected on the worker; for tests/test_growing.py::test_grows it collected 3 (the plan had 2): "
            "tests/test_growing.py::test_grows[")
    assert "it collected 3 (the plan had 2)" in result.stdout
