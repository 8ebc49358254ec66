"""Stages (farm/stages.py, coordinator/staging.py, workers/stage_collection.py): which stage each
test belongs to, and whether a stage that ended lets the next start."""

from __future__ import annotations

import msgpack
import pytest

from coordinator import staging
from farm import stages
from farm.errors import ProtocolError
from farm.gates import Gates
from farm.model import Collection, SessionInfo, Stage, SuiteSpec
from farm.protocol import decode, encode
from workers.stage_collection import collect_staged

SPEC = SuiteSpec("s", "p", "0" * 64, "default", "load", ("-q",), 0.0,
                 stages=(Stage("smoke", ("-m", "smoke")), Stage("unit", ("tests/unit",)), Stage("rest", ())))


def test_a_test_belongs_to_the_first_stage_that_selects_it_and_an_empty_stage_takes_the_rest() -> None:
    base = ["a", "b", "c", "d", "e"]
    ids, stage_of = stages.assign(base, [["b", "d"], ["a", "b", "x"], None])
    assert list(zip(ids, stage_of, strict=True)) == [("a", 1), ("b", 0), ("c", 2), ("d", 0), ("e", 2)]
    assert stages.groups(ids, stage_of, 3) == [["b", "d"], ["a"], ["c", "e"]]


def test_a_test_no_stage_selects_is_not_part_of_the_suite() -> None:
    ids, stage_of = stages.assign(["a", "b", "c"], [["c"], ["a"]])
    assert (ids, stage_of) == (["a", "c"], [1, 0])


def test_a_stage_fails_on_any_failure_or_test_not_run_without_a_gate_that_tolerates_some() -> None:
    assert stages.judge({"passed": 3, "skipped": 1, "xfailed": 1, "flaky": 1}, Gates()).passed
    for bad in ("failed", "error", "timeout", "crashed", "not_run"):
        j = stages.judge({"passed": 3, bad: 1}, Gates())
        assert (j.passed, j.why, j.status) == (False, "had failures", "failed"), bad
    assert not stages.judge({"passed": 3, "flaky": 1}, Gates(), strict_flaky=True).passed
    assert not stages.judge({"passed": 3, "failed": 1}, Gates(max_flaky=5)).passed  # max-flaky says nothing of failures


def test_a_stage_is_judged_by_the_suites_gates_but_the_duration_regression() -> None:
    tolerant = stages.judge({"passed": 3, "failed": 1}, Gates(max_failures=1))
    assert tolerant.passed and [(v.gate, v.verdict) for v in tolerant.verdicts] == [("max-failures", "passed")]
    strict = stages.judge({"passed": 3, "failed": 1}, Gates(min_pass_rate=100.0, max_duration_regression=1.0))
    assert (strict.passed, strict.why) == (False, "failed its gates")
    assert [v.gate for v in strict.verdicts] == ["min-pass-rate"]  # the regression gate is the suite's alone
    assert not stages.judge({"passed": 9, "flaky": 2}, Gates(max_failures=0, max_flaky=1)).passed


def _plan() -> staging.StagePlan:
    return staging.first(["smoke", "unit", "rest"], [["b"], [], ["a", "c"]], now=10.0)


def test_the_plan_round_trips_and_counts_what_its_current_stage_completes_at() -> None:
    plan = _plan()
    assert staging.StagePlan.unpack(plan.pack()) == plan
    assert plan.current == 0 and staging.total_at(plan, 4) == 2  # one decided at collection, one smoke test
    assert plan.fields(4) == {"stage": 0, "stage_total": 2, "stage_name": "smoke"}
    assert staging.first(["a", "b"], [[], ["x"]], now=1.0).current == 1  # an empty first stage is passed over


def test_a_passed_stage_starts_the_next_with_tests_passing_over_empty_ones() -> None:
    decision = staging.stage_ended(_plan(), {"passed": 1}, SPEC, now=20.0, too_late=False)
    assert isinstance(decision, staging.Advance)
    nxt = decision.plan
    assert nxt.current == 2 and nxt.later_tests() == []
    assert [r.status for r in nxt.runs] == ["passed", "passed", "running"]
    assert (nxt.runs[0].started_at, nxt.runs[0].ended_at, nxt.runs[2].started_at) == (10.0, 20.0, 20.0)
    assert staging.stage_ended(nxt, {"passed": 2}, SPEC, now=30.0, too_late=False) is None  # the last: finish


def test_a_failed_stage_halts_the_suite_with_the_later_tests_not_run() -> None:
    decision = staging.stage_ended(_plan(), {"failed": 1}, SPEC, now=20.0, too_late=False)
    assert isinstance(decision, staging.Halt)
    assert decision.not_run == ("a", "c") and decision.message == "stage smoke had failures"
    assert decision.plan.current == 3 and [r.status for r in decision.plan.runs] == ["failed", "not_started",
                                                                                    "not_started"]
    assert staging.halted_by(decision.plan, SPEC) == "stage smoke had failures"
    rows = staging.report_rows(decision.plan, SPEC, [{"failed": 1}, {}, {"not_run": 2}], now=25.0)
    assert [(r["name"], r["status"], r["tests"], r["wall_s"]) for r in rows] == [
        ("smoke", "failed", 1, 10.0), ("unit", "not_started", 0, 0.0), ("rest", "not_started", 2, 0.0)]


def test_past_the_deadline_no_stage_starts() -> None:
    decision = staging.stage_ended(_plan(), {"passed": 1}, SPEC, now=20.0, too_late=True)
    assert isinstance(decision, staging.Halt) and decision.plan == _plan()
    assert decision.not_run == ("a", "c") and "deadline" in decision.message


def test_a_running_stage_is_judged_in_the_report_on_its_counts() -> None:
    rows = staging.report_rows(_plan(), SPEC, [{"passed": 1}, {}, {"not_run": 2}], now=12.5)
    assert [(r["status"], r["wall_s"]) for r in rows] == [("passed", 2.5), ("not_started", 0.0), ("not_started", 0.0)]


def test_the_worker_collects_each_stage_with_args_and_marks_each_tests_stage() -> None:
    asked: list[tuple[tuple[str, ...], bool]] = []
    found = {("-q",): ("u/a", "u/b", "i/c", "i/d"), ("-q", "-m", "smoke"): ("i/d",),
             ("-q", "tests/unit"): ("u/a", "u/b")}

    def collect(args: tuple[str, ...], fresh: bool) -> tuple[Collection | None, bool]:
        asked.append((args, fresh))
        return Collection("s", "w", 0, found[args], session=SessionInfo(deselected=1), duration_s=1.0), True

    c = collect_staged(SPEC, collect)
    assert c is not None
    assert asked == [(("-q",), False), (("-q", "-m", "smoke"), True), (("-q", "tests/unit"), True)]
    assert list(zip(c.test_ids, c.stage_of, strict=True)) == [("u/a", 1), ("u/b", 1), ("i/c", 2), ("i/d", 0)]
    assert c.duration_s == 3.0 and c.session.deselected == 1


def test_a_stage_whose_collection_fails_fails_the_suites() -> None:
    def collect(args: tuple[str, ...], fresh: bool) -> tuple[Collection | None, bool]:
        code = 4 if "-m" in args else 0
        return Collection("s", "w", code, ("a",) if not code else (), output="ERROR: bad -m"), False

    c = collect_staged(SPEC, collect)
    assert c is not None and c.exit_code == 4 and c.output.startswith("stage smoke (-m smoke): ERROR")


def test_tests_no_stage_selects_count_as_deselected() -> None:
    spec = SuiteSpec("s", "p", "0" * 64, "default", "load", (), 0.0, stages=(Stage("smoke", ("-m", "smoke")),))

    def collect(args: tuple[str, ...], fresh: bool) -> tuple[Collection | None, bool]:
        ids = ("a",) if args else ("a", "b", "c")
        return Collection("s", "w", 0, ids, session=SessionInfo(deselected=2 if args else 0)), False

    c = collect_staged(spec, collect)
    assert c is not None and (c.test_ids, c.stage_of, c.session.deselected) == (("a",), (0,), 2)


def test_each_tests_stage_travels_with_the_collection_and_is_checked() -> None:
    c = Collection("s", "w", 0, ("a", "b"), stage_of=(1, 0))
    assert decode(encode(c), Collection) == c
    body = msgpack.unpackb(encode(c), raw=False)
    body["stage_of"] = ["x"]
    with pytest.raises(ProtocolError, match="Collection.stage_of must be an integer"):
        decode(msgpack.packb(body, use_bin_type=True), Collection)
