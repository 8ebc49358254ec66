"""The terminal as a pytest user expects it, through `farm submit-suite` on a real `farm up`:
-x/--maxfail stop the whole suite, and pytest's reporting options render as pytest renders them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.helpers import LEAN, copy_fixture, farm

from farm.report.schema import load_report

#: tests/fixtures/maxfail: 10 failing tests of 0.3 s (test_one.py, collected first), then 20 passing ones
#: of 1 s each. On 2 slots it is two assignments of 15: the failures all in the first, so the second
#: runs for 15 s unless the first failure (at 0.3 s) stops it: the bounds below leave seconds to spare.
PASSING_IN_SECOND_ASSIGNMENT = 15


def _submit(broker: str, project: Path, *pytest_args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report_path = project.parent / f"{project.name}-report.json"
    result = farm("submit-suite", str(project), "--broker", broker, "--json", str(report_path), "--",
                  *LEAN, *pytest_args)
    assert "Traceback" not in result.stdout + result.stderr
    return result, load_report(report_path)


def _not_run_messages(report: dict[str, Any]) -> set[str]:
    return {t["message"] for t in report["tests"] if t["outcome"] == "not_run"}


# --- item 9: -x and --maxfail are suite-wide ------------------------------------------------------


def test_x_stops_every_assignment_after_the_first_failure(running_farm, tmp_path: Path) -> None:
    result, report = _submit(running_farm.broker, copy_fixture("maxfail", tmp_path), "-x", "tests")
    summary = report["summary"]
    assert result.returncode == 1, result.stdout + result.stderr  # failed, not interrupted
    assert report["status"] == "finished" and report["exit_code"] == 1
    assert summary["failed"] >= 1
    # Per assignment, -x would have let the second assignment run its 15 passing tests to the end.
    assert summary["passed"] <= 10, summary
    assert summary["not_run"] == 30 - summary["failed"] - summary["passed"]
    assert _not_run_messages(report) == {"stopped after 1 failures"}
    assert report["stopped"] == "stopped after 1 failures"
    lines = result.stdout.splitlines()
    banner = "!!!!!!!!!!!!!!!!!!!!!!!!!! stopping after 1 failures !!!!!!!!!!!!!!!!!!!!!!!!!!!"
    assert banner in lines and lines.index(banner) == len(lines) - 2, result.stdout


def test_maxfail_from_the_projects_addopts_counts_across_assignments(running_farm, tmp_path: Path) -> None:
    project = copy_fixture("maxfail", tmp_path)
    (project / "pytest.ini").write_text("[pytest]\naddopts = --maxfail=3\n", encoding="utf-8")
    result, report = _submit(running_farm.broker, project, "tests")
    summary = report["summary"]
    assert result.returncode == 1
    assert 3 <= summary["failed"] <= 10 and summary["passed"] < PASSING_IN_SECOND_ASSIGNMENT, summary
    assert _not_run_messages(report) == {"stopped after 3 failures"}
    assert "stopping after 3 failures" in result.stdout


def test_without_maxfail_every_failure_is_reported(running_farm, tmp_path: Path) -> None:
    result, report = _submit(running_farm.broker, copy_fixture("maxfail", tmp_path), "tests")
    assert result.returncode == 1
    assert (report["summary"]["failed"], report["summary"]["passed"], report["stopped"]) == (10, 20, "")


# --- item 10: pytest's reporting options ----------------------------------------------------------


def _pytest(project: Path, *args: str) -> str:
    """The same suite under plain pytest, in the same directory: the reference output."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *LEAN, *args],
                            cwd=project, capture_output=True, text=True, timeout=120)
    return result.stdout


def _section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(rf"=+ {re.escape(title)} =+", line))
    # Up to the next banner; under -q, up to the final line, which has none.
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^(=+ |!+ )", lines[i])), len(lines) - 1)
    return lines[start + 1:end]


def _final(text: str) -> str:
    """The final line without its time, e.g. `2 failed, 2 passed, 1 deselected`."""
    last = text.rstrip().splitlines()[-1].strip("= ")
    return re.sub(r" in [\d.]+s( \(.*\))?$", "", last)


ARGS = ("-v", "--tb=line", "--durations=3", "-k", "not deselected", "tests")


@pytest.fixture(scope="module")
def verbose_run(running_farm, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, dict[str, Any], Path]:
    """tests/fixtures/terminal (its pytest.ini has `addopts = -ra`) through farm and through pytest."""
    project = copy_fixture("terminal", tmp_path_factory.mktemp("terminal"))
    result, report = _submit(running_farm.broker, project, *ARGS)
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout, _pytest(project, *ARGS), report, project


def test_short_summary_follows_the_ini_addopts_ra_exactly_as_pytest(verbose_run) -> None:
    farm_out, pytest_out, _, _ = verbose_run
    assert _section(farm_out, "short test summary info") == _section(pytest_out, "short test summary info")
    assert _final(farm_out) == _final(pytest_out) == \
        "2 failed, 2 passed, 1 skipped, 1 deselected, 1 xfailed, 1 xpassed, 1 error"


def test_v_prints_a_line_per_test_with_its_worker_and_pytests_word(verbose_run) -> None:
    farm_out, pytest_out, report, _ = verbose_run
    expected = {(m.group(2), m.group(1)) for m in re.finditer(r"^(\S+::\S+) (\w+)", pytest_out, re.M)}
    seen = re.findall(r"^\[(\S+)\] \[ *\d+%\] (\w+) (\S+)", farm_out, re.M)
    assert {(word, test) for _, word, test in seen} == expected
    assert len(seen) == len(expected) == 8  # once each; the deselected one never
    workers = {w["name"] for w in report["workers"]}
    assert {worker for worker, _, _ in seen} <= workers
    assert "[100%]" in farm_out


def test_tb_line_failures_are_pytests_lines_with_paths_from_the_rootdir(verbose_run) -> None:
    farm_out, pytest_out, _, project = verbose_run
    relative = [line.replace(f"{project.resolve()}/", "") for line in _section(pytest_out, "FAILURES")]
    assert _section(farm_out, "FAILURES") == relative
    assert _section(farm_out, "ERRORS") == _section(pytest_out, "ERRORS")


def test_durations_list_the_slowest_phases_as_pytest(verbose_run) -> None:
    farm_out, pytest_out, report, _ = verbose_run
    farm_lines = _section(farm_out, "slowest 3 durations")
    assert farm_lines[0].endswith("s call     tests/test_kinds.py::test_slow")
    assert farm_lines[0].split()[1:] == _section(pytest_out, "slowest 3 durations")[0].split()[1:]
    assert len(report["durations"]) == 3
    assert [d[1:] for d in report["durations"][:1]] == [["call", "tests/test_kinds.py::test_slow"]]


def test_header_names_rootdir_versions_farm_size_and_the_deselected(verbose_run) -> None:
    farm_out, pytest_out, _, project = verbose_run
    reference = pytest_out.splitlines()
    plugins = [line for line in reference if line.startswith("plugins: ")]  # pytest-xdist, in our venv
    header = farm_out.splitlines()[:6 + len(plugins)]
    assert [line for line in header if line.startswith("plugins: ")] == plugins
    header = [line for line in header if not line.startswith("plugins: ")]
    assert header[0] == reference[0]  # ===== test session starts =====
    platform = next(line for line in reference if line.startswith("platform "))
    assert header[1].startswith(platform.split(" -- /")[0])
    assert header[1].startswith(f"platform {sys.platform} -- Python {sys.version.split()[0]}, pytest-")
    assert header[2] == f"rootdir: {project.resolve()}"
    assert header[3] == "configfile: pytest.ini"
    assert header[4] == "farm: 1 worker x 2 slots"
    assert header[5] == "collected 9 items / 1 deselected / 8 selected"
    assert header[5] in pytest_out


def test_quiet_and_tb_no_print_what_pytest_prints(running_farm, tmp_path: Path) -> None:
    project = copy_fixture("terminal", tmp_path)
    result, _ = _submit(running_farm.broker, project, "-q", "--tb=no", "-rfE", "tests")
    reference = _pytest(project, "-q", "--tb=no", "-rfE", "tests")
    assert "test session starts" not in result.stdout and "FAILURES" not in result.stdout
    assert _section(result.stdout, "short test summary info") == _section(reference, "short test summary info")
    last = result.stdout.rstrip().splitlines()[-1]
    assert not last.startswith("=") and _final(last) == _final(reference)
    quieter, _ = _submit(running_farm.broker, project, "-qq", "--tb=no", "tests")
    assert quieter.returncode == 1 and re.search(r"\d+ failed", quieter.stdout) is None
