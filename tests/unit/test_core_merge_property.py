"""Issue 3: any interleaving, duplication and reordering of partial, complete and stale records
gives the same final report.

The model: a fixed set of tests, each owned by one attempt ("assignment#attempt", the `owners`
mapping the state store keeps). The owner sends at most one real outcome per test ("complete",
possibly duplicated) and NOT_RUN verdicts that race it ("partial": the coordinator's verdict for
an attempt's tests still pending when it ends, merged under that attempt's key); any other
attempt's records are "stale" and carry any outcome. The store is simulated as
`coordinator.state.SuiteState.merge` drives `coordinator.aggregate.merge`: per batch (one
attempt's records) the held outcomes of the batch's tests go in, `counted` is written back,
`deltas` are summed into the counts and `attempts` rows are HSET by their key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.aggregate import PENDING, Merge, merge
from farm.model import TestRecord as Record
from farm.model import TestRun
from farm.outcomes import Outcome

REAL = [o for o in Outcome if o is not Outcome.NOT_RUN]
SOURCES = [(a, n) for a in ("a", "b", "c") for n in (1, 2, 3)]  # (assignment, attempt)

Source = tuple[str, int]
Batch = tuple[Source, list[Record]]


def key_of(source: Source) -> str:
    return f"{source[0]}#{source[1]}"


@dataclass(frozen=True)
class Sent:
    """One record as one attempt sent it, and what it is in the model."""

    source: Source
    record: Record
    kind: str  # "complete", "partial" or "stale"


@dataclass(frozen=True)
class Scenario:
    tests: tuple[str, ...]
    owners: dict[str, str]  # test id -> "assignment#attempt"
    real: dict[str, Outcome]  # the owner's real outcome, for the tests whose owner sent one
    sent: tuple[Sent, ...]  # the base multiset of records, in a base order

    def expected(self, test_id: str) -> str:
        if test_id in self.real:
            return self.real[test_id].value
        if any(s.kind == "partial" and s.record.test_id == test_id for s in self.sent):
            return Outcome.NOT_RUN.value
        return PENDING


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    tests = tuple(f"t.py::test_{i}" for i in range(draw(st.integers(1, 5))))
    owners: dict[str, str] = {}
    real: dict[str, Outcome] = {}
    sent: list[Sent] = []
    for t in tests:
        owner = draw(st.sampled_from(SOURCES))
        owners[t] = key_of(owner)
        if draw(st.booleans()):
            real[t] = draw(st.sampled_from(REAL))
            record = Record(t, real[t], duration_s=draw(st.sampled_from([0.0, 0.25, 1.5])), started_at=10.0)
            sent += [Sent(owner, record, "complete")] * draw(st.integers(1, 3))
        for _ in range(draw(st.integers(0, 2))):
            sent.append(Sent(owner, Record(t, Outcome.NOT_RUN, phase="", message="verdict"), "partial"))
        others = [s for s in SOURCES if s != owner]
        for _ in range(draw(st.integers(0, 3))):
            stale = Record(t, draw(st.sampled_from(list(Outcome))), duration_s=0.5, started_at=5.0)
            sent.append(Sent(draw(st.sampled_from(others)), stale, "stale"))
    return Scenario(tests, owners, real, tuple(draw(st.permutations(sent))))


def base_batches(sent: tuple[Sent, ...] | list[Sent]) -> list[Batch]:
    """The records in the given order, one batch per run of records of one attempt."""
    batches: list[Batch] = []
    for s in sent:
        if batches and batches[-1][0] == s.source:
            batches[-1][1].append(s.record)
        else:
            batches.append((s.source, [s.record]))
    return batches


@st.composite
def schedules(draw: st.DrawFn, sent: tuple[Sent, ...]) -> list[Batch]:
    """The same records duplicated at will, in any order, cut into batches of one attempt each."""
    extra = draw(st.lists(st.sampled_from(sent), max_size=6)) if sent else []
    shuffled = draw(st.permutations(list(sent) + extra))
    batches: list[Batch] = []
    for s in shuffled:
        if batches and batches[-1][0] == s.source and draw(st.booleans()):
            batches[-1][1].append(s.record)
        else:
            batches.append((s.source, [s.record]))
    return batches


@dataclass
class Store:
    """The suite's state as the Redis store keeps it: outcomes, counts, done and attempt rows."""

    owners: dict[str, str]
    held: dict[str, str]
    counts: Counter[str] = field(default_factory=Counter)
    done: int = 0
    rows: dict[str, TestRun] = field(default_factory=dict)

    @classmethod
    def of(cls, scenario: Scenario) -> Store:
        return cls(dict(scenario.owners), {t: PENDING for t in scenario.tests})

    def apply(self, source: Source, batch: list[Record]) -> Merge:
        ids = list(dict.fromkeys(r.test_id for r in batch))
        result = merge({t: self.held.get(t) for t in ids}, batch, assignment=source[0], attempt=source[1],
                       worker="w", node="n", owners={t: self.owners[t] for t in ids if t in self.owners})
        before = dict(self.held)
        for t, record in result.counted.items():
            self.held[t] = record.outcome.value
        self.counts.update(result.deltas)
        self.done += result.newly_final
        self.rows.update(result.runs)
        for key, row in result.verdicts.items():  # HSETNX
            self.rows.setdefault(key, row)

        me = key_of(source)
        assert result.unknown == []
        for t in result.counted:
            assert self.owners[t] == me, f"{t} counted from {me}, which does not own it"
        assert result.fenced == sum(1 for r in batch if self.owners[r.test_id] != me)
        for t, was in before.items():
            if was not in (PENDING, Outcome.NOT_RUN.value):
                assert self.held[t] == was, f"the real outcome of {t} was replaced"
        assert all(v >= 0 for v in self.counts.values()), f"negative count: {self.counts}"
        return result

    def play(self, batches: list[Batch]) -> Store:
        for source, batch in batches:
            self.apply(source, batch)
        return self

    def summary(self) -> tuple[dict[str, str], dict[str, int], int, frozenset[tuple[str, str, int, bool]]]:
        rows = frozenset((r.test_id, r.assignment, r.attempt, r.fenced) for r in self.rows.values())
        return dict(self.held), {k: v for k, v in self.counts.items() if v}, self.done, rows


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_interleaving_of_partial_complete_and_stale_records_gives_the_same_result(
        data: st.DataObject) -> None:
    scenario = data.draw(scenarios())
    base = Store.of(scenario).play(base_batches(scenario.sent))
    held, counts, done, rows = base.summary()

    # 1. every permutation, batching and duplication of the same records ends the same
    for _ in range(3):
        other = Store.of(scenario).play(data.draw(schedules(scenario.sent)))
        assert other.summary() == base.summary()

    # 2. stale records never count but are all kept, fenced; the owner's real outcome wins
    assert held == {t: scenario.expected(t) for t in scenario.tests}
    for s in scenario.sent:
        row = base.rows.get(TestRun(s.record.test_id, s.source[0], s.source[1], "", "", "", 0.0, 0.0).key)
        assert row is not None, f"no attempt row for {s}"
        assert row.fenced == (s.kind == "stale")
    assert rows == {(s.record.test_id, s.source[0], s.source[1], s.kind == "stale") for s in scenario.sent}

    # 3. the counts are the outcomes of the tests that are no longer pending
    decided = [v for v in held.values() if v != PENDING]
    assert counts == dict(Counter(decided))
    assert sum(counts.values()) == len(decided) == done
    assert all(v > 0 for v in counts.values())


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_applying_every_batch_a_second_time_changes_nothing(data: st.DataObject) -> None:
    scenario = data.draw(scenarios())
    batches = data.draw(schedules(scenario.sent))
    store = Store.of(scenario).play(batches)
    before = store.summary()
    rows = dict(store.rows)
    for source, batch in batches:
        again = store.apply(source, batch)
        assert again.counted == {}
        assert {k: v for k, v in again.deltas.items() if v} == {}
        assert again.newly_final == 0
    assert store.summary() == before
    assert store.rows == rows  # the same HSETs in the same order leave the same rows


def test_the_owners_attempt_row_does_not_depend_on_when_the_not_run_verdict_lands() -> None:
    t = "t.py::test_0"
    scenario = Scenario((t,), {t: "a#1"}, {t: Outcome.PASSED}, ())
    real = Record(t, Outcome.PASSED, duration_s=1.5, started_at=10.0)
    verdict = Record(t, Outcome.NOT_RUN, phase="", message="the runner ended before running this test")

    first = Store.of(scenario).play([(("a", 1), [real]), (("a", 1), [verdict])])
    second = Store.of(scenario).play([(("a", 1), [verdict]), (("a", 1), [real])])
    assert first.summary() == second.summary()  # counted outcome, counts and row keys agree...
    assert first.rows == second.rows  # ...but the row itself (outcome, duration) does not
