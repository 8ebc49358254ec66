"""Quality gates' verdicts (farm/gates.py): each figure against its limit."""

from __future__ import annotations

from farm.gates import (
    FAILED,
    MIN_RUNS,
    PASSED,
    RECENT_RUNS,
    SKIPPED,
    Gates,
    Verdict,
    comparable_walls,
    evaluate,
    exit_code_with,
    failure_line,
    median_wall,
    pass_rate,
)
from farm.run_history import RunEntry


def test_pass_rate_counts_flaky_as_passing_and_leaves_skipped_and_xfailed_out() -> None:
    counts = {"passed": 8, "flaky": 1, "failed": 1, "skipped": 5, "xfailed": 2}
    assert pass_rate(counts) == 90.0
    assert pass_rate({"skipped": 3}) is None
    assert pass_rate({"passed": 1, "not_run": 1}) == 50.0


def test_each_gate_passes_at_its_limit_and_fails_past_it() -> None:
    counts = {"passed": 95, "failed": 3, "crashed": 1, "timeout": 1, "flaky": 2}
    gates = Gates(min_pass_rate=95.0, max_failures=5, max_duration_regression=15.0, max_flaky=2)
    verdicts = evaluate(gates, counts, wall_s=11.5, median_wall_s=10.0)
    assert [(v.gate, v.verdict) for v in verdicts] == [
        ("min-pass-rate", PASSED), ("max-failures", PASSED), ("max-duration-regression", PASSED),
        ("max-flaky", PASSED)]
    assert failure_line(verdicts) == ""
    worse = evaluate(Gates(min_pass_rate=97.5, max_failures=4, max_duration_regression=14.9, max_flaky=1),
                     counts, wall_s=11.5, median_wall_s=10.0)
    assert [v.verdict for v in worse] == [FAILED] * 4
    assert [v.value for v in worse] == [95.1, 5, 15.0, 2]  # 97 of 102
    line = failure_line(worse)
    assert line.startswith("gate failed: min-pass-rate: pass rate 95.1% < 97.5%")
    assert "max-duration-regression: wall 11.50s is +15.0% against the median 10.00s (> +14.9%)" in line


def test_regression_gate_without_history_is_skipped_not_failed() -> None:
    (verdict,) = evaluate(Gates(max_duration_regression=10.0), {"passed": 1}, wall_s=3.0, median_wall_s=None)
    assert verdict.verdict == SKIPPED and verdict.value is None
    assert not Gates() and Gates(max_flaky=0)
    assert evaluate(Gates(), {"failed": 9}, 1.0, 1.0) == ()


def _run(suite: str, at: float, wall: float, *, status: str = "finished", pool: str = "default",
         args: tuple[str, ...] = ()) -> RunEntry:
    return RunEntry(suite, at, status, 0, wall, "d", pool, args)


def test_the_regression_gate_compares_with_the_last_finished_runs_of_the_same_pool_and_arguments() -> None:
    runs = [_run("old", 1, 100.0)] + [_run(f"s{i}", 10 + i, 10.0 + i) for i in range(RECENT_RUNS)] + [
        _run("canceled", 50, 1.0, status="canceled"), _run("deadline", 51, 99.0, status="deadline"),
        _run("gpu", 52, 500.0, pool="gpu"), _run("smoke", 53, 0.5, args=("-m", "smoke")), _run("me", 54, 3.0)]
    walls = comparable_walls(reversed(runs), suite_id="me", pool="default", pytest_args=[])
    assert walls == [10.0 + i for i in range(RECENT_RUNS)]  # oldest first; "old" is past the last 10
    assert median_wall(walls) == 14.5
    assert median_wall(walls[:MIN_RUNS]) == 11.0 and median_wall(walls[:MIN_RUNS - 1]) is None
    assert comparable_walls(runs, suite_id="x", pool="default", pytest_args=["-m", "smoke"]) == [0.5]


def test_a_failed_gate_fails_only_a_suite_that_passed_and_its_verdicts_read_back() -> None:
    verdicts = evaluate(Gates(max_failures=0, max_flaky=5), {"failed": 1}, 1.0, None)
    assert [v.verdict for v in verdicts] == [FAILED, PASSED]
    assert [exit_code_with(code, verdicts) for code in (0, 1, 2, 3, 5)] == [1, 1, 2, 3, 5]
    assert exit_code_with(0, evaluate(Gates(max_failures=1), {"failed": 1}, 1.0, None)) == 0
    assert tuple(Verdict.from_dict(v.as_dict()) for v in verdicts) == verdicts
    (few,) = evaluate(Gates(max_duration_regression=10), {}, 2.0, None, compared=2)
    assert few.detail == "2 earlier comparable runs, 3 needed (wall 2.00s)" and few.verdict == SKIPPED
