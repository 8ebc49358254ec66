"""Quality gates' verdicts (farm/gates.py): each figure against its limit."""

from __future__ import annotations

from farm.gates import FAILED, PASSED, SKIPPED, Gates, evaluate, failure_line, pass_rate


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
