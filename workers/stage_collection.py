"""A staged suite's collection: the suite's own, then each stage's, made into one with each test's stage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from farm import stages
from farm.model import Collection, SuiteSpec

#: Collect with these pytest args (fresh: never from the collection cache) -> the collection (None:
#: its lease was lost), and whether it was collected now (not read from the cache).
Collect = Callable[[tuple[str, ...], bool], tuple[Collection | None, bool]]


def collect_staged(spec: SuiteSpec, collect: Collect) -> Collection | None:
    """The suite's collection (its pytest args), each test's stage in `stage_of`: one more
    collection per stage with args (the suite's args followed by the stage's), none for a stage
    without (it takes every test left). A stage whose collection fails fails the suite's (its exit
    code and output, named by the stage). A stage's collection is read from the cache only when
    the suite's own was: a suite collected afresh collects its stages afresh."""
    base, fresh = collect(spec.pytest_args, False)
    if base is None or not spec.stages or base.exit_code not in (0, 5):
        return base
    selections: list[tuple[str, ...] | None] = []
    took = base.duration_s
    for stage in spec.stages:
        if not stage.pytest_args:
            selections.append(None)
            continue
        c, _ = collect(spec.pytest_args + stage.pytest_args, fresh)
        if c is None:
            return None
        took += c.duration_s
        if c.exit_code not in (0, 5):
            return replace(c, test_ids=(), output=f"stage {stage.name} ({' '.join(stage.pytest_args)}): {c.output}",
                           duration_s=took)
        selections.append(c.test_ids)
    ids, stage_of = stages.assign(base.test_ids, selections)
    left_out = len(base.test_ids) - len(ids)
    session = replace(base.session, deselected=base.session.deselected + left_out)
    return replace(base, test_ids=tuple(ids), stage_of=tuple(stage_of), session=session, duration_s=took,
                   exit_code=base.exit_code if ids or base.decided else 5)
