"""The run history's pure core (farm.run_history): entries, rings, percentiles, flake rates, the K bound."""

from __future__ import annotations

import pytest

from farm.config import Settings
from farm.errors import UsageError
from farm.run_history import (
    MAX_LISTED,
    RunEntry,
    appended,
    decode_run,
    encode_run,
    flake_rates,
    fold,
    percentile,
    ring_durations,
    ring_items,
    run_entry,
)

DIGEST = "d" * 64


def run(n: int, listed: dict[str, str] | None = None, *, digest: str = DIGEST, status: str = "finished",
        wall: float = 1.0, args: tuple[str, ...] = ()) -> RunEntry:
    return RunEntry(f"s{n}", 1000.0 + n, status, 0, wall, digest, "default", args, {"passed": 3}, listed or {})


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_a_ring_keeps_the_last_k_durations_in_float16() -> None:
    ring = None
    for d in range(1, 60):
        (item,) = ring_items([float(d)])
        ring = appended(ring, item, 50)
    assert ring is not None and len(ring) == 100
    assert ring_durations(ring) == [float(d) for d in range(10, 60)]
    assert ring_durations(b"".join(ring_items([0.1234, 1e9, -1.0]))) == [pytest.approx(0.1234, rel=1e-3), 65504.0,
                                                                         0.0]


def test_an_entry_lists_only_the_tests_that_did_not_pass_and_round_trips() -> None:
    e = run_entry(suite_id="s", finished_at=20.0, started_at=12.5, status="finished", exit_code=1, digest=DIGEST,
                  pool="p", pytest_args=("-k", "x"),
                  outcomes=[("a", "passed"), ("b", "failed"), ("c", "skipped"), ("d", "flaky"), ("e", "xfailed")])
    assert e.listed == {"b": "failed", "d": "flaky"} and e.tests == 5 and e.wall_s == 7.5 and e.complete
    assert decode_run(encode_run(e)) == e
    assert decode_run(b"\x93garbage") is None and decode_run(encode_run(e).replace(b"\xa1v\x01", b"\xa1v\x09")) is None


def test_an_entry_of_a_suite_failing_everywhere_stays_bounded() -> None:
    e = run_entry(suite_id="s", finished_at=1.0, started_at=0.0, status="finished", exit_code=1, digest=DIGEST,
                  pool="p", pytest_args=(), outcomes=((f"t{i}", "failed") for i in range(MAX_LISTED + 5)))
    assert len(e.listed) == MAX_LISTED and not e.complete and e.counts == {"failed": MAX_LISTED + 5}


def test_a_test_failing_on_odd_runs_of_one_digest_flips_twice_in_three() -> None:
    runs = [run(1, {"b": "failed"}), run(2), run(3, {"b": "failed"})]
    (f,) = flake_rates(runs, {"b": 3, "a": 3})
    assert (f.test_id, f.flips, f.flaky_runs, f.runs) == ("b", 2, 0, 3) and f.rate == pytest.approx(2 / 3)


def test_a_flaky_outcome_counts_and_a_steady_failure_does_not() -> None:
    runs = [run(1, {"c": "flaky", "d": "failed"}), run(2, {"d": "error"}), run(3, {"d": "timeout"}), run(4)]
    rates = {f.test_id: f for f in flake_rates(runs, {"c": 4, "d": 4})}
    assert rates["c"].flaky_runs == 1 and rates["c"].rate == pytest.approx(1 / 4)
    assert rates["d"].flips == 1 and rates["d"].rate == pytest.approx(1 / 4)  # failed x3, then passed


def test_runs_that_crashed_timed_out_or_were_flaky_count_as_runs_though_their_rings_lack_them() -> None:
    """Only TIMED outcomes put a duration in a test's ring: the others still ran it."""
    runs = [run(1, {"b": "crashed"}), run(2), run(3, {"b": "crashed"}), run(4), run(5, {"b": "flaky"}), run(6)]
    (f,) = flake_rates(runs, {"b": 3})  # the three passes
    assert (f.flips, f.flaky_runs, f.runs) == (3, 1, 6) and f.rate == pytest.approx(4 / 6)


def test_changes_across_digests_or_arguments_are_not_flakes() -> None:
    runs = [run(1, {"b": "failed"}), run(2, digest="e" * 64), run(3, {"b": "failed"}, args=("-x",)),
            run(4, args=("-k", "b"))]
    assert flake_rates(runs, {"b": 4}) == []


def test_runs_that_did_not_finish_give_no_verdict_for_their_unlisted_tests() -> None:
    runs = [run(1, {"b": "failed"}), run(2, status="canceled"), run(3, {"b": "not_run"}), run(4, {"b": "failed"})]
    assert flake_rates(runs, {"b": 3}) == []


def test_the_fold_keeps_the_last_k_runs_and_the_slowest_by_p50() -> None:
    runs = [run(n, wall=float(n)) for n in range(60)]
    rings = {"slow": b"".join(ring_items([5.0, 1.0, 9.0])), "fast": b"".join(ring_items([0.5] * 60))}
    view = fold("p", list(reversed(runs)), rings, keep=50)
    assert [r.suite_id for r in view.runs] == [f"s{n}" for n in range(10, 60)]
    assert [t.test_id for t in view.slowest] == ["slow", "fast"] and view.slowest[0].p50_s == 5.0
    assert view.slowest[1].runs == 50  # a ring longer than K is read to its last K
    assert view.wall is not None and view.wall.median_s == 34.5 and view.wall.last_s == 59.0
    assert len(view.wall.sparkline) == 50 and view.wall.sparkline[0] == "▁" and view.wall.sparkline[-1] == "█"


def test_the_number_of_runs_kept_is_a_setting() -> None:
    assert Settings.from_env({}).history_runs == 50
    assert Settings.from_env({"FARM_HISTORY_RUNS": "7"}).history_runs == 7
    for bad in ("0", "-3", "x", "1.5"):
        with pytest.raises(UsageError, match="FARM_HISTORY_RUNS"):
            Settings.from_env({"FARM_HISTORY_RUNS": bad})
