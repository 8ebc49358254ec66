"""Farm reports the same node ids and outcomes as plain pytest, on a suite with every hard case."""

from __future__ import annotations

from pathlib import Path

import junitparser
import pytest
from support.helpers import LEAN, copy_fixture, farm
from support.reference import run_reference

from farm.report.schema import load_report


def _farm_outcomes(report: dict) -> dict[str, str]:
    ids = [t["id"] for t in report["tests"]]
    assert len(ids) == len(set(ids)), "a test was reported twice"
    return {t["id"]: t["outcome"] for t in report["tests"]}


@pytest.mark.parametrize("dist", ["load", "loadfile"])
def test_node_ids_and_outcomes_equal_plain_pytest(running_farm, tmp_path: Path, dist: str) -> None:
    project = copy_fixture("correctness", tmp_path)
    args = [*LEAN, "tests"]
    pytest_code, expected = run_reference(project, args, tmp_path / "reference.json")
    report_path, junit_path = tmp_path / "report.json", tmp_path / "junit.xml"
    result = farm("submit-suite", str(project), "--broker", running_farm.broker, "--dist", dist,
                  "--json", str(report_path), "--junit-xml", str(junit_path), "--", *args)
    assert result.returncode == pytest_code == 1, result.stderr
    report = load_report(report_path)
    assert _farm_outcomes(report) == expected
    # The hard cases are really in there (a wrong fixture would make the comparison vacuous).
    got = _farm_outcomes(report)
    assert got["tests/test_outcomes.py::test_teardown_error_after_pass"] == "error"
    assert got["tests/test_outcomes.py::test_xpass_strict"] == "failed"
    assert got["tests/test_module_skip.py"] == "skipped"
    assert got["tests/test_params.py::test_ids[ünïcödé]"] == "passed"
    assert got["tests/test_params.py::test_grüße_non_ascii_name"] == "passed"
    assert got["tests/test_params.py::test_ids[x::y]"] == "passed"
    assert got["tests/test_params.py::test_pairs[three three]"] == "passed"
    assert got["tests/test_unittest_style.py::TestBrokenSetUpClass::test_never_runs"] == "error"
    if "tests/test_subtests.py::test_one_subtest_fails" in expected:
        assert got["tests/test_subtests.py::test_one_subtest_fails"] == "failed"
    summary = report["summary"]
    assert summary["total"] == len(expected)
    assert sum(summary[k] for k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")) == len(expected)
    # The terminal summary ends like pytest's, with the same counts.
    assert f"{summary['failed']} failed" in result.stdout.rstrip().splitlines()[-1]
    # Megabytes of output are capped, not lost: the failing test keeps the head and the tail.
    big = next(t for t in report["tests"] if t["id"].endswith("test_prints_megabytes_and_fails"))
    stdout = dict(big["sections"])["Captured stdout call"]
    assert stdout.startswith("yyyy") and "cut by farm" in stdout and len(stdout) < 200_000
    # JUnit XML that junitparser reads, one testcase per test.
    xml = junitparser.JUnitXml.fromfile(str(junit_path))
    cases = [case for suite in xml for case in suite]
    assert len(cases) == len(expected)
    by_name = {(c.classname, c.name): c for c in cases}
    case = by_name[("tests.test_outcomes", "test_fails")]
    assert isinstance(case.result[0], junitparser.Failure)
    assert "lists differ" in case.result[0].text


def test_assignments_cover_every_test_once(running_farm, tmp_path: Path) -> None:
    project = copy_fixture("correctness", tmp_path)
    report_path = tmp_path / "report.json"
    farm("submit-suite", str(project), "--broker", running_farm.broker, "--dist", "loadfile",
         "--json", str(report_path), "--", *LEAN, "tests")
    report = load_report(report_path)
    assigned = [t for a in report["assignments"] for t in a["tests"]]
    assert len(assigned) == len(set(assigned))
    ran = {t["id"] for t in report["tests"] if t["attempts"] and t["attempts"][0]["assignment"] != "collection"}
    assert ran == set(assigned)
    modules: dict[str, set[str]] = {}
    for a in report["assignments"]:
        for t in a["tests"]:
            modules.setdefault(t.split("::")[0], set()).add(a["id"])
    assert all(len(owners) == 1 for owners in modules.values()), "loadfile split a module"
    assert all(a["state"] == "done" and a["worker"] and a["node"].startswith("local:")
               for a in report["assignments"])
    assert report["workers"] and report["workers"][0]["slots"] == 2


def test_collection_errors_interrupt_like_pytest(running_farm, tmp_path: Path) -> None:
    project = copy_fixture("collect_error", tmp_path)
    pytest_code, expected = run_reference(project, [*LEAN, "tests"], tmp_path / "ref.json")
    report_path = tmp_path / "report.json"
    result = farm("submit-suite", str(project), "--broker", running_farm.broker, "--json", str(report_path),
                  "--", *LEAN, "tests")
    assert result.returncode == pytest_code == 2
    report = load_report(report_path)
    assert _farm_outcomes(report) == expected == {"tests/test_broken.py": "error"}
    assert "farm_module_that_does_not_exist" in report["tests"][0]["longrepr"]
    assert "Interrupted: 1 error during collection" in result.stdout


def test_continue_on_collection_errors_runs_the_rest(running_farm, tmp_path: Path) -> None:
    project = copy_fixture("collect_error", tmp_path)
    args = [*LEAN, "--continue-on-collection-errors", "tests"]
    pytest_code, expected = run_reference(project, args, tmp_path / "ref.json")
    report_path = tmp_path / "report.json"
    result = farm("submit-suite", str(project), "--broker", running_farm.broker, "--json", str(report_path),
                  "--", *args)
    assert result.returncode == pytest_code == 1
    report = load_report(report_path)
    assert _farm_outcomes(report) == expected
    assert expected["tests/test_good.py::test_good"] == "passed"


def test_no_tests_collected_exits_5(running_farm, tmp_path: Path) -> None:
    project = copy_fixture("empty", tmp_path)
    result = farm("submit-suite", str(project), "--broker", running_farm.broker, "--", *LEAN, "tests")
    assert result.returncode == 5, result.stdout + result.stderr
    assert "no tests ran" in result.stdout
