"""Merging records is order- and duplication-proof; phases fold as pytest counts; exit codes as pytest's."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.aggregate import PENDING, Merge, merge
from farm.model import TestRecord as Record
from farm.outcomes import Outcome, exit_code_for, fold_phases, supersedes

REAL = [o for o in Outcome if o is not Outcome.NOT_RUN]
Source = tuple[str, int]  # assignment, attempt
Sourced = tuple[Source, Record]
Batch = tuple[Source, list[Record]]

# --- a simulated state store ----------------------------------------------------------------


@dataclass
class Store:
    """What the state store keeps for a suite: per test the held outcome, and the counts."""

    held: dict[str, str]
    counts: Counter[str] = field(default_factory=Counter)
    final: int = 0
    rows: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, tests: list[str]) -> Store:
        return cls({t: PENDING for t in tests})

    def apply(self, batch: list[Record], source: Source = ("a1", 1)) -> Merge:
        result = merge(self.held, batch, assignment=source[0], attempt=source[1], worker="w", node="n")
        for test_id, record in result.counted.items():
            self.held[test_id] = record.outcome.value
        self.counts.update(result.deltas)
        self.final += result.newly_final
        self.rows.update(result.runs)
        self.rows.update(result.verdicts)  # row keys only: HSETNX writes a key that HSET would
        return result

    def summary(self) -> tuple[dict[str, str], dict[str, int], int]:
        return dict(self.held), {k: v for k, v in self.counts.items() if v}, self.final


def rec(test_id: str, outcome: Outcome) -> Record:
    return Record(test_id=test_id, outcome=outcome, duration_s=0.5, started_at=1.0)


# --- the order- and duplication-independence property ----------------------------------------

TESTS = [f"t.py::test_{i}" for i in range(6)]
UNKNOWN = ["t.py::ghost", "other.py::test_x"]
SOURCES = [("a1", 1), ("a1", 2), ("a2", 1), ("a3", 4)]  # assignment, attempt


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Sourced], dict[str, Outcome]]:
    """Records from several assignment attempts, at most one real outcome per test, plus NOT_RUNs."""
    records: list[Sourced] = []
    real: dict[str, Outcome] = {}
    for t in TESTS:
        if draw(st.booleans()):
            real[t] = draw(st.sampled_from(REAL))
            src = draw(st.sampled_from(SOURCES))
            records += [(src, rec(t, real[t]))] * draw(st.integers(1, 3))
        for _ in range(draw(st.integers(0, 2))):
            records.append((draw(st.sampled_from(SOURCES)), rec(t, Outcome.NOT_RUN)))
    for t in draw(st.lists(st.sampled_from(UNKNOWN), max_size=3)):
        records.append((draw(st.sampled_from(SOURCES)), rec(t, draw(st.sampled_from(list(Outcome))))))
    return records, real


@st.composite
def schedules(draw: st.DrawFn, records: list[Sourced]) -> list[Batch]:
    """The same records in any order, any duplication, cut into batches of one source each."""
    extra = draw(st.lists(st.sampled_from(records), max_size=4)) if records else []
    shuffled = draw(st.permutations(records + extra))
    batches: list[Batch] = []
    for src, record in shuffled:
        if batches and batches[-1][0] == src and draw(st.booleans()):
            batches[-1][1].append(record)
        else:
            batches.append((src, [record]))
    return batches


def expected_outcome(t: str, records: list[Sourced], real: dict[str, Outcome]) -> str:
    if t in real:
        return real[t].value
    if any(r.test_id == t for _, r in records):
        return Outcome.NOT_RUN.value
    return PENDING


def play(batches: list[Batch]) -> Store:
    store = Store.of(TESTS)
    for src, batch in batches:
        before = dict(store.held)
        result = store.apply(batch, src)
        assert not set(result.counted) & set(UNKNOWN), "unknown tests are never counted"
        assert set(result.unknown) == {r.test_id for r in batch if r.test_id in UNKNOWN}
        for t, was in before.items():
            if was not in (PENDING, Outcome.NOT_RUN.value):
                assert store.held[t] == was, f"final outcome of {t} was replaced"
    return store


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_any_order_batching_and_duplication_merge_to_the_same_outcomes(data: st.DataObject) -> None:
    records, real = data.draw(deliveries())
    first = play(data.draw(schedules(records)))
    second = play(data.draw(schedules(records)))
    assert first.summary() == second.summary()
    assert set(first.rows) == set(second.rows)

    held, counts, final = first.summary()
    assert held == {t: expected_outcome(t, records, real) for t in TESTS}
    assert counts == dict(Counter(v for v in held.values() if v != PENDING))
    assert final == sum(1 for v in held.values() if v != PENDING)
    assert not any(u in r for u in UNKNOWN for r in first.rows), "no attempt rows for unknown tests"


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_applying_the_same_batch_again_changes_nothing(data: st.DataObject) -> None:
    records, _ = data.draw(deliveries())
    store = play(data.draw(schedules(records)))
    batch = [r for _, r in data.draw(st.lists(st.sampled_from(records), max_size=8))] if records else []
    store.apply(batch)
    before = store.summary()
    again = store.apply(batch)
    assert again.counted == {}
    assert {k: v for k, v in again.deltas.items() if v} == {}
    assert again.newly_final == 0
    assert store.summary() == before


# --- precedence, documented case by case -----------------------------------------------------


def test_the_first_real_outcome_wins_over_a_later_different_one() -> None:
    t = TESTS[0]
    store = Store.of([t])
    store.apply([rec(t, Outcome.PASSED)], ("a1", 1))
    late = store.apply([rec(t, Outcome.FAILED)], ("a1", 2))
    assert store.held[t] == "passed"
    assert late.counted == {} and late.deltas == {}
    assert set(late.runs) == {f"{t}\0a1\x002"}, "the later attempt is still kept as an attempt row"

    other = Store.of([t])  # the other order: the other outcome wins
    other.apply([rec(t, Outcome.FAILED)], ("a1", 2))
    other.apply([rec(t, Outcome.PASSED)], ("a1", 1))
    assert other.held[t] == "failed"


def test_a_real_outcome_replaces_not_run_and_moves_the_count() -> None:
    t = TESTS[0]
    store = Store.of([t])
    first = store.apply([rec(t, Outcome.NOT_RUN)])
    assert first.newly_final == 1 and first.deltas == {"not_run": 1}
    second = store.apply([rec(t, Outcome.ERROR)], ("a1", 2))
    assert second.newly_final == 0
    assert second.deltas == {"not_run": -1, "error": 1}
    assert store.held[t] == "error"


def test_not_run_never_replaces_a_runner_outcome() -> None:
    t = TESTS[0]
    store = Store.of([t])
    store.apply([rec(t, Outcome.SKIPPED)])
    late = store.apply([rec(t, Outcome.NOT_RUN)], ("a9", 3))
    assert late.counted == {} and late.deltas == {} and late.newly_final == 0
    assert store.held[t] == "skipped"


def test_records_inside_one_batch_are_merged_in_sequence() -> None:
    t = TESTS[0]
    result = merge({t: PENDING}, [rec(t, Outcome.NOT_RUN), rec(t, Outcome.PASSED), rec(t, Outcome.FAILED)],
                   assignment="a", attempt=1, worker="w", node="n")
    assert result.counted[t].outcome is Outcome.PASSED
    assert {k: v for k, v in result.deltas.items() if v} == {"passed": 1}
    assert result.newly_final == 1


def test_records_for_unknown_tests_are_listed_and_not_counted() -> None:
    held = {"known": PENDING, "gone": None}  # None: the store does not know the test
    batch = [rec("stranger", Outcome.FAILED), rec("gone", Outcome.PASSED), rec("known", Outcome.PASSED)]
    result = merge(held, batch, assignment="a", attempt=1, worker="w", node="n")
    assert result.unknown == ["stranger", "gone"]
    assert set(result.counted) == {"known"}
    assert result.deltas == {"passed": 1}
    assert [row.test_id for row in result.runs.values()] == ["known"]


def test_merge_does_not_mutate_the_held_mapping() -> None:
    held = {"t": PENDING}
    merge(held, [rec("t", Outcome.PASSED)], assignment="a", attempt=1, worker="w", node="n")
    assert held == {"t": PENDING}


def test_attempt_rows_carry_where_and_how_the_test_ran() -> None:
    record = Record("t", Outcome.FAILED, duration_s=2.5, started_at=100.0)
    result = merge({"t": PENDING}, [record], assignment="a7", attempt=3, worker="w1", node="vm-2")
    (row,) = result.runs.values()
    assert (row.test_id, row.assignment, row.attempt, row.worker, row.node) == ("t", "a7", 3, "w1", "vm-2")
    assert (row.outcome, row.duration_s, row.started_at) == ("failed", 2.5, 100.0)
    assert row.key == "t\0a7\x003"


@pytest.mark.parametrize("held", [None, *Outcome])
@pytest.mark.parametrize("new", list(Outcome))
def test_supersedes_ranks_nothing_below_not_run_below_real(new: Outcome, held: Outcome | None) -> None:
    rank = {None: 0, Outcome.NOT_RUN: 1}
    assert supersedes(new, held) == (rank.get(new, 2) > rank.get(held, 2))
    if held is not None:
        assert not (supersedes(new, held) and supersedes(held, new)), "antisymmetric"


def test_supersedes_is_never_true_for_the_same_outcome() -> None:
    assert not any(supersedes(o, o) for o in Outcome)


# --- folding pytest's phases ------------------------------------------------------------------

# (setup, call, teardown) categories as pytest_report_teststatus gives them, and the one outcome
# farm reports; pytest's own count is in the comment.
FOLDS = [
    (("", "passed", ""), Outcome.PASSED),  # 1 passed
    (("", "failed", ""), Outcome.FAILED),  # 1 failed (also a strict xpass)
    (("error", "", ""), Outcome.ERROR),  # setup error: 1 error
    (("error", "", "error"), Outcome.ERROR),  # setup and teardown error: 2 errors, one test
    (("skipped", "", ""), Outcome.SKIPPED),  # skip mark / skip in a fixture: 1 skipped
    (("skipped", "", "error"), Outcome.ERROR),  # 1 skipped, 1 error
    (("", "skipped", ""), Outcome.SKIPPED),  # pytest.skip() in the test body
    (("", "skipped", "error"), Outcome.ERROR),  # 1 skipped, 1 error
    (("", "failed", "error"), Outcome.FAILED),  # 1 failed, 1 error: the call's failure is reported
    (("", "passed", "error"), Outcome.ERROR),  # 1 passed, 1 error
    (("", "xfailed", ""), Outcome.XFAILED),  # 1 xfailed
    (("", "xpassed", ""), Outcome.XPASSED),  # 1 xpassed
    (("", "xfailed", "error"), Outcome.ERROR),  # 1 xfailed, 1 error
    (("", "xpassed", "error"), Outcome.ERROR),  # 1 xpassed, 1 error
]


@pytest.mark.parametrize(("phases", "outcome"), FOLDS, ids=["/".join(p) or "-" for p, _ in FOLDS])
def test_fold_phases_reports_what_pytest_reports(phases: tuple[str, str, str], outcome: Outcome) -> None:
    assert fold_phases(*phases) is outcome


@pytest.mark.parametrize("teardown", ["", "passed"])
def test_fold_phases_xfail_decided_at_setup_is_xfailed(teardown: str) -> None:
    # pytest reports "XFAIL at setup" for @xfail(run=False) and for an xfail test whose fixture
    # raises: the setup phase's category is "xfailed" and the call phase never runs.
    assert fold_phases("xfailed", "", teardown) is Outcome.XFAILED


# --- exit codes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "canceled", "collected", "code"),
    [
        ({"passed": 3}, False, 3, 0),
        ({"passed": 1, "skipped": 1, "xfailed": 1, "xpassed": 1}, False, 4, 0),
        ({"skipped": 2}, False, 2, 0),
        ({"passed": 2, "failed": 1}, False, 3, 1),
        ({"passed": 2, "error": 1}, False, 3, 1),
        ({"passed": 2, "failed": 0, "error": 0}, False, 2, 0),
        ({"failed": 1}, True, 1, 2),
        ({"not_run": 3}, True, 3, 2),
        ({}, True, 0, 2),
        ({}, False, 0, 5),
        ({"skipped": 1}, False, 0, 5),  # only a module-level skip: pytest says no tests collected
        ({"passed": 2, "not_run": 1}, False, 3, 3),  # the farm failed to run a test
        ({"failed": 1, "not_run": 1}, False, 2, 1),  # pytest -x: a failure, then the rest not run
    ],
)
def test_exit_code_matches_pytest(counts: dict[str, int], canceled: bool, collected: int, code: int) -> None:
    assert exit_code_for(counts, interrupted=canceled, collected=collected) == code


def test_failures_are_failed_error_timeout_and_crashed() -> None:
    assert {o for o in Outcome if o.is_failure} == {Outcome.FAILED, Outcome.ERROR, Outcome.TIMEOUT, Outcome.CRASHED}


@pytest.mark.parametrize("outcome", ["timeout", "crashed"])
def test_a_timeout_or_a_crash_fails_the_suite(outcome: str) -> None:
    assert exit_code_for({"passed": 3, outcome: 1}, interrupted=False, collected=4) == 1


def test_a_pass_of_a_test_run_again_after_failing_is_flaky() -> None:
    held = {"t": PENDING, "u": PENDING}
    result = merge(held, [Record("t", Outcome.PASSED), Record("u", Outcome.FAILED)], assignment="r01", attempt=1,
                   worker="w", node="n", rerun={"t", "u"})
    assert result.counted["t"].outcome is Outcome.FLAKY
    assert result.counted["t"].message == "failed, then passed when run again"
    assert result.counted["u"].outcome is Outcome.FAILED  # still failing: not flaky
    assert result.runs["t\0r01\x001"].outcome == "passed"  # the attempt says what the runner saw
    assert merge({"t": PENDING}, [Record("t", Outcome.PASSED)], assignment="a", attempt=1, worker="w",
                 node="n").counted["t"].outcome is Outcome.PASSED  # not run again: a plain pass


@pytest.mark.parametrize(("strict", "code"), [(False, 0), (True, 1)])
def test_flaky_passes_unless_strict(strict: bool, code: int) -> None:
    assert exit_code_for({"passed": 2, "flaky": 1}, interrupted=False, collected=3, strict_flaky=strict) == code
