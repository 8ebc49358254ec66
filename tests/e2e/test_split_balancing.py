"""Run-time balancing through `farm up`: a first run (no history) whose second assignment is slow
gives its unstarted tail to the slot the first one freed; every test is counted once, and every
attempt that ran a test carries the runner start-up its worker measured, which balancing weighs
each split against (coordinator/balance.py `start_cost`)."""

from __future__ import annotations

import re
from pathlib import Path

import redis
from support.helpers import LEAN, copy_fixture, farm

from coordinator.state import SuiteState
from farm.config import Settings
from farm.report.schema import load_report
from farm.states import AttemptState

SPLIT_ID = re.compile(r"-a\d{3}(s\d+\.\d+)+$")


def test_a_slow_assignment_gives_its_unstarted_tail_to_an_idle_slot(farm_up, tmp_path: Path) -> None:
    running = farm_up("--workers", "1", "--slots", "2")
    project = copy_fixture("split_skew", tmp_path)
    out = tmp_path / "report.json"
    result = farm("submit-suite", str(project), "--broker", running.broker, "--json", str(out), "--", *LEAN, "-q",
                  "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    report = load_report(out)
    ids = [t["id"] for t in report["tests"]]
    assert len(ids) == len(set(ids)) == 40 and report["summary"]["passed"] == 40
    for t in report["tests"]:  # each ran once, in one attempt, none fenced
        assert [r["fenced"] for r in t["attempts"]] == [False], t
    splits = [a for a in report["assignments"] if SPLIT_ID.search(a["id"])]
    assert splits, f"nothing was split: {[a['id'] for a in report['assignments']]}"
    owned = [test for a in report["assignments"] for test in a["tests"]]
    assert sorted(owned) == sorted(ids)  # the head gave its tail away: no test in two assignments
    log = farm("events", report["suite_id"], "--broker", running.broker)
    assert log.returncode == 0, log.stderr
    assert re.search(r"\bsplit\b.*gave \d+ unstarted tests to", log.stdout), log.stdout
    # The attempts as the coordinator reads them (the cluster's own Redis): the blob, with the
    # received count kept beside it.
    r = redis.Redis.from_url(running.broker)
    try:
        stored = SuiteState(r, Settings(broker_url=running.broker)).attempts(report["suite_id"])
    finally:
        r.close()
    ran = [a for a in stored if a.state == AttemptState.DONE and a.received]
    assert len(ran) >= 3, stored  # the two planned and at least one tail
    for a in ran:  # each ran tests: its worker measured the time to its first test
        assert 0 < a.startup_s < (a.wall_s or 0), a
