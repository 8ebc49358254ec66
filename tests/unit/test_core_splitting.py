"""Splitting covers every test exactly once, keeps modules and order, and sizes assignments sanely."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.splitting import module_of, split

# --- strategies -----------------------------------------------------------------------------

SplitArgs = tuple[list[str], int, str, dict[str, float] | None]
MODULES = [f"tests/test_m{i}.py" for i in range(8)]


@st.composite
def suites(draw: st.DrawFn) -> list[str]:
    """Unique node ids, grouped by module in the order pytest collects them (modules contiguous)."""
    sizes = draw(st.lists(st.integers(min_value=1, max_value=15), min_size=1, max_size=len(MODULES)))
    ids = []
    for module, size in zip(MODULES, sizes, strict=False):
        for i in range(size):
            ids.append(f"{module}::test_{i}" if i % 3 else f"{module}::TestC::test_{i}[p-{i}]")
    return ids


@st.composite
def split_inputs(draw: st.DrawFn) -> SplitArgs:
    ids = draw(suites())
    slots = draw(st.integers(min_value=1, max_value=6))
    dist = draw(st.sampled_from(["load", "loadfile"]))
    mode = draw(st.sampled_from(["none", "all", "some", "zero"]))
    durations: dict[str, float] | None
    if mode == "none":
        durations = None
    elif mode == "zero":
        durations = {t: 0.0 for t in ids}
    else:
        chosen = ids if mode == "all" else draw(st.lists(st.sampled_from(ids), min_size=1, unique=True))
        durations = {t: draw(st.floats(min_value=0.0, max_value=20.0)) for t in chosen}
    return ids, slots, dist, durations


FAST = settings(max_examples=80, deadline=None)

# --- coverage and order ---------------------------------------------------------------------


@FAST
@given(split_inputs())
def test_every_test_lands_in_exactly_one_assignment(args: SplitArgs) -> None:
    ids, slots, dist, durations = args
    planned = split(ids, slots=slots, dist=dist, durations=durations)
    placed = Counter(t for p in planned for t in p.test_ids)
    assert placed == Counter(ids)
    assert all(p.test_ids for p in planned), "no assignment is empty"


@FAST
@given(split_inputs())
def test_tests_keep_collection_order_inside_an_assignment(args: SplitArgs) -> None:
    ids, slots, dist, durations = args
    position = {t: i for i, t in enumerate(ids)}
    for p in split(ids, slots=slots, dist=dist, durations=durations):
        indexes = [position[t] for t in p.test_ids]
        assert indexes == sorted(indexes)


@FAST
@given(split_inputs())
def test_loadfile_keeps_each_module_in_one_assignment(args: SplitArgs) -> None:
    ids, slots, _, durations = args
    home: dict[str, int] = {}
    for n, p in enumerate(split(ids, slots=slots, dist="loadfile", durations=durations)):
        for t in p.test_ids:
            assert home.setdefault(module_of(t), n) == n, f"{module_of(t)} is split across assignments"


@FAST
@given(split_inputs())
def test_assignments_come_largest_first(args: SplitArgs) -> None:
    ids, slots, dist, durations = args
    planned = split(ids, slots=slots, dist=dist, durations=durations)
    expected = [p.expected_s for p in planned]
    assert expected == sorted(expected, reverse=True)
    if not durations:
        sizes = [len(p.test_ids) for p in planned]
        assert sizes == sorted(sizes, reverse=True), "without history, bigger assignments go first"


# --- with recorded durations (LPT) ----------------------------------------------------------


@st.composite
def timed_suites(draw: st.DrawFn) -> tuple[list[str], dict[str, float]]:
    ids = draw(suites())
    durations = {t: draw(st.floats(min_value=0.0, max_value=30.0)) for t in ids}
    return ids, durations


@FAST
@given(timed_suites(), st.integers(min_value=1, max_value=6), st.sampled_from(["load", "loadfile"]))
def test_expected_duration_is_the_sum_of_the_recorded_durations(
    suite: tuple[list[str], dict[str, float]], slots: int, dist: str
) -> None:
    ids, durations = suite
    planned = split(ids, slots=slots, dist=dist, durations=durations)
    for p in planned:
        assert p.expected_s == pytest.approx(sum(durations[t] for t in p.test_ids))
    assert sum(p.expected_s for p in planned) == pytest.approx(sum(durations.values()))


@FAST
@given(timed_suites(), st.integers(min_value=1, max_value=6), st.sampled_from(["load", "loadfile"]))
def test_lpt_makespan_is_within_the_list_scheduling_bound(
    suite: tuple[list[str], dict[str, float]], slots: int, dist: str
) -> None:
    # Any greedy "lightest bin first" schedule satisfies max_bin <= total/count + longest unit
    # (the last unit put in the fullest bin went to a bin no fuller than the average).
    ids, durations = suite
    planned = split(ids, slots=slots, dist=dist, durations=durations)
    units: dict[str, float] = {}
    for t in ids:
        unit = t if dist == "load" else module_of(t)
        units[unit] = units.get(unit, 0.0) + durations[t]
    total = sum(units.values())
    bound = total / len(planned) + max(units.values())
    assert max(p.expected_s for p in planned) <= bound + 1e-6


@FAST
@given(
    timed_suites(),
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=1, max_value=5),
    st.floats(min_value=0.5, max_value=10.0),
    st.sampled_from(["load", "loadfile"]),
)
def test_with_history_the_count_respects_slots_per_slot_and_min_assignment_s(
    suite: tuple[list[str], dict[str, float]], slots: int, per_slot: int, min_s: float, dist: str
) -> None:
    ids, durations = suite
    planned = split(ids, slots=slots, dist=dist, durations=durations, per_slot=per_slot,
                    min_assignment_s=min_s)
    n_units = len(ids) if dist == "load" else len({module_of(t) for t in ids})
    total = sum(durations.values())
    assert min(slots, n_units) <= len(planned) <= min(n_units, slots * per_slot)
    # Beyond one per slot, only as many assignments as min_assignment_s allows on average.
    assert len(planned) <= max(slots, total / min_s)
    if total / min_s >= slots * per_slot:
        assert len(planned) == min(n_units, slots * per_slot), "enough work: all assignments are used"


def test_a_test_without_history_is_estimated_at_the_median_of_the_known_ones() -> None:
    ids = ["a.py::t1", "a.py::t2", "a.py::t3", "a.py::new"]
    planned = split(ids, slots=1, durations={"a.py::t1": 1.0, "a.py::t2": 2.0, "a.py::t3": 9.0})
    assert sum(p.expected_s for p in planned) == pytest.approx(1.0 + 2.0 + 9.0 + 2.0)


def test_negative_recorded_durations_count_as_zero() -> None:
    planned = split(["a.py::t1", "a.py::t2"], slots=1, durations={"a.py::t1": -5.0, "a.py::t2": 4.0})
    assert [p.expected_s for p in planned] == [4.0]


def test_with_history_long_tests_spread_over_the_slots() -> None:
    ids = [f"m.py::t{i}" for i in range(8)]
    durations = {t: 10.0 for t in ids}
    planned = split(ids, slots=4, durations=durations, per_slot=1, min_assignment_s=1.0)
    assert sorted(len(p.test_ids) for p in planned) == [2, 2, 2, 2]
    assert all(p.expected_s == 20.0 for p in planned)


def test_with_only_zero_durations_there_is_one_assignment_per_slot() -> None:
    ids = [f"m.py::t{i}" for i in range(50)]
    planned = split(ids, slots=3, durations={t: 0.0 for t in ids})
    assert len(planned) == 3
    assert sorted(len(p.test_ids) for p in planned) == [16, 17, 17]


# --- without history ------------------------------------------------------------------------


@FAST
@given(
    suites(),
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=1, max_value=30),
)
def test_without_history_load_count_follows_min_tests_capped_by_slots(
    ids: list[str], slots: int, per_slot: int, min_tests: int
) -> None:
    planned = split(ids, slots=slots, per_slot=per_slot, min_tests=min_tests)
    n = len(ids)
    wanted = max(slots, math.ceil(n / min_tests))
    assert len(planned) == min(n, slots * per_slot, wanted)
    sizes = [len(p.test_ids) for p in planned]
    assert max(sizes) - min(sizes) <= 1, "contiguous runs of about equal test counts"


@FAST
@given(
    suites(),
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=1, max_value=30),
)
def test_without_history_loadfile_count_stays_within_its_caps(
    ids: list[str], slots: int, per_slot: int, min_tests: int
) -> None:
    planned = split(ids, slots=slots, dist="loadfile", per_slot=per_slot, min_tests=min_tests)
    n_modules = len({module_of(t) for t in ids})
    assert 1 <= len(planned) <= min(n_modules, slots * per_slot, max(slots, math.ceil(len(ids) / min_tests)))


def test_without_history_loadfile_fills_every_slot_when_there_are_enough_modules() -> None:
    # 3 modules, 3 slots: the docstring promises one assignment per slot "as long as there are
    # units to fill them", but the whole suite lands in one assignment and runs serially.
    ids = ["a.py::t", "b.py::t"] + [f"c.py::t{i}" for i in range(10)]
    planned = split(ids, slots=3, dist="loadfile")
    assert len(planned) == 3


def test_without_history_one_big_module_per_slot_is_fine_either_way() -> None:
    ids = [f"c.py::t{i}" for i in range(10)] + ["a.py::t", "b.py::t"]
    planned = split(ids, slots=3, dist="loadfile")
    assert [p.test_ids for p in planned] == [tuple(ids[:10]), ("a.py::t",), ("b.py::t",)]


def test_without_history_small_suites_are_not_cut_below_min_tests_beyond_one_per_slot() -> None:
    ids = [f"m.py::t{i}" for i in range(40)]
    assert len(split(ids, slots=1, min_tests=20)) == 2
    assert len(split(ids, slots=1, min_tests=40)) == 1
    assert len(split(ids, slots=8, min_tests=40)) == 8  # still at least one per slot


# --- edges ----------------------------------------------------------------------------------


def test_empty_input_gives_no_assignments() -> None:
    assert split([], slots=4) == []
    assert split([], slots=4, dist="nonsense") == []


def test_unknown_dist_mode_raises_value_error() -> None:
    with pytest.raises(ValueError, match="each"):
        split(["a.py::t"], slots=1, dist="each")


@pytest.mark.parametrize("slots", [0, -3])
def test_non_positive_slots_count_as_one(slots: int) -> None:
    planned = split([f"m.py::t{i}" for i in range(5)], slots=slots, per_slot=1)
    assert len(planned) == 1


@pytest.mark.parametrize(
    ("node_id", "module"),
    [
        ("tests/test_a.py::test_x", "tests/test_a.py"),
        ("tests/test_a.py::TestC::test_x[a::b]", "tests/test_a.py"),
        ("tests/test_a.py", "tests/test_a.py"),
        ("dir with space/test_ü.py::t[1 2]", "dir with space/test_ü.py"),
    ],
)
def test_module_of_is_the_file_part_of_a_node_id(node_id: str, module: str) -> None:
    assert module_of(node_id) == module


def test_measured_overhead_makes_assignments_longer() -> None:
    ids = [f"m{i % 20}.py::t{i}" for i in range(400)]
    durations = {t: 0.25 for t in ids}  # 100 s in all
    cheap = split(ids, slots=4, durations=durations, per_slot=4, min_assignment_s=3.0, overhead_s=0.1)
    costly = split(ids, slots=4, durations=durations, per_slot=4, min_assignment_s=3.0, overhead_s=2.0)
    assert len(cheap) == 16  # 100 s / 3 s allows 33; capped at slots * per_slot
    assert len(costly) == 5  # no assignment under 10 x 2 s: 100 s / 20 s
    assert sorted(t for p in costly for t in p.test_ids) == sorted(ids)


def test_overhead_never_leaves_slots_idle() -> None:
    ids = [f"m.py::t{i}" for i in range(40)]
    planned = split(ids, slots=8, durations={t: 0.1 for t in ids}, overhead_s=5.0)
    assert len(planned) == 8


def test_assignment_overhead_is_the_median_wall_time_beyond_the_tests() -> None:
    from coordinator.machine import assignment_overhead
    from farm.attempts import Attempt
    from farm.states import AttemptState

    done, failed = AttemptState.DONE, AttemptState.FAILED
    rows = [
        Attempt("a1", 1, done, ("a", "b"), wall_s=3.0),  # 3.0 - 2.0 = 1.0
        Attempt("a2", 1, done, ("c",), wall_s=2.5),  # 2.5 - 1.0 = 1.5
        Attempt("a3", 1, done, ("d",), wall_s=9.0),  # 9.0 - 1.0 = 8.0
        Attempt("a4", 1, failed, ("e",), wall_s=100.0),  # not a normal run: ignored
        Attempt("a5", 1, done, ("f",)),  # no wall time recorded: ignored
    ]
    assert assignment_overhead(rows, {t: 1.0 for t in "abcdef"}) == 1.5
    assert assignment_overhead([], {}) is None


# --- small suites (issue 10: a runner start-up per slot costs more than it saves) -----------

SMALL = [f"tests/test_m{i // 20}.py::test_{i}" for i in range(200)]


def test_a_small_suite_without_history_gets_one_assignment_per_slot() -> None:
    assert len(split(SMALL, slots=2, small_tests=500)) == 2
    assert len(split(SMALL, slots=2, small_tests=0)) == 8, "min_tests alone: 200 / 20, at most 4 a slot"


def test_a_small_fast_suite_with_history_runs_as_one_assignment() -> None:
    durations = {t: 0.001 for t in SMALL}  # 0.2 s in all, below one assignment's overhead
    planned = split(SMALL, slots=2, durations=durations, overhead_s=0.5, small_tests=500)
    assert [len(p.test_ids) for p in planned] == [200]


def test_a_small_suite_whose_tests_take_less_than_two_start_ups_runs_as_one_assignment() -> None:
    # 0.5 s in all: a second runner would save 0.25 s of tests and cost a start-up (~0.3 s).
    durations = {t: 0.0025 for t in SMALL}
    planned = split(SMALL, slots=2, durations=durations, overhead_s=0.5, small_tests=500)
    assert [len(p.test_ids) for p in planned] == [200]


def test_a_small_suite_whose_tests_outweigh_a_start_up_keeps_one_assignment_per_slot() -> None:
    durations = {t: 0.01 for t in SMALL}  # 2 s in all: worth a second runner
    assert len(split(SMALL, slots=2, durations=durations, overhead_s=0.5, small_tests=500)) == 2


def test_a_suite_of_many_fast_tests_is_not_small() -> None:
    ids = [f"tests/test_m{i // 100}.py::test_{i}" for i in range(5000)]
    durations = {t: 0.00001 for t in ids}
    assert len(split(ids, slots=2, durations=durations, overhead_s=0.5, small_tests=500)) == 2
    assert len(split(ids, slots=2, small_tests=500)) == 8


def test_a_large_measured_overhead_does_not_make_a_suite_small() -> None:
    # A loaded machine inflates the measured overhead; the small-suite rule does not follow it.
    durations = {t: 0.005 for t in SMALL}  # 1 s in all
    assert len(split(SMALL, slots=2, durations=durations, overhead_s=3.0, small_tests=500)) == 2
