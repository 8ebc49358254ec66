"""Through `farm up`: a first run (no history) of a skewed suite is split at run time, and every
attempt that ran a test carries the runner start-up its worker measured, which run-time
balancing weighs each split against (coordinator/balance.py `start_cost`)."""

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


def test_a_first_run_is_split_and_its_attempts_measure_their_start_up(farm_up, tmp_path: Path) -> None:
    running = farm_up("--workers", "1", "--slots", "2")
    project = copy_fixture("split_skew", tmp_path)
    out = tmp_path / "report.json"
    result = farm("submit-suite", str(project), "--broker", running.broker, "--json", str(out), "--", *LEAN, "-q",
                  "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    report = load_report(out)
    assert report["summary"]["passed"] == 40
    assert [a["id"] for a in report["assignments"] if SPLIT_ID.search(a["id"])], "nothing was split"
    # The attempts as the coordinator reads them (the cluster's own Redis, on a free port): the
    # blob, with the received count kept beside it.
    r = redis.Redis.from_url(running.broker)
    try:
        stored = SuiteState(r, Settings(broker_url=running.broker)).attempts(report["suite_id"])
    finally:
        r.close()
    ran = [a for a in stored if a.state == AttemptState.DONE and a.received]
    assert len(ran) >= 3, stored  # the two planned and at least one tail
    for a in ran:  # each ran tests: its worker measured the time to its first test
        assert 0 < a.startup_s < (a.wall_s or 0), a
