"""`farm submit-suite --stage smoke='-m smoke' --stage rest=`: the rest runs only once the smoke stage
passed (its gates decide), on the embedded farm and on `farm up` through --broker."""

from __future__ import annotations

import html
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from support.browser import dump_dom
from support.helpers import LEAN, copy_fixture, farm, need
from test_html_report import page_errors

from farm.report.junit import classname_and_name
from farm.report.schema import load_report

STAGED = ("--stage", "smoke=-m smoke", "--stage", "rest=")
SMOKE = {"tests/test_smoke.py::test_quick[0]", "tests/test_smoke.py::test_quick[1]",
         "tests/test_smoke.py::test_quick[2]", "tests/test_smoke.py::test_imports"}
REST = {"tests/test_rest.py::test_long[0]", "tests/test_rest.py::test_long[1]", "tests/test_rest.py::test_long[2]",
        "tests/test_rest.py::test_long[3]", "tests/test_rest.py::test_other", "tests/test_rest.py::test_skipped"}
FAILING_SMOKE = '''
import pytest

@pytest.mark.smoke
def test_broken():
    assert 1 + 1 == 3
'''
BROKEN = "tests/test_smoke_broken.py::test_broken"


def _project(tmp_path: Path, *, broken_smoke: bool = False) -> Path:
    project = copy_fixture("stages", tmp_path)
    if broken_smoke:
        (project / "tests" / "test_smoke_broken.py").write_text(FAILING_SMOKE)
    return project


def _submit(project: Path, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Any, dict[str, Any]]:
    report = tmp_path / "report.json"
    result = farm("submit-suite", str(project), *args, "--json", str(report), "--", *LEAN, env=env)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result, load_report(report)  # its full view


def _tests(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ids = [t["id"] for t in report["tests"]]
    assert len(ids) == len(set(ids)), "a test is reported twice"
    return {t["id"]: t for t in report["tests"]}


def _stages(report: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(s["name"], s["status"], s["tests"]) for s in report["stages"]]


def test_embedded_smoke_passes_then_the_rest_runs_each_test_once(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    project = _project(tmp_path)
    result, report = _submit(project, tmp_path, "--local-workers", "2", *STAGED, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    tests = _tests(report)
    assert set(tests) == SMOKE | REST
    assert report["summary"]["passed"] == 9 and report["summary"]["skipped"] == 1
    assert _stages(report) == [("smoke", "passed", 4), ("rest", "passed", 6)]
    assert report["stages"][0]["pytest_args"] == ["-m", "smoke"] and report["stages"][1]["counts"] == {
        "passed": 5, "skipped": 1}
    # The rest's assignments are planned and run after the smoke stage's ended.
    smoke_end = max(a["finished_at"] for a in report["assignments"] if "-s1a" not in a["id"])
    rest = [a for a in report["assignments"] if "-s1a" in a["id"]]
    assert rest and all(a["started_at"] >= smoke_end for a in rest)
    assert {t for a in rest for t in a["tests"]} == REST
    assert re.search(r"^stage smoke: 4 passed in [0-9.]+s: passed$", result.stdout, re.M), result.stdout
    assert re.search(r"^stage rest: 5 passed, 1 skipped in [0-9.]+s: passed$", result.stdout, re.M), result.stdout
    assert re.search(r"\[farm\] running stage (smoke|rest): ", result.stderr), result.stderr
    assert report["collection"]["duration_s"] > 0
    # Again: the suite's and the smoke stage's collections come from the collection cache, as they were.
    again, report = _submit(project, tmp_path, "--local-workers", "2", *STAGED, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert report["collection"]["duration_s"] == 0.0
    assert _stages(report) == [("smoke", "passed", 4), ("rest", "passed", 6)] and len(_tests(report)) == 10


def _junit_stages(path: Path) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """A JUnit file's testsuite properties, and each testcase's `farm.stage` values by test id."""
    suite = ET.parse(path).find("testsuite")
    assert suite is not None
    props = suite.find("properties")
    listed = [(p.get("name", ""), p.get("value", "")) for p in props] if props is not None else []
    ids = {classname_and_name(t): t for t in SMOKE | REST | {BROKEN}}
    cases = {ids[(c.get("classname", ""), c.get("name", ""))]: c for c in suite.iter("testcase")}
    return listed, {t: [p.get("value", "") for p in c.iterfind("properties/property[@name='farm.stage']")]
                    for t, c in cases.items()}


def test_embedded_smoke_fails_and_the_rest_is_not_run(tmp_path: Path) -> None:
    xml = tmp_path / "report.xml"
    result, report = _submit(_project(tmp_path, broken_smoke=True), tmp_path, "--local-workers", "2", *STAGED,
                             "--junit-xml", str(xml))
    assert result.returncode == 1, result.stdout + result.stderr
    tests = _tests(report)
    assert tests[BROKEN]["outcome"] == "failed"
    assert {(tests[t]["outcome"], tests[t]["message"]) for t in REST} == {("not_run", "stage smoke had failures")}
    assert _stages(report) == [("smoke", "failed", 5), ("rest", "not_started", 6)]
    assert report["message"] == "stage smoke had failures"
    assert not any("-s1a" in a["id"] for a in report["assignments"]), "an assignment of the rest was planned"
    assert "stage rest: 6 not run: not started" in result.stdout
    assert "infrastructure" not in result.stdout  # not run on purpose, not a farm failure
    # Each test's stage, in the JSON and in JUnit XML: the rest's too, though it never started.
    assert {t: tests[t]["stage"] for t in tests} == {**dict.fromkeys(SMOKE | {BROKEN}, "smoke"),
                                                   **dict.fromkeys(REST, "rest")}
    listed, stage_of = _junit_stages(xml)
    assert listed == [("farm.stage.smoke", "failed"), ("farm.stage.rest", "not_started")]
    assert stage_of == {**{t: ["smoke"] for t in SMOKE | {BROKEN}}, **{t: ["rest"] for t in REST}}


def test_stages_under_debians_python3_and_pytest_7_2_1(tmp_path: Path) -> None:
    """The stage collections run in the runner's pytest: Debian 12's python3 with its pytest 7.2.1."""
    python = "/usr/bin/python3.11"
    need(os.access(python, os.X_OK), f"{python} (Debian's python3) is not here")
    version = subprocess.run([python, "-c", "import pytest; print(pytest.__version__)"], capture_output=True,
                             text=True).stdout.strip()
    need(version == "7.2.1", f"{python} has pytest {version or 'none'}, not Debian's 7.2.1")
    result, report = _submit(_project(tmp_path, broken_smoke=True), tmp_path, "--python", python, *STAGED)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pytest-7.2.1" in result.stdout
    assert _stages(report) == [("smoke", "failed", 5), ("rest", "not_started", 6)]
    assert {t["outcome"] for t in report["tests"] if t["id"] in REST} == {"not_run"}


def test_on_farm_up_a_gate_decides_whether_the_rest_runs(tmp_path: Path, running_farm: Any) -> None:
    project = _project(tmp_path, broken_smoke=True)
    where = ("--broker", running_farm.broker)

    tolerant, report = _submit(project, tmp_path, *where, *STAGED, "--max-failures", "1")
    assert tolerant.returncode == 1, tolerant.stdout  # one test failed (the suite's own gates are its end's)
    tests = _tests(report)
    assert {tests[t]["outcome"] for t in REST} == {"passed", "skipped"}
    assert _stages(report) == [("smoke", "passed", 5), ("rest", "passed", 6)]
    (verdict,) = report["stages"][0]["gates"]
    assert (verdict["gate"], verdict["value"], verdict["verdict"]) == ("max-failures", 1, "passed")

    page, xml = tmp_path / "report.html", tmp_path / "report.xml"
    strict, report = _submit(project, tmp_path, *where, *STAGED, "--min-pass-rate", "100", "--html", str(page),
                             "--junit-xml", str(xml))
    assert strict.returncode == 1, strict.stdout
    tests = _tests(report)
    assert {(tests[t]["outcome"], tests[t]["message"]) for t in REST} == {("not_run", "stage smoke failed its gates")}
    listed, stage_of = _junit_stages(xml)  # the stage of each test, as the coordinator's finish wrote the report
    assert listed == [("farm.stage.smoke", "failed"), ("farm.stage.rest", "not_started")]
    assert stage_of == {**{t: ["smoke"] for t in SMOKE | {BROKEN}}, **{t: ["rest"] for t in REST}}
    assert _stages(report) == [("smoke", "failed", 5), ("rest", "not_started", 6)]
    (verdict,) = report["stages"][0]["gates"]
    assert (verdict["gate"], verdict["value"], verdict["verdict"]) == ("min-pass-rate", 80.0, "failed")
    assert "stage smoke: 1 failed, 4 passed in " in strict.stdout
    assert "(gate failed: min-pass-rate: pass rate 80.0% < 100%)" in strict.stdout
    # The page's stages section, in Chromium: a row per stage, its counts and verdicts as words.
    dom = dump_dom(page)
    assert page_errors(dom) == ""
    section = re.search(r'<section id="stages">(.*?)</section>', dom, re.S)
    assert section, dom[-2000:]
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", section.group(1), re.S)]
    assert [r[:3] for r in rows if r] == [["smoke", "-m smoke", "failed"], ["rest", "", "not_started"]]
    smoke = html.unescape(" | ".join(rows[1]))
    assert "4 passed, 1 failed" in smoke and "min-pass-rate: pass rate 80.0% &lt; 100% (failed)" not in smoke
    assert "min-pass-rate: pass rate 80.0% < 100% (failed)" in smoke, smoke
    # Each test names its stage: the failure (smoke) and the rows of the stage that never started.
    failures = re.search(r'<section id="failures">(.*?)</section>', dom, re.S)
    assert failures and 'data-stage="smoke"' in failures.group(1) and 'data-stage="rest"' not in failures.group(1)
    table = re.findall(r'<tr class="row"[^>]*>(.*?)</tr>', dom, re.S)
    assert len(table) == 11 and sum('data-stage="rest"' in r for r in table) == 6, table

    fine, report = _submit(_project(tmp_path / "ok"), tmp_path, *where, *STAGED, "--min-pass-rate", "100")
    assert fine.returncode == 0, fine.stdout
    assert _stages(report) == [("smoke", "passed", 4), ("rest", "passed", 6)]
    assert len(_tests(report)) == 10


def test_a_stage_whose_selection_pytest_refuses_is_one_error(tmp_path: Path, running_farm: Any) -> None:
    result = farm("submit-suite", str(_project(tmp_path)), "--broker", running_farm.broker,
                  "--stage", "smoke=-m (((", "--", *LEAN)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "pytest could not collect the suite (exit code 4)" in result.stdout + result.stderr
