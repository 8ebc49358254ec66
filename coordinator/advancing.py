"""The driver's side of stages: plan the first stage, judge a stage that ended, start the next or end
the suite (under the finish claim), name the stage an assignment runs in.

`coordinator.staging` decides (pure); the Planner calls these (they use its store, clock and
publishers, as `coordinator.balancing` does)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from coordinator import deadlines, machine, quality, staging
from coordinator.store import SuiteStore
from farm import quarantine, stages
from farm.model import Collection, SuiteSpec
from farm.states import SuiteStatus

if TYPE_CHECKING:
    from coordinator.planner import Planner

log = logging.getLogger("farm.coordinator")


#: Tests whose records a stage's counts read at once (one HMGET).
PAGE = 1000


def stage_counts(state: SuiteStore, suite_id: str, test_ids: Sequence[str]) -> dict[str, int]:
    """A stage's tests by outcome, read from their records in pages (a test without one is left
    out), without its quarantined tests: what the stage is judged on, and what the report shows
    beside its verdict (the quarantined tests are listed in the report's own section)."""
    outcomes: list[str | None] = []
    for i in range(0, len(test_ids), PAGE):
        outcomes += [None if r is None else r.outcome.value
                     for r in state.records_of(suite_id, list(test_ids[i:i + PAGE]))]
    counts = stages.counts_of(outcomes)
    held = quality.quarantined(state, suite_id)
    if not held.tests:
        return counts
    mine = set(test_ids)
    inside = {t: why for t, why in held.tests.items() if t in mine}
    held_here = quality.quarantined_outcomes(state, suite_id, replace(held, tests=inside))
    return quarantine.without(counts, held_here.values())


def current_stage(planner: Planner, spec: SuiteSpec) -> str:
    """The name of the stage a staged suite runs now ("" for a suite without stages)."""
    if not spec.stages:
        return ""
    k = int(planner.state.field(spec.suite_id, "stage") or 0)
    return spec.stages[min(k, len(spec.stages) - 1)].name


def first_plan(spec: SuiteSpec, collection: Collection, now: float) -> staging.StagePlan | None:
    """A staged suite's stages as collected (None: not staged). A collection without each
    test's stage (a worker older than --stage) runs every test in the first stage."""
    if not spec.stages:
        return None
    stage_of = collection.stage_of
    if len(stage_of) != len(collection.test_ids) or any(not 0 <= k < len(spec.stages) for k in stage_of):
        log.warning("suite %s: its collection does not say each test's stage; all run in stage %s",
                    spec.suite_id, spec.stages[0].name)
        stage_of = (0,) * len(collection.test_ids)
    groups = stages.groups(collection.test_ids, stage_of, len(spec.stages))
    return staging.first([s.name for s in spec.stages], groups, now=now)


def stage_ended(planner: Planner, spec: SuiteSpec, *, halted: bool) -> bool:
    """A staged suite's current stage ended (under the finish claim): start the next stage
    (True), or mark the later stages' tests not run and let the suite finish (False).

    Repeatable: a decision taken already (the stage moved on) changes nothing; a coordinator
    that dies between marking and moving leaves the same decision to be taken again."""
    sid = spec.suite_id
    plan = planner.state.stages(sid)
    if plan is None or plan.current >= len(plan.tests):
        return False
    now = planner.clock()
    if halted:  # canceled, or stopped at -x/--maxfail: nothing more starts
        why = "suite canceled before this test ran" if planner.state.canceled(sid) else planner.state.stop_reason(sid)
        planner.mark_not_run(sid, planner.state.pending_in(sid, plan.later_tests()), "stage", plan.current, "", "",
                             why)
        return False
    counts = stage_counts(planner.state, sid, plan.tests[plan.current])
    decision = staging.stage_ended(plan, counts, spec, now=now, too_late=deadlines.reached(spec, now))
    if decision is None:
        return False
    if isinstance(decision, staging.Halt):
        log.info("suite %s: %s: %d tests of later stages not run", sid, decision.message, len(decision.not_run))
        planner.mark_not_run(sid, planner.state.pending_in(sid, list(decision.not_run)), "stage", plan.current,
                             "", "", decision.message)
        if decision.plan is not plan:
            planner.state.advance_stage(sid, plan.current, decision.plan, [])
        return False
    nxt = decision.plan
    if nxt.current >= len(nxt.tests):  # only stages without tests were left
        planner.state.advance_stage(sid, plan.current, nxt, [])
        return False
    tests = planner.state.pending_in(sid, list(nxt.tests[nxt.current]))
    slots = planner.state.pool_slots(spec.pool) or 1
    attempts = machine.plan(spec, tests, durations=planner.durations(spec), slots=slots, settings=planner.settings,
                            now=now, prefix=f"s{nxt.current}a")
    if not planner.state.advance_stage(sid, plan.current, nxt, attempts):
        return True  # moved on already (a decision repeated): its attempts are published (or the sweep will)
    name = spec.stages[nxt.current].name
    log.info("suite %s: stage %s passed; stage %s starts: %d tests in %d assignments", sid,
             spec.stages[plan.current].name, name, len(tests), len(attempts))
    for a, after in zip(attempts, machine.start_after(attempts, now), strict=True):
        planner.publish(spec, a, start_after=after, stage=name)
    return True


def staged_finish(planner: Planner, spec: SuiteSpec, finish: machine.Finish) -> machine.Finish:
    """A staged suite that ended because a stage failed: exit code 1 and the stage's message."""
    plan = planner.state.stages(spec.suite_id)
    why = staging.halted_by(plan, spec) if plan is not None else ""
    if not why or finish.status != SuiteStatus.FINISHED:
        return finish
    return machine.Finish(finish.status, finish.exit_code if finish.exit_code not in (0, 3, 5) else 1,
                          why, finish.decided)
