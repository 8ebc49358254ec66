"""The terminal summary reads like pytest's end-of-run output."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_samples import FAIL_LONGREPR, SETUP_LONGREPR, make_report, make_test, mixed_report, rerun_report

from farm.model import SessionInfo
from farm.report.header import render_header
from farm.report.pytest_lines import format_duration, head_line, separator, summary_line
from farm.report.schema import expand
from farm.report.terminal import render_summary


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
    assert lines[4:] == [  # skips folded by place and reason, as pytest folds them
        "SKIPPED [1] tests/sub/test_a.py:9: nope",
        "XFAIL tests/sub/test_a.py::test_xf - known",
        "XPASS tests/sub/test_a.py::test_xp - lucky",
        "NOT RUN [1] suite canceled",
    ]


def test_short_summary_keeps_only_the_first_line_of_a_message() -> None:
    report = make_report([make_test("t.py::test_a", "failed", message="ValueError: one\ntwo")])
    assert section(render_summary(report, on_ci=False), "short test summary info") == [
        "FAILED t.py::test_a - ValueError: one"]


def test_on_ci_or_under_vv_the_short_summary_keeps_whole_messages_as_pytest() -> None:
    report = make_report([make_test("t.py::test_a", "failed", message="ValueError: one\ntwo")])
    whole = ["FAILED t.py::test_a - ValueError: one", "two"]
    assert section(render_summary(report, on_ci=True), "short test summary info") == whole
    assert section(render_summary(report, on_ci=False, session=SessionInfo(verbose=2)),
                   "short test summary info") == whole


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


# --- pytest's reporting options: -r, --tb, --durations, -q, deselected, the header ----------------


def test_ra_lists_skips_folded_xfails_xpasses_errors_then_failures_in_pytests_order() -> None:
    report = mixed_report()
    report["tests"].append(make_test("tests/sub/test_a.py::test_skip2", "skipped", message="nope",
                                     longrepr="tests/sub/test_a.py:9: Skipped: nope"))
    lines = section(render_summary(report, session=SessionInfo(reportchars="a")), "short test summary info")
    assert lines == [
        "SKIPPED [2] tests/sub/test_a.py:9: nope",
        "XFAIL tests/sub/test_a.py::test_xf - known",
        "XPASS tests/sub/test_a.py::test_xp - lucky",
        "ERROR tests/test_broken.py",
        "ERROR tests/sub/test_a.py::test_seterr - RuntimeError: setup bad",
        "ERROR tests/sub/test_a.py::test_tderr - RuntimeError: teardown bad",
        "FAILED tests/sub/test_a.py::test_fail - AssertionError: boom",
    ]


def test_rp_lists_passed_tests_and_rN_lists_nothing() -> None:
    lines = section(render_summary(mixed_report(), session=SessionInfo(reportchars="p")), "short test summary info")
    assert lines == ["PASSED tests/sub/test_a.py::test_pass", "PASSED tests/sub/test_a.py::TestC::test_m[1]",
                     "PASSED tests/sub/test_a.py::TestC::test_m[a b]"]
    assert "short test summary info" not in render_summary(mixed_report(), session=SessionInfo(reportchars="N"))


def test_the_report_args_give_the_options_when_no_session_is_known() -> None:
    report = mixed_report()
    report["pytest_args"] = ["-rs", "--tb=no", "tests"]
    text = render_summary(report)
    assert section(text, "short test summary info") == ["SKIPPED [1] tests/sub/test_a.py:9: nope"]
    assert "FAILURES" not in text and "ERRORS" not in text


def test_tb_no_prints_no_failure_sections() -> None:
    text = render_summary(mixed_report(), session=SessionInfo(tbstyle="no"))
    assert "FAILURES" not in text and "ERRORS" not in text and "short test summary info" in text


def test_tb_line_prints_each_failure_as_its_lines_and_its_output_before_the_crash_line() -> None:
    report = make_report([make_test("t.py::test_a", "failed", message="AssertionError: boom\nassert 0",
                                    longrepr="E   AssertionError: boom\n    assert 0\n"
                                             "t.py:13: AssertionError: boom\nassert 0",
                                    sections=[["Captured stdout call", "hello\n"]])])
    assert section(render_summary(report, session=SessionInfo(tbstyle="line")), "FAILURES") == [
        "E   AssertionError: boom", "    assert 0", separator("-", "Captured stdout call"), "hello",
        "t.py:13: AssertionError: boom", "assert 0",
    ]


def durations_report() -> dict[str, Any]:
    report = report_with({"passed": 3}, 1.0)
    report["durations"] = [[0.5, "call", "t.py::a"], [0.25, "setup", "t.py::b"], [0.001, "teardown", "t.py::a"]]
    return report


def test_durations_list_the_slowest_phases_and_hide_the_short_ones_below_vv() -> None:
    assert section(render_summary(durations_report(), session=SessionInfo(durations=3)), "slowest 3 durations") == [
        "0.50s call     t.py::a",
        "0.25s setup    t.py::b",
        "",
        "(1 durations < 0.005s hidden.  Use -vv to show these durations.)",
    ]
    vv = section(render_summary(durations_report(), session=SessionInfo(durations=0, verbose=2)), "slowest durations")
    assert vv[-1] == "0.00s teardown t.py::a"
    given = section(render_summary(durations_report(), session=SessionInfo(durations=3, durations_min=0.3)),
                    "slowest 3 durations")
    assert given == ["0.50s call     t.py::a", "", "(2 durations < 0.3s hidden.)"]
    assert "slowest" not in render_summary(durations_report())  # not asked for


def test_durations_come_after_the_failures_and_before_the_short_summary() -> None:
    report = mixed_report()
    report["durations"] = [[0.5, "call", "tests/sub/test_a.py::test_fail"]]
    text = render_summary(report, session=SessionInfo(durations=1))
    assert text.index("FAILURES") < text.index("slowest 1 durations") < text.index("short test summary info")


def test_quiet_drops_the_final_lines_separators_and_qq_the_line() -> None:
    report = report_with({"passed": 3}, 0.5)
    assert render_summary(report, session=SessionInfo(verbose=-1)) == "3 passed in 0.50s\n"
    assert render_summary(report, session=SessionInfo(verbose=-2)) == ""


def test_the_final_line_counts_deselected_tests_after_skipped_as_pytest() -> None:
    report = report_with({"failed": 2, "passed": 1, "skipped": 1, "xfailed": 1}, 0.01)
    assert summary_line(report, deselected=1) == "2 failed, 1 passed, 1 skipped, 1 deselected, 1 xfailed in 0.01s"
    assert summary_line(report_with({}, 0.01), deselected=3) == "3 deselected in 0.01s"


def test_a_suite_stopped_at_maxfail_says_so_as_pytest_before_the_final_line() -> None:
    report = report_with({"failed": 1, "not_run": 4}, 1.0)
    report["stopped"] = "stopped after 1 failures"
    assert render_summary(report).splitlines()[-2:] == [
        "!!!!!!!!!!!!!!!!!!!!!!!!!! stopping after 1 failures !!!!!!!!!!!!!!!!!!!!!!!!!!!",
        separator("=", "1 failed, 4 not run in 1.00s"),
    ]


def test_the_header_names_versions_rootdir_farm_size_and_what_was_collected() -> None:
    session = SessionInfo(platform="linux", python="3.11.7", pytest="9.2.0", pluggy="1.7.0",
                          configfile="pytest.ini", deselected=2)
    header = render_header(session, collected=5, errors=1, rootdir="/home/u/proj",
                           workers=[("w1@a", 4), ("w2@b", 4)], collector="w1@a")
    assert header.splitlines() == [
        "============================= test session starts ==============================",
        "platform linux -- Python 3.11.7, pytest-9.2.0, pluggy-1.7.0 (on w1@a)",
        "rootdir: /home/u/proj",
        "configfile: pytest.ini",
        "farm: 2 workers x 4 slots",
        "collected 7 items / 1 error / 2 deselected / 5 selected",
    ]
    assert "farm: 2 workers, 6 slots" in render_header(session, collected=1, workers=[("a", 4), ("b", 2)])
    assert render_header(SessionInfo(verbose=-1), collected=1) == ""
    old = replace(session, python="3.11.2", pytest="7.2.1")  # Debian 12's: one line, as pytest 7 prints it
    assert "rootdir: /home/u/proj, configfile: pytest.ini" in render_header(old, collected=5, rootdir="/home/u/proj")


def test_what_pytest_7_and_8_render_differently_follows_the_workers_pytest() -> None:
    failure = make_test("t.py::test_a", "failed", message="assert 0",
                        longrepr="E   assert 0\nt.py:3: assert 0", sections=[["Captured stdout call", "hi\n"]])
    xpass = make_test("t.py::test_x", "xpassed", message="lucky")
    report = make_report([failure, xpass])
    report["durations"] = [[0.001, "call", "t.py::test_a"]]
    seven = SessionInfo(pytest="7.2.1", tbstyle="line", reportchars="fX", durations=1, durations_min=0.005)
    text = render_summary(report, session=seven)
    assert section(text, "FAILURES") == ["t.py:3: assert 0"]  # the crash line alone before pytest 9
    assert "XPASS t.py::test_x lucky" in text and "XPASSES" not in text
    assert "(1 durations < 0.005s hidden.  Use -vv to show these durations.)" in text
    assert "hidden" not in render_summary(report, session=replace(seven, verbose=2))


def test_a_test_that_ran_more_than_once_says_which_run_counted() -> None:
    text = render_summary(expand(rerun_report()))
    assert "FLAKY tests/t.py::test_flaky - failed, then passed when run again (run 2 of 2)" in text
    assert "FAILED tests/t.py::test_fail - AssertionError: boom (run 3 of 3)" in text
    assert separator("_", "test_fail (run 3 of 3)") in text
    assert "test_ok (run" not in text and "test_ok" not in text
