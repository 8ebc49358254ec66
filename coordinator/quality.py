"""Quality gates and quarantine at the coordinator: the store reads they need (the project's run
history, the suite's kept quarantine) around the pure rules of farm/gates.py and farm/quarantine.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from coordinator.store import SuiteStore
from farm import gates, quarantine
from farm.config import Settings
from farm.gates import Verdict
from farm.model import SuiteSpec
from farm.quarantine import Quarantine
from farm.run_history import decode_run

#: The suite field its quarantine is kept in (farm.quarantine.pack), from its planning on.
FIELD = "quarantine"


def choose_quarantine(state: SuiteStore, spec: SuiteSpec, test_ids: Sequence[str], settings: Settings) -> Quarantine:
    """Choose a suite's quarantine as it is planned (`test_ids`: its collection, in order) and
    keep it with the suite; the project's history (rings too) is read only for a flake rate."""
    if not spec.quarantine and not spec.quarantine_flake_rate:
        return Quarantine()
    kept = state.field(spec.suite_id, FIELD)
    if kept is not None:  # chosen already: a duplicate delivery of the collection
        return quarantine.unpack(kept)
    flakes = []
    if spec.quarantine_flake_rate > 0:
        runs, rings = state.run_history(spec.project)
        flakes = quarantine.history_flakes(runs, rings, settings.history_runs)
    chosen = quarantine.choose(spec.quarantine, flakes, spec.quarantine_flake_rate, test_ids)
    if chosen:
        state.set_fields(spec.suite_id, **{FIELD: quarantine.pack(chosen)})
    return chosen


def quarantined(state: SuiteStore, suite_id: str) -> Quarantine:
    """The suite's quarantine, as chosen when it was planned (none before, or without one): its
    tests (id -> why) do not count for its exit code or gates."""
    return quarantine.unpack(state.field(suite_id, FIELD))


def quarantined_outcomes(state: SuiteStore, suite_id: str, q: Quarantine) -> dict[str, str]:
    """The quarantined tests' outcomes as the store holds them now (those without a record left out)."""
    ids = list(q.tests)
    if not ids:
        return {}
    return {t: r.outcome.value for t, r in zip(ids, state.records_of(suite_id, ids), strict=True) if r is not None}


def counts_without_quarantined(state: SuiteStore, suite_id: str, counts: Mapping[str, int]) -> dict[str, int]:
    """The suite's counts (tests by outcome) without its quarantined tests: what exit codes and
    gates read (a stage's too)."""
    q = quarantined(state, suite_id)
    return quarantine.without(counts, quarantined_outcomes(state, suite_id, q).values()) if q.tests else dict(counts)


def verdicts(state: SuiteStore, spec: SuiteSpec, counts: Mapping[str, int], now: float) -> tuple[Verdict, ...]:
    """The suite's gates judged now (`counts` without its quarantined tests): its wall time since
    submission against the median of the project's comparable runs (`farm.gates.comparable_walls`)."""
    if not spec.gates:
        return ()
    wall = max(0.0, now - float(state.field(spec.suite_id, "submitted_at") or now))
    walls: list[float] = []
    if spec.gates.max_duration_regression is not None:
        runs = [e for e in map(decode_run, state.run_entries(spec.project)) if e is not None]
        walls = gates.comparable_walls(runs, suite_id=spec.suite_id, pool=spec.pool, pytest_args=spec.pytest_args)
    return gates.evaluate(spec.gates, counts, wall, gates.median_wall(walls), len(walls))
