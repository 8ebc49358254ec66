"""`farm worker --name wA`: one name in Celery, leases, the registry, reports and avoid lists."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.helpers import LEAN, assert_nothing_left_of, copy_fixture, farm
from support.services import HandBuiltFarm, wait_for

from farm import keys
from farm.report.schema import load_report


@pytest.fixture
def hand_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server_bin: str) -> Iterator[HandBuiltFarm]:
    monkeypatch.setenv("FARMTEST_CRASH_MARKER", str(tmp_path / "crashed-on"))  # runners inherit it
    services = HandBuiltFarm(tmp_path)
    try:
        yield services
    finally:
        services.stop()


def test_a_bare_worker_name_is_the_one_name_in_reports_and_crash_retries_avoid_it(hand_built: HandBuiltFarm,
                                                                                    tmp_path: Path) -> None:
    hand_built.start_redis()
    hand_built.coordinator()
    hand_built.worker("wA", "--name", "wA", "--slots", "1")
    hand_built.worker("wB", "--name", "wB", "--slots", "1")
    host = socket.gethostname()
    names = {f"wA@{host}", f"wB@{host}"}
    store = hand_built.store()
    wait_for(lambda: store.hlen(keys.WORKERS) == 2, 60, "the workers did not announce themselves")

    project = copy_fixture("crash_blame", tmp_path)
    report_path = tmp_path / "r.json"
    result = farm("submit-suite", str(project), "--broker", hand_built.broker, "--json", str(report_path),
                  "--", *LEAN, "tests")
    assert result.returncode == 1, result.stdout + result.stderr
    report = load_report(report_path)

    listed = {w["name"] for w in report["workers"]}
    assert listed and listed <= names, f"the report's workers: {report['workers']}"
    ran_on = {a["worker"] for a in report["assignments"] if a.get("worker")}
    assert ran_on and ran_on <= names, f"assignments ran on workers named otherwise: {ran_on}"

    tests = {t["id"].split("::")[-1]: t for t in report["tests"]}
    first_only = tests["test_crashes_on_the_first_worker_only"]
    (bad,) = first_only["crashed_on"]
    assert bad in names
    assert [a["outcome"] for a in first_only["attempts"]] == ["crashed", "passed"]
    assert first_only["attempts"][1]["worker"] != bad, "the crash retry ran on the worker it crashed on"
    assert report["suspect_workers"] == [{"worker": bad, "tests": [first_only["id"]]}]
    assert {keys.text(n) for n in store.hkeys(keys.WORKERS)} == names, "the registry names them otherwise"
    assert_nothing_left_of(report["suite_id"])
    store.close()
