"""A staged suite's progress through its stages, and what the coordinator does when one ends (pure).

The plan (`StagePlan`) is stored with the suite (the stores' `stages`); `stage_ended` decides, on the
stage's counts, whether the next stage starts or the suite ends with the later stages' tests not run.
`coordinator.planner` reads the store, calls these, and carries out what they return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import msgpack

from coordinator.machine import DEADLINE_NOT_RUN
from farm import stages
from farm.model import SuiteSpec


@dataclass(frozen=True)
class StageRun:
    """How far one stage got: its status (farm.stages: passed, failed, not_started, running), when
    it started and ended, its gates' verdicts (Verdict.as_dict) and why it failed."""

    status: str = stages.NOT_STARTED
    started_at: float = 0.0
    ended_at: float = 0.0
    verdicts: tuple[dict[str, Any], ...] = ()
    why: str = ""


@dataclass(frozen=True)
class StagePlan:
    """A staged suite's stages: each one's tests (in collection order), how far each got, and the
    one running (`current`; len(tests) once none is left to start)."""

    current: int
    names: tuple[str, ...]
    tests: tuple[tuple[str, ...], ...]
    runs: tuple[StageRun, ...]

    def pack(self) -> bytes:
        body = [self.current, list(self.names), [list(t) for t in self.tests],
                [[r.status, r.started_at, r.ended_at, list(r.verdicts), r.why] for r in self.runs]]
        data: bytes = msgpack.packb(body, use_bin_type=True)
        return data

    @classmethod
    def unpack(cls, data: bytes) -> StagePlan:
        current, names, tests, runs = msgpack.unpackb(data, raw=False)
        return cls(int(current), tuple(map(str, names)), tuple(tuple(t) for t in tests),
                   tuple(StageRun(str(s), float(a), float(b), tuple(v), str(w)) for s, a, b, v, w in runs))

    def sizes(self) -> list[int]:
        return [len(t) for t in self.tests]

    def fields(self, total: int) -> dict[str, object]:
        """The suite hash's fields that say how far it got (the plan itself aside): the stage
        running (its index), the tests that have an outcome once it is done."""
        return {"stage": self.current, "stage_total": total_at(self, total),
                "stage_name": self.names[self.current] if self.current < len(self.names) else ""}

    def later_tests(self) -> list[str]:
        """The tests of the stages after the current one."""
        return [t for ids in self.tests[self.current + 1:] for t in ids]


def first(names: Sequence[str], groups: Sequence[Sequence[str]], *, now: float) -> StagePlan:
    """The plan of a suite just collected: its first stage with tests runs (any empty one before it
    passed as it started)."""
    sizes = [len(g) for g in groups]
    k = stages.next_stage(-1, sizes)
    runs = [StageRun(stages.PASSED, now, now) if i < k else
            StageRun(stages.RUNNING, now) if i == k else StageRun() for i in range(len(groups))]
    return StagePlan(k, tuple(names), tuple(tuple(g) for g in groups), tuple(runs))


def total_at(plan: StagePlan, total: int) -> int:
    """How many of the suite's `total` tests have an outcome when the current stage is done: all but
    those of the stages after it (the suite's total once none is left to start)."""
    return total - len(plan.later_tests())


@dataclass(frozen=True)
class Advance:
    """Start stage `plan.current`: plan its tests' assignments and publish them."""

    plan: StagePlan


@dataclass(frozen=True)
class Halt:
    """The stage failed: the later stages' tests are not run (`message`), and the suite ends."""

    plan: StagePlan
    not_run: tuple[str, ...]
    message: str


def stage_ended(plan: StagePlan, counts: Mapping[str, int], spec: SuiteSpec, *, now: float,
                too_late: bool) -> Advance | Halt | None:
    """The current stage ended (every test of it has an outcome, its attempts ended, nothing runs
    again): what next, or None when it was the last and the suite finishes as it is. Past the suite
    deadline nothing more starts: the later stages' tests are not run (the plan as it is). An
    Advance past the last stage (only stages without tests were left) starts nothing."""
    k = plan.current
    if k >= len(plan.tests) - 1:
        return None
    if too_late:
        return Halt(plan, tuple(plan.later_tests()), DEADLINE_NOT_RUN)
    judgement = stages.judge(counts, spec.gates, strict_flaky=spec.strict_flaky)
    verdicts = tuple(v.as_dict() for v in judgement.verdicts)
    runs = list(plan.runs)
    runs[k] = replace(runs[k], status=judgement.status, ended_at=now, verdicts=verdicts, why=judgement.why)
    if not judgement.passed:
        done = replace(plan, current=len(plan.tests), runs=tuple(runs))
        return Halt(done, tuple(plan.later_tests()), stages.not_started_message(spec.stages[k].name, judgement.why))
    nxt = stages.next_stage(k, plan.sizes())
    for i in range(k + 1, min(nxt, len(runs))):
        runs[i] = StageRun(stages.PASSED, now, now)  # no tests: passed as it started
    if nxt < len(plan.tests):
        runs[nxt] = StageRun(stages.RUNNING, now)
    return Advance(replace(plan, current=nxt, runs=tuple(runs)))


def report_rows(plan: StagePlan, spec: SuiteSpec, counts: Sequence[Mapping[str, int]], *,
                now: float) -> list[dict[str, object]]:
    """The report's `stages` list: each stage's status, counts, tests, wall time and verdicts. A
    stage still marked running (the last, or one a deadline or cancel ended) is judged now on its
    counts."""
    rows = []
    for stage, run, tests, c in zip(spec.stages, plan.runs, plan.tests, counts, strict=True):
        status, verdicts, ended = run.status, run.verdicts, run.ended_at
        if status == stages.RUNNING:
            judgement = stages.judge(c, spec.gates, strict_flaky=spec.strict_flaky)
            status, ended = judgement.status, now
            verdicts = tuple(v.as_dict() for v in judgement.verdicts)
        wall = ended - run.started_at if run.started_at else 0.0
        row = stages.row(stage, status=status, counts=c, tests=len(tests), wall_s=wall, verdicts=())
        row["gates"] = list(verdicts)
        rows.append(row)
    return rows


def halted_by(plan: StagePlan, spec: SuiteSpec) -> str:
    """`stage smoke failed its gates` when a stage failed and the later ones never started ("": none did)."""
    for stage, run in zip(spec.stages, plan.runs, strict=True):
        if run.status == stages.FAILED_STAGE and run.why:
            return stages.not_started_message(stage.name, run.why)
    return ""
