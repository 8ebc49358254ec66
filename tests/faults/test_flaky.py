"""--rerun-failures: failing tests run again; one that then passes is flaky, with all its attempts."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support.helpers import LEAN, assert_nothing_left_of, copy_fixture, farm, running_cluster

from farm.cluster import ClusterSpec
from farm.report.schema import load_report


@pytest.mark.parametrize(("strict", "code"), [(False, 0), (True, 1)])
def test_a_test_that_passes_when_run_again_is_flaky(tmp_path: Path, strict: bool, code: int) -> None:
    project = copy_fixture("flaky", tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    report_path = tmp_path / "r.json"
    args = ["--rerun-failures", "2", *(["--strict-flaky"] if strict else [])]
    result = farm("submit-suite", str(project), "--local-workers", "1", *args, "--json", str(report_path), "--",
                  *LEAN, "tests/test_flaky.py::test_flaky", "tests/test_flaky.py::test_passes",
                  env={"FARMTEST_FLAKY_DIR": str(state)})
    assert result.returncode == code, result.stdout + result.stderr
    report = load_report(report_path)
    tests = {t["id"].split("::")[-1].split("[")[0]: t for t in report["tests"]}
    assert tests["test_flaky"]["outcome"] == "flaky"
    assert [a["outcome"] for a in tests["test_flaky"]["attempts"]] == ["failed", "passed"]
    assert tests["test_passes"]["outcome"] == "passed" and len(tests["test_passes"]["attempts"]) == 1
    assert report["summary"]["flaky"] == 1 and report["summary"]["failed"] == 0
    assert "FLAKY tests/test_flaky.py::test_flaky - failed, then passed when run again (run 2 of 2)" in result.stdout
    assert [(a["run"], a["runs"]) for a in tests["test_flaky"]["attempts"]] == [(1, 2), (2, 2)]
    assert_nothing_left_of(report["suite_id"])


def test_a_test_that_keeps_failing_is_run_again_n_times_and_fails(tmp_path: Path) -> None:
    project = copy_fixture("flaky", tmp_path)
    report_path = tmp_path / "r.json"
    junit_path = tmp_path / "junit.xml"
    result = farm("submit-suite", str(project), "--local-workers", "1", "--rerun-failures", "2", "--json",
                  str(report_path), "--junit-xml", str(junit_path), "--", *LEAN,
                  "tests/test_flaky.py::test_always_fails")
    assert result.returncode == 1
    report = load_report(report_path)
    (test,) = report["tests"]
    assert test["outcome"] == "failed"
    assert [a["outcome"] for a in test["attempts"]] == ["failed"] * 3  # the run, then 2 reruns
    assert len({a["assignment"] for a in test["attempts"]}) == 3
    # Each rerun says which run of the test it was: the JSON, the terminal, the JUnit XML.
    assert [(a["run"], a["runs"]) for a in test["attempts"]] == [(1, 3), (2, 3), (3, 3)]
    assert "FAILED tests/test_flaky.py::test_always_fails - AssertionError: always" in result.stdout
    assert "(run 3 of 3)" in result.stdout
    case = ET.parse(junit_path).getroot().find("testsuite/testcase")
    assert case is not None
    assert [e.tag for e in case] == ["properties", "failure", "rerunFailure", "rerunFailure"]
    assert [e.get("message", "")[:10] for e in case.iter("rerunFailure")] == ["run 1 of 3", "run 2 of 3"]
    assert_nothing_left_of(report["suite_id"])


def test_a_rerun_runs_on_another_worker_when_there_is_one(tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("FARMTEST_FLAKY_DIR", str(state))  # the cluster's runners inherit it
    project = copy_fixture("flaky", tmp_path)
    report_path = tmp_path / "r.json"
    with running_cluster(ClusterSpec(workers=2, slots=1)) as cluster:
        result = farm("submit-suite", str(project), "--broker", cluster.broker_url, "--rerun-failures", "1",
                      "--json", str(report_path), "--", *LEAN, "tests/test_flaky.py::test_flaky")
    assert result.returncode == 0, result.stdout + result.stderr
    report = load_report(report_path)
    (test,) = report["tests"]
    assert test["outcome"] == "flaky"
    first, rerun = test["attempts"]
    assert (first["outcome"], rerun["outcome"]) == ("failed", "passed")
    assert first["worker"] != rerun["worker"], "the rerun ran on the worker where the test failed"
    assert_nothing_left_of(report["suite_id"])
