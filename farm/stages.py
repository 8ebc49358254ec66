"""Stages (--stage NAME=PYTEST_ARGS): which stage each test belongs to, and whether a stage that ended
lets the next one start (pure: collections' ids and counts in, decisions out).

A stage's tests are those its pytest args select (collected with the suite's args followed by the
stage's) that no earlier stage selected; a stage with no args takes every test left. A test no stage
selects is not part of the suite, as a test pytest deselects. Tests decided at collection (a
module-level skip) belong to no stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from farm.gates import FAILED, Gates, Verdict, evaluate
from farm.model import Stage
from farm.outcomes import FAILURES, Outcome

#: A stage's status in the report.
PASSED = "passed"
FAILED_STAGE = "failed"
NOT_STARTED = "not_started"
RUNNING = "running"  # started, the suite ended before it did (a deadline, a cancel): never in a report


def assign(base: Sequence[str], selections: Sequence[Sequence[str] | None]) -> tuple[list[str], list[int]]:
    """The suite's runnable tests in the base collection's order, and each one's stage (an index
    into `selections`): the first stage whose selection holds it. `selections[k]` is what stage k's
    own collection found (None: a stage without args, which takes every test left). Tests no stage
    selects are left out; a stage's selection outside the base collection is ignored."""
    chosen = [None if s is None else frozenset(s) for s in selections]
    ids: list[str] = []
    stage_of: list[int] = []
    for test_id in base:
        for k, selected in enumerate(chosen):
            if selected is None or test_id in selected:
                ids.append(test_id)
                stage_of.append(k)
                break
    return ids, stage_of


def groups(test_ids: Sequence[str], stage_of: Sequence[int], stages: int) -> list[list[str]]:
    """The tests of each of `stages` stages, in the collection's order."""
    out: list[list[str]] = [[] for _ in range(stages)]
    for test_id, k in zip(test_ids, stage_of, strict=True):
        out[k].append(test_id)
    return out


def stage_gates(gates: Gates) -> Gates:
    """The suite's gates as a stage is judged on: all but max-duration-regression, which compares
    the whole suite's wall time with its history."""
    return replace(gates, max_duration_regression=None)


@dataclass(frozen=True)
class Judgement:
    """Whether a stage that ended passed, and why not."""

    passed: bool
    why: str  # "" when it passed; else "had failures" or "failed its gates"
    verdicts: tuple[Verdict, ...] = ()

    @property
    def status(self) -> str:
        return PASSED if self.passed else FAILED_STAGE


def judge(counts: Mapping[str, int], gates: Gates, *, strict_flaky: bool = False) -> Judgement:
    """A stage's verdict on its tests' counts (tests by outcome value).

    The suite's gates, max-duration-regression aside, are evaluated on the stage's counts; any that
    fails fails the stage. Without --max-failures or --min-pass-rate (the gates that say how many
    failures are tolerated), a stage also fails when any of its tests failed (failed, error,
    timeout, crashed; flaky too under --strict-flaky) or did not run."""
    verdicts = evaluate(stage_gates(gates), counts, 0.0, None)
    if any(v.verdict == FAILED for v in verdicts):
        return Judgement(False, "failed its gates", verdicts)
    tolerant = gates.max_failures is not None or gates.min_pass_rate is not None
    if not tolerant:
        bad = sum(counts.get(o.value, 0) for o in FAILURES) + counts.get(Outcome.NOT_RUN.value, 0)
        if strict_flaky:
            bad += counts.get(Outcome.FLAKY.value, 0)
        if bad:
            return Judgement(False, "had failures", verdicts)
    return Judgement(True, "", verdicts)


def not_started_message(stage: str, why: str) -> str:
    """The message of a test whose stage never started: `stage smoke failed its gates`."""
    return f"stage {stage} {why}"


def next_stage(current: int, sizes: Sequence[int]) -> int:
    """The stage after `current` that has tests to run (len(sizes): none left). A stage without
    tests passes as it starts: it is skipped over."""
    k = current + 1
    while k < len(sizes) and not sizes[k]:
        k += 1
    return k


def counts_of(outcomes: Sequence[str | None]) -> dict[str, int]:
    """Tests by outcome value (None, a test without an outcome, is left out)."""
    out: dict[str, int] = {}
    for o in outcomes:
        if o is not None:
            out[o] = out.get(o, 0) + 1
    return out


def row(stage: Stage, *, status: str, counts: Mapping[str, int], tests: int, wall_s: float,
        verdicts: Sequence[Verdict]) -> dict[str, object]:
    """A stage's entry in the report's `stages` list (docs/report-schema.md)."""
    return {"name": stage.name, "pytest_args": list(stage.pytest_args), "status": status,
            "counts": {o.value: counts.get(o.value, 0) for o in Outcome if counts.get(o.value, 0)},
            "tests": tests, "wall_s": round(max(0.0, wall_s), 3), "gates": [v.as_dict() for v in verdicts]}
