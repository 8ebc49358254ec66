"""A crash is retried once on another worker: the report tells a crashing test from a broken worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.helpers import LEAN, assert_nothing_left_of, copy_fixture, farm, running_cluster

from farm.cluster import ClusterSpec, LocalCluster
from farm.report.schema import load_report


@pytest.fixture
def two_workers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LocalCluster]:
    monkeypatch.setenv("FARMTEST_CRASH_MARKER", str(tmp_path / "crashed-on"))  # runners inherit it
    with running_cluster(ClusterSpec(workers=2, slots=1)) as cluster:
        yield cluster


def test_a_crash_is_retried_once_elsewhere_and_blamed_on_the_test_or_the_worker(two_workers: LocalCluster,
                                                                                 tmp_path: Path) -> None:
    project = copy_fixture("crash_blame", tmp_path)
    report_path = tmp_path / "r.json"
    result = farm("submit-suite", str(project), "--broker", two_workers.broker_url, "--json", str(report_path),
                  "--", *LEAN, "tests")
    assert result.returncode == 1, result.stdout + result.stderr
    report = load_report(report_path)
    tests = {t["id"].split("::")[-1]: t for t in report["tests"]}
    assert len(report["tests"]) == len(tests) == 12, "every collected test appears exactly once"

    everywhere = tests["test_crashes_everywhere"]
    assert everywhere["outcome"] == "crashed" and everywhere["blame"] == "test"
    assert len(everywhere["crashed_on"]) == 2, "retried once, on the other worker, and no more"
    assert [a["outcome"] for a in everywhere["attempts"]] == ["crashed", "crashed"]
    assert "crashed its runner on 2 workers" in everywhere["message"]

    first_only = tests["test_crashes_on_the_first_worker_only"]
    assert first_only["outcome"] == "passed" and first_only["blame"] == "worker"
    (bad,) = first_only["crashed_on"]
    assert [a["outcome"] for a in first_only["attempts"]] == ["crashed", "passed"]
    assert first_only["attempts"][1]["worker"] != bad, "the retry ran on the worker where it crashed"
    assert report["suspect_workers"] == [{"worker": bad, "tests": [first_only["id"]]}]
    assert f"SUSPECT WORKER {bad}" in result.stdout

    assert all(tests[f"test_fine[{i}]"]["outcome"] == "passed" for i in range(10))
    assert report["summary"]["crashed"] == 1 and report["summary"]["passed"] == 11
    # The failure analysis: the test to blame is a crash, the worker to blame is infrastructure, and
    # the test that passed elsewhere is flaky.
    classes = {c["class"]: c for c in report["analysis"]["classes"]}
    assert list(classes) == ["crashed", "infrastructure", "flaky"]
    assert classes["crashed"]["tests"] == [everywhere["id"]] and classes["crashed"]["detail"] == {"blame": {"test": 1}}
    assert classes["infrastructure"]["detail"]["events"] == [
        {"cause": "suspect_worker", "worker": bad, "tests": [first_only["id"]]}]
    assert classes["flaky"]["tests"] == [first_only["id"]]
    assert f"failures: 1 crash (blame: test), 1 infrastructure (suspect worker {bad}), 1 flaky" in result.stdout
    assert_nothing_left_of(report["suite_id"])
