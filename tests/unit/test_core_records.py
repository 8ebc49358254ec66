"""The runner plugin's JSON lines become TestRecords with the outcome, phase and message pytest shows."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farm.outcomes import Outcome
from workers import records


def line(test_id: str, phases: dict[str, dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A "test" line as the plugin writes it (see workers/pytest_plugin/run_mode.py)."""
    return {"k": "test", "id": test_id, "t": 1700000000.5, "duration_s": 0.25, "phases": phases, **extra}


OK = {"cat": ""}
PASSED = {"setup": OK, "call": {"cat": "passed"}, "teardown": OK}


def test_a_passed_test() -> None:
    r = records.test_record(line("t.py::test_ok", PASSED))
    assert (r.test_id, r.outcome, r.phase) == ("t.py::test_ok", Outcome.PASSED, "call")
    assert (r.message, r.longrepr) == ("", "")
    assert (r.duration_s, r.started_at, r.sections) == (0.25, 1700000000.5, ())


def test_a_failed_test_keeps_its_message_report_and_output() -> None:
    r = records.test_record(line(
        "t.py::test_bad[ü b]",
        {"setup": OK, "call": {"cat": "failed", "msg": "assert 1 == 2", "longrepr": "E  assert 1 == 2"},
         "teardown": OK},
        sections=[["Captured stdout call", "héllo\n"]],
    ))
    assert (r.outcome, r.phase, r.message) == (Outcome.FAILED, "call", "assert 1 == 2")
    assert r.longrepr == "E  assert 1 == 2"
    assert r.sections == (("Captured stdout call", "héllo\n"),)


def test_a_setup_error_is_an_error_decided_at_setup() -> None:
    r = records.test_record(line("t.py::test_fx", {
        "setup": {"cat": "error", "msg": "RuntimeError: db down", "longrepr": "fixture 'db' raised"},
        "teardown": OK,
    }))
    assert (r.outcome, r.phase, r.message, r.longrepr) == (
        Outcome.ERROR, "setup", "RuntimeError: db down", "fixture 'db' raised")


def test_a_teardown_error_after_a_pass_is_an_error_decided_at_teardown() -> None:
    r = records.test_record(line("t.py::test_td", {
        "setup": OK, "call": {"cat": "passed"},
        "teardown": {"cat": "error", "msg": "OSError: busy", "longrepr": "teardown trace"},
    }))
    assert (r.outcome, r.phase, r.message) == (Outcome.ERROR, "teardown", "OSError: busy")
    assert r.longrepr == "teardown trace"


def test_a_failure_with_a_teardown_error_is_failed_and_keeps_both_reports() -> None:
    r = records.test_record(line("t.py::test_both", {
        "setup": OK,
        "call": {"cat": "failed", "msg": "assert False", "longrepr": "call trace"},
        "teardown": {"cat": "error", "msg": "OSError: busy", "longrepr": "teardown trace"},
    }))
    assert (r.outcome, r.phase, r.message) == (Outcome.FAILED, "call", "assert False")
    assert r.longrepr == "call trace\n\n[teardown]\nteardown trace"


def test_an_xfailed_test_carries_the_reason() -> None:
    r = records.test_record(line("t.py::test_xf", {
        "setup": OK,
        "call": {"cat": "xfailed", "msg": "bug 12", "longrepr": "E  ZeroDivisionError"},
        "teardown": OK,
    }))
    assert (r.outcome, r.phase, r.message) == (Outcome.XFAILED, "call", "bug 12")


def test_an_xpassed_test() -> None:
    r = records.test_record(line("t.py::test_xp", {
        "setup": OK, "call": {"cat": "xpassed", "msg": "bug 12", "longrepr": ""}, "teardown": OK,
    }))
    assert (r.outcome, r.phase, r.message) == (Outcome.XPASSED, "call", "bug 12")


def test_a_skip_at_setup_carries_the_reason() -> None:
    r = records.test_record(line("t.py::test_sk", {
        "setup": {"cat": "skipped", "msg": "needs linux", "longrepr": "('t.py', 3, 'Skipped: needs linux')"},
        "teardown": OK,
    }))
    assert (r.outcome, r.phase, r.message) == (Outcome.SKIPPED, "setup", "needs linux")


def test_a_teardown_error_after_a_skip_is_an_error_decided_at_teardown() -> None:
    r = records.test_record(line("t.py::test_sk", {
        "setup": {"cat": "skipped", "msg": "needs linux"},
        "teardown": {"cat": "error", "msg": "boom", "longrepr": "td"},
    }))
    assert (r.outcome, r.phase, r.message, r.longrepr) == (Outcome.ERROR, "teardown", "boom", "td")


def test_an_xfail_decided_at_setup_is_xfailed() -> None:
    # The line the plugin really writes for @pytest.mark.xfail(run=False) (pytest: "XFAIL at setup").
    r = records.test_record(line("t.py::test_norun", {
        "setup": {"cat": "xfailed", "msg": "[NOTRUN] not now", "longrepr": "[NOTRUN] not now"},
        "teardown": OK,
    }))
    assert (r.outcome, r.phase, r.message) == (Outcome.XFAILED, "setup", "[NOTRUN] not now")


def test_missing_optional_keys_take_defaults() -> None:
    r = records.test_record({"k": "test", "id": "t.py::t"})
    assert (r.outcome, r.duration_s, r.started_at) == (Outcome.PASSED, 0.0, 0.0)
    assert (r.sections, r.message) == ((), "")


def test_collect_records_for_errors_and_module_skips() -> None:
    err = records.collect_record({"k": "collect", "id": "t/test_b.py", "cat": "error",
                                  "msg": "ZeroDivisionError: division by zero", "longrepr": "1/0"})
    assert (err.test_id, err.outcome, err.phase, err.message, err.longrepr) == (
        "t/test_b.py", Outcome.ERROR, "collect", "ZeroDivisionError: division by zero", "1/0")
    skip = records.collect_record(
        {"k": "collect", "id": "t/test_s.py", "cat": "skipped", "msg": "whole module"})
    assert (skip.outcome, skip.phase, skip.message) == (Outcome.SKIPPED, "collect", "whole module")


def test_collect_result_keeps_item_order_and_decided_outcomes() -> None:
    lines: list[dict[str, Any]] = [
        {"k": "collect", "id": "b.py", "cat": "error", "msg": "ImportError"},
        {"k": "item", "id": "a.py::t2"},
        {"k": "item", "id": "a.py::t1"},
        {"k": "collect", "id": "c.py", "cat": "skipped", "msg": "no"},
        {"k": "start", "id": "a.py::t2", "t": 1.0},
        {"k": "something-new", "id": "x"},
        {"k": "item", "id": "d.py::t[ü]"},
    ]
    result = records.collect_result(lines)
    assert result.test_ids == ["a.py::t2", "a.py::t1", "d.py::t[ü]"]
    decided = [(r.test_id, r.outcome) for r in result.decided]
    assert decided == [("b.py", Outcome.ERROR), ("c.py", Outcome.SKIPPED)]


def test_collect_result_of_nothing_is_empty() -> None:
    result = records.collect_result([])
    assert result.test_ids == [] and result.decided == []


def test_a_crashed_test_is_crashed_lasting_until_the_crash() -> None:
    r = records.crashed_record("t.py::t", started_at=100.0, now=103.5, why="runner exited with code -9")
    assert (r.outcome, r.phase, r.duration_s, r.started_at) == (Outcome.CRASHED, "call", 3.5, 100.0)
    assert r.message == r.longrepr == "runner exited with code -9"
    with_output = records.crashed_record("t", started_at=1.0, now=2.0, why="died", output="last words")
    assert with_output.longrepr.startswith("died") and with_output.longrepr.endswith("last words")


def test_a_timed_out_test_carries_the_stacks() -> None:
    r = records.timeout_record("t.py::t", started_at=1.0, now=3.0, why="ran past 2s", stacks="File x, line 3")
    assert (r.outcome, r.duration_s, r.message) == (Outcome.TIMEOUT, 2.0, "ran past 2s")
    assert r.longrepr.endswith("File x, line 3")
    assert records.crashed_record("t", started_at=10.0, now=9.0, why="x").duration_s == 0.0, "clock skew"


def test_a_missing_test_is_a_collect_error() -> None:
    r = records.missing_record("t.py::gone", "not collected on the worker")
    assert (r.test_id, r.outcome, r.phase, r.message, r.longrepr) == (
        "t.py::gone", Outcome.ERROR, "collect", "not collected on the worker", "not collected on the worker")


# --- parsing lines --------------------------------------------------------------------------------


def test_parse_line_reads_a_plugin_line() -> None:
    obj = line("t.py::test_ü[a b]", PASSED)
    raw = (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    assert records.parse_line(raw) == obj


@pytest.mark.parametrize(
    "raw",
    [
        b"", b"\n", b"not json", b"{", b'{"k": "test"', b"[1, 2]", b'"string"', b"42", b"null",
        b'{"id": "t"}', b'{"k": "test"}', b'{"k": 1, "id": "t"}', b'{"k": "test", "id": 5}',
        b'{"k": null, "id": "t"}', b"\xff\xfe\x00garbage", b'{"k": "test", "id": "\xff"}',
        b"============================= test session starts ==============================",
    ],
)
def test_parse_line_returns_none_for_malformed_lines(raw: bytes) -> None:
    assert records.parse_line(raw) is None


def test_parse_line_returns_none_for_a_deeply_nested_line() -> None:
    assert records.parse_line(b"[" * 100_000) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_parse_line_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    obj = records.parse_line(raw)
    assert obj is None or (isinstance(obj["k"], str) and isinstance(obj["id"], str))


def test_each_phase_duration_is_kept_and_a_missing_or_bad_one_is_zero() -> None:
    r = records.test_record(line("t.py::t", {"setup": {"cat": "", "s": 0.5}, "call": {"cat": "passed", "s": 2},
                                             "teardown": {"cat": "", "s": "x"}}))
    assert (r.setup_s, r.call_s, r.teardown_s) == (0.5, 2.0, 0.0)
    assert records.test_record(line("t.py::t", PASSED)).call_s == 0.0


def test_a_session_line_becomes_session_info_and_a_bad_field_keeps_its_default() -> None:
    from farm.model import SessionInfo

    info = records.session_info({"k": "session", "id": "", "maxfail": 2, "verbose": True, "reportchars": "a",
                                 "durations": 5, "durations_min": 1, "python": "3.11.2", "tbstyle": None})
    assert info == SessionInfo(maxfail=2, reportchars="a", durations=5, durations_min=1.0, python="3.11.2")
    result = records.collect_result([{"k": "item", "id": "t.py::a"}, {"k": "session", "id": "", "deselected": 3}])
    assert result.session.deselected == 3 and result.test_ids == ["t.py::a"]
