"""JUnit XML reads back like pytest's own --junitxml, and report files are written safely."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _pytest.junitxml import mangle_test_address
from hypothesis import given
from hypothesis import strategies as st
from junitparser import Error, Failure, JUnitXml, Skipped, TestCase
from report_samples import FAIL_LONGREPR, make_report, make_test, mixed_report, rerun_report

from farm.errors import UsageError
from farm.model import Collection, Stage, SuiteSpec, TestRecord
from farm.outcomes import Outcome
from farm.report.build import build_report, report_text, stage_names
from farm.report.jsonfile import write_json, write_junit
from farm.report.junit import classname_and_name, render_junit, xml_safe
from farm.report.schema import expand


def cases_of(data: bytes) -> list[TestCase]:
    xml = JUnitXml.fromstring(data)
    (suite,) = list(xml)
    return list(suite)


def describe(case: TestCase) -> tuple[str, str, str | None, str | None, str | None]:
    results = list(case.result)
    assert len(results) <= 1
    if not results:
        return (case.classname, case.name, None, None, None)
    result = results[0]
    return (case.classname, case.name, type(result).__name__, result.type, result.message)


def test_testcases_match_what_pytest_junitxml_wrote_for_the_same_run() -> None:
    # Expected values copied from pytest 9's --junitxml output for the run mixed_report() mirrors.
    assert [describe(c) for c in cases_of(render_junit(mixed_report()))] == [
        ("", "tests.test_broken", "Error", None, "collection failure"),
        ("tests.sub.test_a", "test_pass", None, None, None),
        ("tests.sub.test_a", "test_fail", "Failure", None, "AssertionError: boom"),
        ("tests.sub.test_a.TestC", "test_m[1]", None, None, None),
        ("tests.sub.test_a.TestC", "test_m[a b]", None, None, None),
        ("tests.sub.test_a.TestC", "test_skip", "Skipped", "pytest.skip", "nope"),
        ("tests.sub.test_a", "test_seterr", "Error", None, 'failed on setup with "RuntimeError: setup bad"'),
        ("tests.sub.test_a", "test_tderr", "Error", None, 'failed on teardown with "RuntimeError: teardown bad"'),
        ("tests.sub.test_a", "test_xf", "Skipped", "pytest.xfail", "known"),
        ("tests.sub.test_a", "test_xp", None, None, None),
    ]


def test_failure_and_error_text_is_the_longrepr() -> None:
    cases = {c.name: c for c in cases_of(render_junit(mixed_report()))}
    (failure,) = cases["test_fail"].result
    assert isinstance(failure, Failure)
    assert failure.text == FAIL_LONGREPR
    (error,) = cases["tests.test_broken"].result
    assert isinstance(error, Error)
    assert "No module named 'nonexistent_mod'" in (error.text or "")


def test_testsuite_totals_are_counted_from_the_tests() -> None:
    report = mixed_report()
    report["tests"].append(make_test("tests/x.py::test_late", "not_run", message="suite canceled"))
    report["summary"] = {"total": 0}  # totals must not come from here
    (suite,) = list(JUnitXml.fromstring(render_junit(report)))
    assert (suite.name, suite.tests, suite.failures, suite.errors, suite.skipped) == ("pytest", 11, 1, 3, 3)
    assert suite.time == pytest.approx(3.2)
    assert suite.timestamp == "2026-11-22T10:00:00.123456+00:00"
    assert suite.hostname == "host-a,host-b"


def test_document_has_pytest_root_and_utf8_declaration() -> None:
    data = render_junit(mixed_report())
    assert data.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    root = ET.fromstring(data)
    assert root.tag == "testsuites"
    assert root.get("name") == "pytest tests"
    assert [child.tag for child in root] == ["testsuite"]


def test_not_run_is_a_farm_skip_with_the_reason() -> None:
    report = make_report([make_test("t.py::test_a", "not_run", message="suite canceled")])
    (case,) = cases_of(render_junit(report))
    (skipped,) = case.result
    assert isinstance(skipped, Skipped)
    assert (skipped.type, skipped.message) == ("farm.not_run", "not run: suite canceled")


def test_module_level_skip_is_a_collection_skip_like_pytest() -> None:
    report = make_report([make_test("tests/t.py", "skipped", phase="collect", message="no db",
                                    longrepr="tests/t.py:3: no db")])
    (case,) = cases_of(render_junit(report))
    assert (case.classname, case.name) == ("", "tests.t")
    (skipped,) = case.result
    assert (skipped.message, skipped.text) == ("collection skipped", "tests/t.py:3: no db")


def test_empty_suite_is_a_valid_document_with_zero_tests() -> None:
    (suite,) = list(JUnitXml.fromstring(render_junit(make_report([]))))
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (0, 0, 0, 0)
    assert list(suite) == []


@pytest.mark.parametrize(
    "nodeid",
    [
        "tests/sub/test_a.py::TestC::test_m[1]",
        "tests/test_broken.py",
        "test_top.py::test_f",
        "tests/t.py::TestA::TestB::test_c",
        "tests/t.py::test_f[a::b/c.py]",
        "tests/t[1].py::test_x",
        "tests/t.py::test_u[naïve café-日本 語]",
    ],
)
def test_classname_and_name_agree_with_pytest(nodeid: str) -> None:
    names = mangle_test_address(nodeid)
    assert classname_and_name(nodeid) == (".".join(names[:-1]), names[-1])


def test_illegal_control_characters_are_stripped_everywhere() -> None:
    report = make_report([make_test("tests/x.py::test_c[a\x01b]", "failed", message="bad \x1b[31mred\x00",
                                    longrepr="x\x0cy\ud800z")])
    (case,) = cases_of(render_junit(report))  # parsing at all proves the XML is well formed
    assert case.name == "test_c[ab]"
    (failure,) = case.result
    assert (failure.message, failure.text) == ("bad [31mred", "xyz")


def test_non_ascii_brackets_and_spaces_survive_a_round_trip_through_a_file(tmp_path: Path) -> None:
    nodeid = "tests/t.py::TestÜ::test_u[naïve café-日本 語 <&>]"
    report = make_report([make_test(nodeid, "failed", message="é ≠ e", longrepr='"<tag>" & ünïcode')])
    path = tmp_path / "junit.xml"
    write_junit(report, path)
    (suite,) = list(JUnitXml.fromfile(str(path)))
    (case,) = list(suite)
    assert (case.classname, case.name) == ("tests.t.TestÜ", "test_u[naïve café-日本 語 <&>]")
    (failure,) = case.result
    assert (failure.message, failure.text) == ("é ≠ e", '"<tag>" & ünïcode')


@given(st.text(max_size=200), st.text(max_size=200))
def test_any_text_gives_well_formed_xml_that_keeps_the_legal_characters(name: str, message: str) -> None:
    report = make_report([make_test(f"t.py::test_x[{name}]", "skipped", message=message)])
    case = ET.fromstring(render_junit(report)).find("testsuite/testcase")
    assert case is not None
    assert case.get("name") == xml_safe(f"test_x[{name}]")
    skipped = case.find("skipped")
    assert skipped is not None
    assert skipped.get("message") == xml_safe(message.strip().removeprefix("Skipped: "))


def test_long_failure_message_attribute_is_capped_but_text_is_whole() -> None:
    long = "x" * 2000
    (case,) = cases_of(render_junit(make_report([make_test("t.py::test_a", "failed", message=long,
                                                             longrepr=long)])))
    (failure,) = case.result
    assert failure.message == "x" * 500 + "..."
    assert failure.text == long


# Report files (farm.report.jsonfile)


def test_write_json_writes_the_lean_document_in_utf8_with_non_ascii_kept(tmp_path: Path) -> None:
    report = make_report([make_test("tests/t.py::test_é[日本]")])
    path = tmp_path / "report.json"
    write_json(report, path)
    raw = path.read_bytes()
    assert "test_é[日本]".encode() in raw
    assert raw.startswith(b'{\n  "schema": 2,')
    assert expand(json.loads(raw.decode("utf-8"))) == expand(report)


def test_write_replaces_an_existing_file_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")
    write_json(make_report([]), path)
    write_junit(make_report([]), tmp_path / "junit.xml")
    assert json.loads(path.read_text())["tests"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "report.json"]


def test_write_into_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "report.json"
    with pytest.raises(UsageError) as info:
        write_json(make_report([]), path)
    assert str(info.value) == f"cannot write {path}: no such directory"
    with pytest.raises(UsageError, match="no such directory"):
        write_junit(make_report([]), path)
    assert not (tmp_path / "nope").exists()


def test_write_over_a_directory_is_a_one_line_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    with pytest.raises(UsageError) as info:
        write_junit(make_report([]), target)
    assert str(info.value).startswith(f"cannot write {target}: ")
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize("outcome", ["timeout", "crashed"])
def test_timeouts_and_crashes_are_errors_with_a_clear_message(outcome: str) -> None:
    import xml.etree.ElementTree as ET

    from farm.report.junit import render_junit

    report = {"tests": [{"id": "t.py::test_x", "outcome": outcome, "phase": "call", "duration_s": 2.0,
                         "message": "why it stopped", "longrepr": "the stacks"}], "duration_s": 2.0}
    root = ET.fromstring(render_junit(report))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("errors") == "1" and suite.get("failures") == "0"
    error = root.find("testsuite/testcase/error")
    assert error is not None
    assert error.get("type") == f"farm.{outcome}" and error.get("message") == f"{outcome}: why it stopped"
    assert error.text == "the stacks"


def test_reruns_are_recorded_as_maven_surefire_does_each_saying_which_run_it_was() -> None:
    root = ET.fromstring(render_junit(rerun_report()))
    cases = {c.get("name"): c for c in root.iter("testcase")}

    def runs_of(name: str) -> list[tuple[str, str | None]]:
        return [(e.tag, e.get("message")) for e in cases[name] if e.tag != "properties"]

    def counted(name: str) -> str | None:
        prop = cases[name].find("properties/property[@name='farm.run']")
        return None if prop is None else prop.get("value")

    assert counted("test_flaky") == "2 of 2"
    assert runs_of("test_flaky") == [("flakyFailure", "run 1 of 2: failed on w1@host (s-1-a001)")]
    assert counted("test_fail") == "3 of 3"
    assert runs_of("test_fail") == [("failure", "AssertionError: boom"),
                                    ("rerunFailure", "run 1 of 3: failed on w1@host (s-1-a001)"),
                                    ("rerunFailure", "run 2 of 3: failed on w2@host (s-1-r01)")]
    assert counted("test_crash_once") == "2 of 2"
    assert runs_of("test_crash_once") == [("flakyError", "run 1 of 2: crashed on w1@host (s-1-a001)")]
    assert counted("test_ok") is None and runs_of("test_ok") == []
    assert list(cases["test_fail"])[0].tag == "properties"  # first, where pytest puts a testcase's properties


def _staged_report(*, text: bool, reverse: bool = False) -> dict[str, Any]:
    """A staged suite (smoke failed, rest never started) as the coordinator builds it: each test's
    stage from the collection's `stage_of`, a collection error after the runnable tests. `text`:
    through `report_text` (the finish's path: the collection's ids left out, each test's stage
    given by id) instead of `build_report`."""
    smoke, rest, broken = ("t.py::test_a", "t.py::test_c"), ("t.py::test_b",), "u.py"
    ids = ("t.py::test_a", "t.py::test_b", "t.py::test_c")
    spec = SuiteSpec("s-1", "demo", "0" * 64, "default", "load", (), 0.0,
                     stages=(Stage("smoke", ("-m", "smoke")), Stage("rest", ())))
    collection = Collection("s-1", "w1", 2, ids, decided=(TestRecord(broken, Outcome.ERROR, phase="collect"),),
                            stage_of=(0, 1, 0))
    records = {"t.py::test_a": TestRecord("t.py::test_a", Outcome.PASSED),
               "t.py::test_c": TestRecord("t.py::test_c", Outcome.FAILED, message="assert 1 == 2"),
               "t.py::test_b": TestRecord("t.py::test_b", Outcome.NOT_RUN, phase="",
                                          message="stage smoke had failures"),
               broken: TestRecord(broken, Outcome.ERROR, phase="collect")}
    assert set(records) == {*smoke, *rest, broken}
    rows = [{"name": "smoke", "pytest_args": ["-m", "smoke"], "status": "failed", "counts": {"passed": 1, "failed": 1},
             "tests": 2, "wall_s": 1.0, "gates": []},
            {"name": "rest", "pytest_args": [], "status": "not_started", "counts": {"not_run": 1}, "tests": 1,
             "wall_s": 0.0, "gates": []}]
    order = [*ids, broken][::-1] if reverse else [*ids, broken]
    common: dict[str, Any] = {"spec": spec, "status": "finished", "exit_code": 1, "message": "stage smoke had failures",
                              "started_at": 1.0, "finished_at": 2.0, "runs": [], "attempts": [], "workers": [],
                              "stages": rows}
    if text:
        pieces = report_text(collection=replace(collection, test_ids=()), stage_of=stage_names(spec, collection),
                             records=((t, records[t]) for t in order), **common)
        return expand(json.loads(b"".join(pieces)))
    return expand(build_report(collection=collection, order=order, counted=records, **common))


def test_each_test_of_a_staged_suite_has_its_stage_in_the_report_and_in_junit_not_run_ones_too() -> None:
    report = _staged_report(text=False)
    assert report == _staged_report(text=True)  # the finish's path gives the same
    assert [(t["id"], t["stage"]) for t in report["tests"]] == [
        ("t.py::test_a", "smoke"), ("t.py::test_b", "rest"), ("t.py::test_c", "smoke"), ("u.py", None)]
    suite = ET.fromstring(render_junit(report)).find("testsuite")
    assert suite is not None
    assert suite[0].tag == "properties"  # first, as the JUnit schema has it; then the testcases
    assert [(p.get("name"), p.get("value")) for p in suite[0]] == [("farm.stage.smoke", "failed"),
                                                                   ("farm.stage.rest", "not_started")]
    assert [c.tag for c in suite[1:]] == ["testcase"] * 4
    stage_of = {c.get("name"): [p.get("value") for p in c.iterfind("properties/property[@name='farm.stage']")]
                for c in suite.iter("testcase")}
    assert stage_of == {"test_a": ["smoke"], "test_b": ["rest"], "test_c": ["smoke"], "u": []}
    b = next(c for c in suite.iter("testcase") if c.get("name") == "test_b")
    skipped = b.find("skipped")
    assert skipped is not None and skipped.get("type") == "farm.not_run"
    assert [c.tag for c in b] == ["properties", "skipped"]  # properties first in a testcase too
    assert len(cases_of(render_junit(report))) == 4  # junitparser reads it as before


def test_a_tests_stage_follows_its_id_not_its_place_in_the_report() -> None:
    """The report's order need not be the collection's (a test without a record, the store's
    order): each test still gets its own stage."""
    report = _staged_report(text=True, reverse=True)
    assert [(t["id"], t["stage"]) for t in report["tests"]] == [
        ("u.py", None), ("t.py::test_c", "smoke"), ("t.py::test_b", "rest"), ("t.py::test_a", "smoke")]


def test_a_suite_without_stages_has_no_stage_properties() -> None:
    data = render_junit(mixed_report())
    assert b"farm.stage" not in data
    report = _staged_report(text=False)
    unknown = {**report, "stages": [], "tests": [{**t, "stage": None} for t in report["tests"]]}
    assert b"farm.stage" not in render_junit(unknown)
