"""Resources and leaks through `farm submit-suite` on the embedded farm: real runners, real psutil figures."""

from __future__ import annotations

from pathlib import Path

import psutil
from support.helpers import LEAN, copy_fixture, farm

from farm.report.schema import load_report

FILE = "tests/test_resources.py"
BIG, LEAK, PASSES, FAILS = (f"{FILE}::{name}" for name in ("test_holds_300_mb", "test_leaves_a_sleep",
                                                            "test_passes", "test_fails"))


def _sleeps() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.info.get("cmdline") == ["sleep", "1013"]:
            found.append(proc)
    return found


def _suite(tmp_path: Path, name: str, *extra: str) -> tuple[dict, str]:
    project = tmp_path / "resources" if (tmp_path / "resources").exists() else copy_fixture("resources", tmp_path)
    report = tmp_path / f"{name}.json"
    result = farm("submit-suite", str(project), "--local-workers", "1", "--json", str(report), *extra,
                  "--", *LEAN, "-p", "no:randomly", env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stdout + result.stderr  # test_fails fails
    return load_report(report), result.stdout


def _assignment_of(report: dict, test_id: str) -> dict:
    (test,) = [t for t in report["tests"] if t["id"] == test_id]
    (run,) = test["attempts"]
    (a,) = [a for a in report["assignments"] if (a["id"], a["attempt"]) == (run["assignment"], run["attempt"])]
    return a


def test_each_assignment_reports_its_trees_peak_rss_and_cpu_and_what_its_tests_left(tmp_path: Path) -> None:
    assert not _sleeps(), "a sleep 1013 from elsewhere would make this test meaningless"
    report, stdout = _suite(tmp_path, "measured", "-v")
    big = _assignment_of(report, BIG)["resources"]
    assert big["peak_rss_bytes"] >= 300 * 2**20, big
    assert big["cpu_s"] > 0, big
    assert all(a["resources"] and a["resources"]["peak_rss_bytes"] > 0 for a in report["assignments"])
    leaky = _assignment_of(report, LEAK)
    assert report["leaks"] == [{"test": LEAK, "kind": "process", "detail": "sleep 1013",
                                "assignment": leaky["id"], "attempt": leaky["attempt"]}]
    assert not _sleeps(), "the leaked process is killed at the end of its assignment"
    lines = stdout.splitlines()
    assert f"leaks: 1 process left by {LEAK} (sleep 1013, killed)" in lines, stdout
    assert any(line.startswith(f"{_assignment_of(report, BIG)['id']}#1 peak RSS ") for line in lines), stdout


def test_past_max_memory_the_test_crashes_with_the_limit_and_the_others_keep_their_outcomes(tmp_path: Path) -> None:
    report, stdout = _suite(tmp_path, "limited", "--max-memory", "200M")
    outcomes = {t["id"]: t["outcome"] for t in report["tests"]}
    assert outcomes == {BIG: "crashed", LEAK: "passed", PASSES: "passed", FAILS: "failed"}
    (big,) = [t for t in report["tests"] if t["id"] == BIG]
    assert big["message"].startswith("memory limit 200M exceeded (peak "), big["message"]
    assert len(big["attempts"]) == 1, "a memory-limit crash is not retried on another worker"
    assert f"CRASHED {BIG} - memory limit 200M exceeded (peak " in stdout, stdout


def test_a_bad_max_memory_is_a_one_line_usage_error(tmp_path: Path) -> None:
    project = copy_fixture("resources", tmp_path)
    result = farm("submit-suite", str(project), "--max-memory", "lots")
    assert result.returncode == 4
    assert result.stderr.strip().splitlines() == [
        "farm: error: --max-memory: 'lots' is not a size (e.g. 300M, 2G: K, M, G, T are powers of 1024)"], result.stderr
