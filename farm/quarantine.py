"""Quarantine (pure): which tests of a suite run without failing it, and the counts its exit code
and gates read without them.

A test is quarantined when it is listed (`--quarantine TEST_ID`, its id as pytest prints it) or
when its flake rate in the project's run history (`farm.run_history.flake_rates`, over the last
K runs, as `farm history` shows it) is above the suite's `quarantine_flake_rate`. The choice is
made once, when the suite is planned, and kept with the suite: every report of it shows the same set.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from farm.run_history import RING_ITEM, Flake, decode_run, flake_rates

LISTED = "listed"


@dataclass(frozen=True)
class Quarantine:
    """A suite's quarantined tests (test id -> why, in collection order) and the listed ids that
    are not in its collection (a warning in the report, not an error)."""

    tests: Mapping[str, str] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.tests or self.unknown)


def choose(listed: Sequence[str], flakes: Iterable[Flake], rate_pct: float, test_ids: Sequence[str],
           known: Collection[str] | None = None) -> Quarantine:
    """The quarantine of a suite whose collection gave `test_ids` (in order; `known`: the same as
    a set, if the caller has one): the listed ids it has ("listed"), then those whose flake rate
    is above `rate_pct` percent ("flake rate 40% > 20%"; 0: none by rate)."""
    ids = known if known is not None else frozenset(test_ids)
    reasons: dict[str, str] = {}
    unknown: list[str] = []
    for test_id in dict.fromkeys(listed):
        if test_id in ids:
            reasons[test_id] = LISTED
        else:
            unknown.append(test_id)
    if rate_pct > 0:
        for flake in flakes:
            pct = 100.0 * flake.rate
            if pct > rate_pct and flake.test_id in ids and flake.test_id not in reasons:
                reasons[flake.test_id] = f"flake rate {round(pct, 1):g}% > {rate_pct:g}%"
    if len(reasons) > 1:  # in collection order, as the reports list tests
        reasons = {t: reasons[t] for t in test_ids if t in reasons}
    return Quarantine(reasons, tuple(unknown))


def history_flakes(runs: Sequence[bytes], rings: Mapping[str, bytes], keep: int) -> list[Flake]:
    """The flake rates of a project's stored run history (its entries, oldest first, and duration
    rings), over its last `keep` runs: what `farm history PROJECT` lists as flaky."""
    entries = sorted((e for e in map(decode_run, runs) if e is not None), key=lambda e: e.finished_at)
    window = entries[-keep:] if keep > 0 else []
    lengths = {t: min(len(ring) // RING_ITEM, keep) for t, ring in rings.items()}
    return flake_rates(window, lengths)


def without(counts: Mapping[str, int], outcomes: Iterable[str]) -> dict[str, int]:
    """`counts` (tests by outcome) with the quarantined tests' `outcomes` taken out."""
    out = dict(counts)
    for outcome in outcomes:
        if out.get(outcome, 0) > 0:
            out[outcome] -= 1
    return out


def pack(q: Quarantine) -> str:
    """How a suite keeps its quarantine (a field of its state; JSON)."""
    return json.dumps({"tests": [[t, why] for t, why in q.tests.items()], "unknown": list(q.unknown)},
                      ensure_ascii=False)


def unpack(text: str | None) -> Quarantine:
    """The quarantine `pack` kept (none for a suite without one, or a value this farm cannot read)."""
    if not text:
        return Quarantine()
    try:
        d = json.loads(text)
        tests = {str(t): str(why) for t, why in d["tests"]}
        unknown = tuple(str(t) for t in d["unknown"])
    except (ValueError, TypeError, KeyError):
        return Quarantine()
    return Quarantine(tests, unknown)


def entries(q: Mapping[str, str], outcomes: Mapping[str, str]) -> list[dict[str, str]]:
    """The report's `quarantined` list: each quarantined test with its real outcome and why."""
    return [{"test_id": t, "outcome": outcomes.get(t, "not_run"), "reason": why} for t, why in q.items()]
