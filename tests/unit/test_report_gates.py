"""Quality gates and quarantine in the renderers: the terminal summary's sections and last line,
JUnit XML's quarantined testcase, the HTML page's data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from report_samples import FAIL_LONGREPR, make_report, make_test

from farm.gates import Gates, evaluate
from farm.model import SessionInfo
from farm.report.html import page_data
from farm.report.junit import render_junit
from farm.report.pytest_lines import separator
from farm.report.terminal import render_summary

SESSION = SessionInfo(pytest="8.3.4")


def _gated(report: dict, gates: Gates, counts: dict[str, int]) -> dict:
    verdicts = evaluate(gates, counts, wall_s=12.0, median_wall_s=10.0, compared=3)
    return {**report, "gates": [v.as_dict() for v in verdicts]}


def test_the_summary_has_a_line_per_gate_and_says_gate_failed_last() -> None:
    report = _gated(make_report([make_test("t.py::a"), make_test("t.py::b", "flaky")]),
                    Gates(max_failures=2, max_flaky=0, max_duration_regression=10.0), {"passed": 1, "flaky": 1})
    report["exit_code"] = 1
    lines = render_summary(report, session=SESSION, on_ci=False).splitlines()
    at = lines.index("=" * 32 + " quality gates " + "=" * 33)
    assert lines[at + 1:at + 4] == [
        "gate max-failures: 0 failing <= 2: PASSED",
        "gate max-duration-regression: wall 12.00s is +20.0% against the median 10.00s of 3 runs (> +10%): FAILED",
        "gate max-flaky: 1 flaky > 0: FAILED",
    ]
    assert lines[-2].startswith("=") and "1 passed, 1 flaky" in lines[-2]
    assert lines[-1] == ("gate failed: max-duration-regression: wall 12.00s is +20.0% against the median 10.00s "
                         "of 3 runs (> +10%); max-flaky: 1 flaky > 0")
    quiet = render_summary(report, session=SessionInfo(pytest="8.3.4", verbose=-2), on_ci=False)
    assert quiet.splitlines()[-1].startswith("gate failed: ")  # whatever the verbosity
    passing = _gated(make_report([make_test("t.py::a")]), Gates(max_failures=0), {"passed": 1})
    text = render_summary(passing, session=SESSION, on_ci=False)
    assert "gate max-failures: 0 failing <= 0: PASSED" in text and "gate failed" not in text
    assert "quality gates" not in render_summary(make_report([make_test("t.py::a")]), session=SESSION, on_ci=False)


def test_the_summary_lists_quarantined_tests_with_their_outcome_and_warns_of_unknown_ids() -> None:
    report = make_report([make_test("t.py::a"), make_test("t.py::b", "failed", message="assert 1 == 2",
                                                          longrepr=FAIL_LONGREPR)])
    report["exit_code"] = 0
    report["quarantined"] = [{"test_id": "t.py::b", "outcome": "failed", "reason": "flake rate 40% > 20%"}]
    report["quarantine_unknown"] = ["t.py::gone"]
    lines = render_summary(report, session=SESSION, on_ci=False).splitlines()
    at = lines.index("=" * 33 + " quarantined " + "=" * 34)
    assert lines[at + 1:at + 4] == [
        "1 quarantined test ran; their outcomes do not fail the suite:",
        "QUARANTINED t.py::b - failed (flake rate 40% > 20%)",
        "farm: warning: --quarantine t.py::gone: no such test in the collection (ignored)",
    ]
    # Its real outcome, as pytest would show it, marked where it is listed as a failure.
    assert "FAILED t.py::b [quarantined] - assert 1 == 2" in lines


def test_a_quarantined_failure_is_marked_in_failures_and_the_short_summary_and_others_are_not() -> None:
    tests = [make_test("t.py::a", "failed", message="assert 1 == 2", longrepr=FAIL_LONGREPR),
             make_test("t.py::b", "failed", message="assert 1 == 2", longrepr=FAIL_LONGREPR),
             make_test("t.py::c", "error", phase="setup", message="boom", longrepr="E   boom"),
             make_test("t.py::d", "timeout", message="ran past 5s", longrepr="stacks"),
             make_test("t.py::e", "passed")]
    report = make_report(tests)
    report["quarantined"] = [{"test_id": t, "outcome": o, "reason": "listed"}
                             for t, o in (("t.py::b", "failed"), ("t.py::c", "error"), ("t.py::d", "timeout"),
                                          ("t.py::e", "passed"))]
    lines = render_summary(report, session=SESSION, on_ci=False).splitlines()
    banners = [line.strip("_ ") for line in lines if line.startswith("_")]
    assert banners == ["ERROR at setup of c [quarantined]", "a", "b [quarantined]", "TIMEOUT d [quarantined]"]
    short = lines[lines.index(separator("=", "short test summary info")) + 1:]
    assert [line for line in short if line.startswith(("FAILED", "ERROR", "TIMEOUT"))] == [
        "FAILED t.py::a - assert 1 == 2", "FAILED t.py::b [quarantined] - assert 1 == 2",
        "ERROR t.py::c [quarantined] - boom", "TIMEOUT t.py::d [quarantined] - ran past 5s"]
    # Without quarantine nothing is marked.
    assert "[quarantined]" not in render_summary(make_report(tests), session=SESSION, on_ci=False)


def test_under_tb_line_a_quarantined_failure_marks_its_crash_line() -> None:
    line = "t.py:3: AssertionError: boom"
    report = make_report([make_test("t.py::a", "failed", message="boom", longrepr=line + "\n"),
                          make_test("t.py::b", "failed", message="boom", longrepr=line.replace("3", "9") + "\n")])
    report["quarantined"] = [{"test_id": "t.py::b", "outcome": "failed", "reason": "listed"}]
    lines = render_summary(report, session=SessionInfo(pytest="8.3.4", tbstyle="line"), on_ci=False).splitlines()
    assert line in lines and "t.py:9: AssertionError: boom [quarantined]" in lines


def test_junit_writes_a_quarantined_failure_as_a_skip_that_says_so() -> None:
    report = make_report([make_test("t.py::a"), make_test("t.py::b", "failed", message="assert 1 == 2",
                                                          longrepr=FAIL_LONGREPR),
                          make_test("t.py::c", "failed", message="boom"), make_test("t.py::d")])
    report["quarantined"] = [{"test_id": "t.py::b", "outcome": "failed", "reason": "listed"},
                             {"test_id": "t.py::d", "outcome": "passed", "reason": "flake rate 50% > 20%"}]
    root = ET.fromstring(render_junit(report))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("failures"), suite.get("skipped"), suite.get("tests")) == ("1", "1", "4")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    b = cases["b"]
    skipped = b.find("skipped")
    assert skipped is not None and b.find("failure") is None
    assert skipped.get("type") == "farm.quarantined"
    assert skipped.get("message") == "quarantined (listed): failed: assert 1 == 2"
    assert "AssertionError: boom" in (skipped.text or "")
    assert [(p.get("name"), p.get("value")) for p in b.iter("property")] == [("farm.quarantined", "listed")]
    assert cases["c"].find("failure") is not None  # not quarantined: a failure
    d = cases["d"]
    assert d.find("skipped") is None and d.find("failure") is None  # passed, as it did
    assert [(p.get("name"), p.get("value")) for p in d.iter("property")] == [
        ("farm.quarantined", "flake rate 50% > 20%")]


def test_the_html_page_carries_gates_and_quarantined_when_the_report_has_them() -> None:
    report = _gated(make_report([make_test("t.py::a")]), Gates(max_failures=0), {"passed": 1})
    report["quarantined"] = [{"test_id": "t.py::a", "outcome": "passed", "reason": "listed"}]
    data = page_data(report, [])
    assert data["gates"] == report["gates"] and data["quarantined"] == report["quarantined"]
    assert "gates" not in page_data(make_report([make_test("t.py::a")]), [])
