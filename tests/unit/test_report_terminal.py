"""The terminal summary reads like pytest's end-of-run output."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_samples import FAIL_LONGREPR, SETUP_LONGREPR, make_report, make_test, mixed_report, rerun_report

from farm.report.schema import expand
from farm.report.terminal import format_duration, head_line, render_summary, separator, summary_line


def report_with(counts: dict[str, int], duration_s: float, **kwargs: Any) -> dict[str, Any]:
    tests = [
        make_test(f"tests/test_{outcome}.py::test_{i}", outcome)
        for outcome, n in counts.items()
        for i in range(n)
    ]
    return make_report(tests, duration_s=duration_s, **kwargs)


@pytest.mark.parametrize(
    ("counts", "duration_s", "expected"),
    [
        (
            {"error": 2, "xpassed": 1, "passed": 2, "skipped": 1, "failed": 1, "xfailed": 1},
            1.5,
            "1 failed, 2 passed, 1 skipped, 1 xfailed, 1 xpassed, 2 errors in 1.50s",
        ),
        ({"passed": 12, "failed": 2, "skipped": 1}, 3.2, "2 failed, 12 passed, 1 skipped in 3.20s"),
        ({"error": 1}, 0.87, "1 error in 0.87s"),
        ({"passed": 1, "error": 1}, 0.1, "1 passed, 1 error in 0.10s"),
        ({"passed": 5, "not_run": 3}, 2.0, "5 passed, 3 not run in 2.00s"),
        ({"xfailed": 2, "xpassed": 3}, 0.5, "2 xfailed, 3 xpassed in 0.50s"),
        ({}, 0.01, "no tests ran in 0.01s"),
        ({"passed": 1}, 75.3, "1 passed in 75.30s (0:01:15)"),
    ],
)
def test_summary_line_uses_pytest_order_and_wording(
    counts: dict[str, int], duration_s: float, expected: str
) -> None:
    assert summary_line(report_with(counts, duration_s)) == expected


def test_summary_line_counts_tests_when_report_has_no_summary() -> None:
    report = report_with({"passed": 2, "failed": 1}, 1.0)
    del report["summary"]
    assert summary_line(report) == "1 failed, 2 passed in 1.00s"


def test_summary_line_trusts_the_summary_over_the_tests_list() -> None:
    report = report_with({"passed": 1}, 1.0)
    report["summary"] = {"total": 7, "passed": 4, "failed": 3}
    assert summary_line(report) == "3 failed, 4 passed in 1.00s"


def test_final_line_is_centred_in_80_columns_exactly_as_pytest_draws_it() -> None:
    # Both lines copied from a real pytest 9 run.
    report = report_with({"failed": 1, "passed": 5, "skipped": 1, "xfailed": 1, "xpassed": 1, "error": 3}, 0.94)
    assert render_summary(report).splitlines()[-1] == (
        "==== 1 failed, 5 passed, 1 skipped, 1 xfailed, 1 xpassed, 3 errors in 0.94s ===="
    )
    only_error = report_with({"error": 1}, 0.87)
    assert render_summary(only_error).splitlines()[-1] == (
        "=============================== 1 error in 0.87s ==============================="
    )


@given(st.text(alphabet=st.characters(codec="ascii", exclude_characters="\n\r"), max_size=76))
def test_separator_is_always_80_wide_with_the_title_in_the_middle(title: str) -> None:
    line = separator("=", title)
    assert len(line) == 80
    left = (80 - len(title) - 2) // 2
    assert line[: left] == "=" * left
    assert line[left : left + len(title) + 2] == f" {title} "
    assert set(line[left + len(title) + 2 :]) == {"="}


def test_separator_with_a_title_too_long_still_has_one_fill_char_each_side() -> None:
    title = "x" * 100
    assert separator("=", title) == f"= {title} ="


@pytest.mark.parametrize(
    ("nodeid", "expected"),
    [
        ("tests/t.py::TestC::test_m[1]", "TestC.test_m[1]"),
        ("tests/t.py::test_f", "test_f"),
        ("tests/t.py::TestA::TestB::test_c", "TestA.TestB.test_c"),
        ("tests/t.py::test_f[a::b]", "test_f[a::b]"),
        ("tests/t[1].py::test_x", "test_x"),
        ("tests/t.py", "tests/t.py"),
    ],
)
def test_head_line_is_the_part_after_the_file_dotted(nodeid: str, expected: str) -> None:
    assert head_line(nodeid) == expected


def section(text: str, title: str) -> list[str]:
    """Lines from the `=` banner named `title` up to the next `=` banner."""
    lines = text.splitlines()
    start = lines.index(separator("=", title))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return lines[start + 1 : end]


def test_failures_section_has_banner_longrepr_and_captured_output() -> None:
    failures = section(render_summary(mixed_report()), "FAILURES")
    assert failures == [
        "__________________________________ test_fail ___________________________________",
        *FAIL_LONGREPR.splitlines(),
        "----------------------------- Captured stdout call -----------------------------",
        "out here",
    ]


def test_errors_section_names_the_phase_like_pytest_and_comes_before_failures() -> None:
    text = render_summary(mixed_report())
    errors = section(text, "ERRORS")
    banners = [line for line in errors if line.startswith("_")]
    assert banners == [
        "____________________ ERROR collecting tests/test_broken.py _____________________",
        "________________________ ERROR at setup of test_seterr _________________________",
        "_______________________ ERROR at teardown of test_tderr ________________________",
    ]
    setup_at = errors.index(banners[1]) + 1
    assert errors[setup_at : setup_at + len(SETUP_LONGREPR.splitlines())] == SETUP_LONGREPR.splitlines()
    assert text.index(separator("=", "ERRORS")) < text.index(separator("=", "FAILURES"))


def test_short_summary_lists_failures_then_errors_with_their_messages() -> None:
    assert section(render_summary(mixed_report()), "short test summary info") == [
        "FAILED tests/sub/test_a.py::test_fail - AssertionError: boom",
        "ERROR tests/test_broken.py",
        "ERROR tests/sub/test_a.py::test_seterr - RuntimeError: setup bad",
        "ERROR tests/sub/test_a.py::test_tderr - RuntimeError: teardown bad",
    ]


def test_verbose_short_summary_adds_skips_xfails_xpasses_and_not_run() -> None:
    report = mixed_report()
    report["tests"].append(make_test("tests/x.py::test_late", "not_run", message="suite canceled"))
    lines = section(render_summary(report, verbose=True), "short test summary info")
    assert lines[4:] == [
        "SKIPPED tests/sub/test_a.py::TestC::test_skip - nope",
        "XFAIL tests/sub/test_a.py::test_xf - known",
        "XPASS tests/sub/test_a.py::test_xp - lucky",
        "NOT RUN tests/x.py::test_late - suite canceled",
    ]


def test_short_summary_keeps_only_the_first_line_of_a_message() -> None:
    report = make_report([make_test("t.py::test_a", "failed", message="ValueError: one\ntwo")])
    assert section(render_summary(report), "short test summary info") == ["FAILED t.py::test_a - ValueError: one"]


def test_failure_without_longrepr_shows_its_message() -> None:
    report = make_report([make_test("t.py::test_a", "failed", message="worker lost")])
    assert section(render_summary(report), "FAILURES") == [separator("_", "test_a"), "worker lost"]


def test_all_passed_prints_only_the_final_line() -> None:
    report = report_with({"passed": 3}, 0.5)
    assert render_summary(report) == separator("=", "3 passed in 0.50s") + "\n"
    assert render_summary(report, verbose=True) == render_summary(report)


def test_canceled_suite_prints_message_and_interrupted_banner_before_final_line() -> None:
    report = report_with({"passed": 2, "not_run": 3}, 1.0, status="canceled", message="canceled by alice")
    assert render_summary(report).splitlines()[-3:] == [
        "canceled by alice",
        "!!!!!!!!!!!!!!!!!!!!!!!!! Interrupted: suite canceled !!!!!!!!!!!!!!!!!!!!!!!!!!",
        separator("=", "2 passed, 3 not run in 1.00s"),
    ]


def test_message_of_a_suite_that_ended_in_error_precedes_the_final_line_without_banner() -> None:
    report = report_with({}, 0.2, status="error", message="collection crashed on w1@host")
    text = render_summary(report)
    assert text.splitlines() == ["collection crashed on w1@host", separator("=", "no tests ran in 0.20s")]
    assert "Interrupted" not in text


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.0, "0.00s"), (3.2, "3.20s"), (59.5, "59.50s"), (75.3, "75.30s (0:01:15)"), (3725.5, "3725.50s (1:02:05)")],
)
def test_format_duration_matches_pytest(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_timeouts_and_crashes_get_a_section_and_a_short_summary_line() -> None:
    from farm.report.terminal import render_summary

    report = {"status": "finished", "duration_s": 3.0, "summary": {"total": 2, "timeout": 1, "crashed": 1},
              "tests": [{"id": "t.py::test_a", "outcome": "timeout", "message": "ran past 2s", "longrepr": "STACK"},
                        {"id": "t.py::test_b", "outcome": "crashed", "message": "exit code 3", "longrepr": "OUT"}]}
    text = render_summary(report)
    assert "TIMEOUTS AND CRASHES" in text and "STACK" in text and "OUT" in text
    assert "TIMEOUT t.py::test_a - ran past 2s" in text
    assert "CRASHED t.py::test_b - exit code 3" in text


def test_a_test_that_ran_more_than_once_says_which_run_counted() -> None:
    text = render_summary(expand(rerun_report()))
    assert "FLAKY tests/t.py::test_flaky - failed, then passed when run again (run 2 of 2)" in text
    assert "FAILED tests/t.py::test_fail - AssertionError: boom (run 3 of 3)" in text
    assert separator("_", "test_fail (run 3 of 3)") in text
    assert "test_ok (run" not in text and "test_ok" not in text
