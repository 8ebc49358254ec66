"""Choosing a suite's quarantine (farm/quarantine.py): listed ids, flake rates from the run history,
and the counts its exit code and gates read without the quarantined tests."""

from __future__ import annotations

from farm.quarantine import LISTED, Quarantine, choose, history_flakes, pack, unpack, without
from farm.run_history import Flake, encode_run, ring_page, run_entry

IDS = ["t.py::a", "t.py::b", "t.py::c[1]", "t.py::c[2]"]


def test_listed_ids_in_the_collection_are_quarantined_and_the_others_warned_about_once() -> None:
    q = choose(["t.py::c[2]", "t.py::nope", "t.py::a", "t.py::nope"], [], 0.0, IDS)
    assert q.tests == {"t.py::a": LISTED, "t.py::c[2]": LISTED}  # in collection order
    assert list(q.tests) == ["t.py::a", "t.py::c[2]"]
    assert q.unknown == ("t.py::nope",)
    assert not choose([], [], 0.0, IDS) and not Quarantine()
    # An id is matched exactly, as pytest prints it: a function's name is not its parameter ids.
    assert choose(["t.py::c"], [], 0.0, IDS).unknown == ("t.py::c",)


def test_a_flake_rate_above_the_threshold_quarantines_and_the_list_says_why_first() -> None:
    flakes = [Flake("t.py::b", 0.4, 2, 0, 5), Flake("t.py::a", 0.2, 1, 0, 5), Flake("t.py::gone", 0.9, 9, 0, 10),
              Flake("t.py::c[1]", 0.5, 0, 2, 4)]
    q = choose(["t.py::c[1]"], flakes, 20.0, IDS)
    # a's 20% is not above 20%; a test no longer collected is not quarantined (nor warned about).
    assert q.tests == {"t.py::b": "flake rate 40% > 20%", "t.py::c[1]": LISTED}
    assert q.unknown == ()
    assert choose([], flakes, 0.0, IDS).tests == {}  # 0: none by rate
    assert choose([], [Flake("t.py::a", 2 / 3, 2, 0, 3)], 12.5, IDS).tests == {"t.py::a": "flake rate 66.7% > 12.5%"}


def test_history_flakes_are_the_rates_farm_history_shows_over_the_last_runs() -> None:
    def run(n: int, outcomes: dict[str, str]) -> bytes:
        return encode_run(run_entry(suite_id=f"s{n}", finished_at=float(n), started_at=0.0, status="finished",
                                    exit_code=0, digest="d", pool="default", pytest_args=(),
                                    outcomes=[(t, outcomes.get(t, "passed")) for t in IDS]))
    # b: flaky in runs 2 and 3; passed (timed, in its ring) in runs 1 and 4. Stored newest last.
    runs = [run(1, {}), run(2, {"t.py::b": "flaky"}), run(3, {"t.py::b": "flaky"}), run(4, {})]
    rings = {"t.py::b": ring_page([0.1, 0.1]), "t.py::a": ring_page([0.1] * 4)}
    (b,) = history_flakes(runs, rings, keep=50)
    assert (b.test_id, b.flaky_runs, b.runs, b.rate) == ("t.py::b", 2, 4, 0.5)
    # The window: the last 2 runs (3 and 4): one flaky run of 2.
    (b2,) = history_flakes(runs, rings, keep=2)
    assert (b2.flaky_runs, b2.runs) == (1, 2)
    assert history_flakes([b"garbage"], {}, keep=50) == []


def test_counts_without_the_quarantined_tests_and_the_kept_form() -> None:
    counts = {"passed": 5, "failed": 2, "flaky": 1}
    assert without(counts, ["failed", "flaky", "not_run"]) == {"passed": 5, "failed": 1, "flaky": 0}
    assert counts == {"passed": 5, "failed": 2, "flaky": 1}  # not changed in place
    q = Quarantine({"t.py::b": LISTED, "t.py::ü[x]": "flake rate 40% > 20%"}, ("t.py::nope",))
    assert unpack(pack(q)) == q
    for bad in (None, "", "{not json", '{"tests": 3}', '{"tests": [["a"]], "unknown": []}'):
        assert unpack(bad) == Quarantine(), bad
