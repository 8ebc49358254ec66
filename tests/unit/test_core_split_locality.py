"""Splitting keeps a module's tests together as far as balance allows, balances no worse than LPT
on single tests, and does a linear amount of work."""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from coordinator.splitting import BALANCE_TOLERANCE, module_of, split
from farm.nodeids import function_ids, split_params

FAST = settings(max_examples=80, deadline=None)


def touched(planned: list) -> int:
    return sum(len({module_of(t) for t in p.test_ids}) for p in planned)


def suite(modules: int, per_module: int) -> list[str]:
    return [f"tests/test_m{m:03d}.py::test_{k:04d}" for m in range(modules) for k in range(per_module)]


def classic_lpt_longest(durations: list[float], count: int) -> float:
    """The longest bin of LPT over single tests (the plan before import locality)."""
    bins = [0.0] * count
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(bins, bins[0] + d)
    return max(bins)


@st.composite
def timed_suites(draw: st.DrawFn) -> tuple[list[str], dict[str, float]]:
    sizes = draw(st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=12))
    ids = [f"tests/test_m{m}.py::test_{k}" for m, size in enumerate(sizes) for k in range(size)]
    durations = {t: draw(st.floats(min_value=0.0, max_value=20.0)) for t in ids}
    return ids, durations


# --- locality -------------------------------------------------------------------------------


def test_the_import_heavy_suite_imports_each_module_once_with_history() -> None:
    # The suite: 60 modules x 20 tests of 5 ms, 2 slots. LPT on single tests gave each
    # of the 2 assignments nearly all 60 modules (120 imports of 150 ms).
    ids = suite(60, 20)
    planned = split(ids, slots=2, durations={t: 0.005 for t in ids})
    assert len(planned) == 2
    assert touched(planned) == 60
    assert [len(p.test_ids) for p in planned] == [600, 600]


def test_modules_stay_contiguous_when_one_must_be_split() -> None:
    ids = suite(3, 30)  # 3 modules of 3 s, 2 assignments: one module is cut, once
    planned = split(ids, slots=2, per_slot=1, durations={t: 0.1 for t in ids}, min_assignment_s=1.0)
    assert touched(planned) == 4
    position = {t: i for i, t in enumerate(ids)}
    for p in planned:
        indexes = [position[t] for t in p.test_ids]
        assert indexes == list(range(indexes[0], indexes[0] + len(indexes))), "one contiguous run"


@st.composite
def even_suites(draw: st.DrawFn) -> tuple[list[str], dict[str, float]]:
    """Many tests, none long against an assignment's share."""
    sizes = draw(st.lists(st.integers(min_value=1, max_value=80), min_size=5, max_size=12))
    ids = [f"tests/test_m{m}.py::test_{k}" for m, size in enumerate(sizes) for k in range(size)]
    durations = {t: draw(st.floats(min_value=1.0, max_value=2.0)) for t in ids}
    return ids, durations


@FAST
@given(even_suites(), st.integers(min_value=1, max_value=3))
def test_with_history_each_cut_splits_at_most_one_module_when_tests_are_short(
    suite_: tuple[list[str], dict[str, float]], slots: int
) -> None:
    ids, durations = suite_
    planned = split(ids, slots=slots, per_slot=1, durations=durations)
    assume(max(durations.values()) <= BALANCE_TOLERANCE * sum(durations.values()) / len(planned))
    assert touched(planned) <= len({module_of(t) for t in ids}) + len(planned) - 1


def test_many_small_modules_are_not_scattered() -> None:
    rng = random.Random(4)
    ids = suite(200, 25)
    planned = split(ids, slots=4, durations={t: rng.uniform(0.01, 0.05) for t in ids})
    assert touched(planned) <= 200 + len(planned) - 1  # LPT on single tests: about 200 per assignment


# --- balance --------------------------------------------------------------------------------


@FAST
@given(timed_suites(), st.integers(min_value=1, max_value=6))
def test_balance_is_no_worse_than_lpt_on_single_tests(suite_: tuple[list[str], dict[str, float]],
                                                      slots: int) -> None:
    ids, durations = suite_
    planned = split(ids, slots=slots, durations=durations)
    reference = classic_lpt_longest(list(durations.values()), len(planned))
    longest = max(p.expected_s for p in planned)
    share = sum(durations.values()) / len(planned)
    bound = (1 + BALANCE_TOLERANCE) * max(reference, share, max(durations.values()))
    assert longest <= bound + 1e-9


def test_the_skewed_suite_balances_as_well_as_before() -> None:
    # 20 modules x 20 sleeping tests, lognormal sigma 1.2 (bench/suites.py), 16 slots.
    rng = random.Random(1)
    raw = [rng.lognormvariate(0.0, 1.2) for _ in range(400)]
    ids = suite(20, 20)
    durations = {t: d * 120.0 / sum(raw) for t, d in zip(ids, raw, strict=True)}
    planned = split(ids, slots=16, durations=durations)
    reference = classic_lpt_longest(list(durations.values()), len(planned))
    assert max(p.expected_s for p in planned) <= (1 + BALANCE_TOLERANCE) * reference
    assert touched(planned) <= 20 + len(planned) - 1


# --- linear work ----------------------------------------------------------------------------


class CountingDurations(Mapping[str, float]):
    """A durations mapping that counts the lookups made in it."""

    def __init__(self, data: dict[str, float]) -> None:
        self.data = data
        self.lookups = 0

    def __getitem__(self, key: str) -> float:
        self.lookups += 1
        return self.data[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.lookups += 1
        return self.data.get(key, default)

    def __contains__(self, key: object) -> bool:
        self.lookups += 1
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


@pytest.mark.parametrize("missing", [False, True])
def test_each_test_is_looked_up_once_whatever_the_size(missing: bool) -> None:
    for n in (1_000, 20_000):
        ids = suite(n // 100, 100)
        counting = CountingDurations({t: 0.01 for t in ids[: n - 10 if missing else n]})
        split(ids, slots=8, durations=counting)
        assert counting.lookups <= n, f"{counting.lookups} lookups for {n} tests"


def test_the_work_of_a_split_grows_linearly_with_the_tests() -> None:
    # Count Python-level steps of the split (profile hook events), not time.
    import sys

    def steps(n: int) -> int:
        ids = suite(n // 50, 50)
        durations = {t: 0.001 * (i % 7 + 1) for i, t in enumerate(ids)}
        count = 0

        def hook(frame: object, event: str, arg: object) -> None:
            nonlocal count
            count += 1

        sys.setprofile(hook)
        try:
            split(ids, slots=8, durations=durations)
        finally:
            sys.setprofile(None)
        return count

    small, large = steps(2_000), steps(40_000)
    assert large <= 25 * small, f"{large} steps for 20x the tests, {small} for 1x"


# --- node ids -------------------------------------------------------------------------------


@FAST
@given(st.lists(st.text(alphabet="ab:[]/.", max_size=12), max_size=20))
def test_function_ids_agree_with_split_params(node_ids: list[str]) -> None:
    expected = [f if p is not None else None for f, p in map(split_params, node_ids)]
    assert function_ids(node_ids) == expected


@pytest.mark.parametrize("seed", range(4))
def test_a_test_longer_than_a_share_gets_an_assignment_of_its_own(seed: int) -> None:
    # The skewed suite's durations (lognormal, sigma 1.2, 400 tests, 120 s; the longest 11.1 s),
    # as a history measures them (a few percent off): nothing rides along with the longest test,
    # though three short tests of its module could within the balance tolerance.
    rnd = random.Random(1)
    raw = [rnd.lognormvariate(0.0, 1.2) for _ in range(400)]
    scale = 120.0 / sum(raw)
    noisy = random.Random(seed)
    ids = [f"test_skewed_{i // 20:02d}.py::test_{i:04d}" for i in range(400)]
    durations = {t: d * scale * noisy.uniform(0.97, 1.03) + 0.002 for t, d in zip(ids, raw, strict=True)}
    planned = split(ids, slots=16, dist="load", durations=durations, per_slot=1, min_assignment_s=0.5)
    longest = max(durations, key=durations.__getitem__)
    (critical,) = [p for p in planned if longest in p.test_ids]
    assert critical.test_ids == (longest,)
    assert max(p.expected_s for p in planned) == pytest.approx(durations[longest])
