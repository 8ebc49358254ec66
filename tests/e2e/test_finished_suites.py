"""A suite that ended stays as it ended: its elapsed time stops, and cancelling it says so."""

from __future__ import annotations

import re
import time
from pathlib import Path

import redis
from support.helpers import LEAN, copy_fixture, farm

from farm.report.schema import load_report


def _finished_suite(broker: str, tmp_path: Path) -> tuple[str, dict]:
    project = copy_fixture("correctness", tmp_path)
    path = tmp_path / "r.json"
    result = farm("submit-suite", str(project), "--json", str(path), "--", *LEAN, "tests/test_params.py",
                  env={"FARM_BROKER_URL": broker})
    assert result.returncode == 1, result.stderr  # test_fail_one[1] fails
    report = load_report(path)
    return report["suite_id"], report


def _elapsed(status_line: str) -> float:
    match = re.search(r", ([0-9.]+)s, exit code", status_line)
    assert match, status_line
    return float(match.group(1))


def test_status_of_a_finished_suite_stops_counting_at_its_end(running_farm, tmp_path: Path) -> None:
    suite_id, report = _finished_suite(running_farm.broker, tmp_path)
    env = {"FARM_BROKER_URL": running_farm.broker}
    first = farm("status", suite_id, env=env)
    time.sleep(2.0)  # a clock still running would add these seconds
    second = farm("status", suite_id, env=env)
    assert first.returncode == second.returncode == 0
    assert first.stdout.startswith(f"{suite_id}: finished,") and "exit code 1" in first.stdout
    assert _elapsed(first.stdout) == _elapsed(second.stdout)
    assert abs(_elapsed(first.stdout) - report["duration_s"]) <= 0.06  # shown to 0.1 s


def test_cancel_of_a_finished_suite_says_it_had_already_finished(running_farm, tmp_path: Path) -> None:
    suite_id, _ = _finished_suite(running_farm.broker, tmp_path)
    env = {"FARM_BROKER_URL": running_farm.broker}
    result = farm("cancel", suite_id, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"farm: suite {suite_id} had already finished (finished)"
    with redis.Redis.from_url(running_farm.broker) as r:
        assert r.hget(f"farm:suite:{suite_id}", "cancel") is None  # nothing was asked of the farm
    # The suite's outcome is unchanged.
    assert farm("results", suite_id, env=env).returncode == 1
    assert "finished" in farm("status", suite_id, env=env).stdout
