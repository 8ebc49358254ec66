"""`farm submit-suite --requirements/--install` through the CLI on the embedded farm: the suite is
collected and run in a virtualenv built for it (from the package index), reused by the next run,
with the bundle's own project in editable or plain mode; a bad requirement ends the suite in one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support.helpers import LEAN, copy_fixture, farm, need
from support.reference import run_reference

from farm.report.schema import load_report

#: Debian's interpreter, whose own pytest (python3-pytest) is 7.2.1: too old for built-in subtests.
DEBIAN_PYTHON = "/usr/bin/python3"
SUBTESTS = ("tests/test_subtests.py::test_all_subtests_pass", "tests/test_subtests.py::test_one_subtest_fails")


def _pytest_major(python: str) -> int:
    done = subprocess.run([python, "-c", "import pytest; print(pytest.version_tuple[0])"], capture_output=True,
                          text=True, check=False)
    return int(done.stdout) if done.returncode == 0 else 0


def _outcomes(report_path: Path) -> dict[str, str]:
    return {t["id"]: t["outcome"] for t in load_report(report_path)["tests"]}


def _built(envs: Path) -> dict[str, str]:
    """Each environment in the cache: its build record (rewritten only when it is built)."""
    return {p.parent.name: p.read_text() for p in envs.glob("*/farm-env.json")}


def test_the_suites_pytest_comes_from_its_environment_and_the_next_run_reuses_it(tmp_path: Path) -> None:
    need(0 < _pytest_major(DEBIAN_PYTHON) < 9, f"{DEBIAN_PYTHON} with a pytest older than 9 (python3-pytest)")
    project = copy_fixture("correctness", tmp_path)
    # The pin is in a file the requirement file includes (`-r`, relative to it): followed, as pip would.
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "base.txt").write_text("pytest>=9  # built-in subtests\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("-r requirements/base.txt\n")
    envs = tmp_path / "envs"
    args = [*LEAN, "tests"]
    pytest_code, expected = run_reference(project, args, tmp_path / "reference.json")  # plain pytest 9
    assert all(expected[t] in ("passed", "failed") for t in SUBTESTS)

    # Under Debian's pytest alone, the subtests are skipped: only the environment's pytest runs them.
    bare = farm("submit-suite", str(project), "--python", DEBIAN_PYTHON, "--json", str(tmp_path / "bare.json"),
                "--", *args, env={"FARM_ENVS_DIR": str(envs)})
    assert bare.returncode == 1, bare.stderr
    assert {_outcomes(tmp_path / "bare.json")[t] for t in SUBTESTS} == {"skipped"}
    assert not envs.exists() or not _built(envs)

    runs = []
    for n in range(2):
        report = tmp_path / f"env-{n}.json"
        result = farm("submit-suite", str(project), "--python", DEBIAN_PYTHON, "--requirements", str(requirements),
                      "--json", str(report), "--", *args, env={"FARM_ENVS_DIR": str(envs)})
        assert result.returncode == pytest_code == 1, result.stderr
        assert _outcomes(report) == expected
        runs.append(_built(envs))
    assert len(runs[0]) == 1
    assert runs[1] == runs[0]  # the second suite reused the environment: not built again
    record = json.loads(next(iter(runs[0].values())))
    assert record["installer"] in ("pip", "uv")


def _where(report: Path) -> str:
    tests = {t["id"]: t for t in load_report(report)["tests"]}
    assert tests["tests/test_envdemo.py::test_the_extra_is_installed"]["outcome"] == "passed"
    return str(tests["tests/test_envdemo.py::test_where_the_project_comes_from"]["message"])


def test_the_bundles_project_goes_in_editable_or_plain_and_never_into_the_shared_environment(tmp_path: Path) -> None:
    project = copy_fixture("envproject", tmp_path)
    envs = tmp_path / "envs"
    base = ["submit-suite", str(project), "--install", ".[test]"]
    editable = farm(*base, "--install-mode", "editable", "--json", str(tmp_path / "editable.json"),
                    env={"FARM_ENVS_DIR": str(envs)})
    assert editable.returncode == 0, editable.stderr
    where = _where(tmp_path / "editable.json")
    assert where.startswith("envdemo 1 from ") and where.endswith("/project/src/envdemo/__init__.py")  # the run's tree

    plain = farm(*base, "--install-mode", "plain", "--json", str(tmp_path / "plain.json"),
                 env={"FARM_ENVS_DIR": str(envs)})
    assert plain.returncode == 0, plain.stderr
    where = _where(tmp_path / "plain.json")
    assert where.startswith(f"envdemo 1 from {envs}/plain/") and "/src/" not in where  # its installed copy
    built = _built(envs)

    # Changed code, same metadata: the environment is reused, and the new code is what runs.
    init = project / "src" / "envdemo" / "__init__.py"
    init.write_text(init.read_text().replace("VALUE = 1", "VALUE = 2"))
    again = farm(*base, "--install-mode", "plain", "--json", str(tmp_path / "again.json"),
                 env={"FARM_ENVS_DIR": str(envs)})
    assert again.returncode == 0, again.stderr
    assert _where(tmp_path / "again.json").startswith(f"envdemo 2 from {envs}/plain/")
    assert _built(envs) == built
    # The shared environments hold its dependencies, never the project itself.
    for env in built:
        site = list((envs / env).glob("lib/python*/site-packages"))[0]
        assert (site / "iniconfig").is_dir()
        assert not list(site.glob("envdemo*"))


def test_a_requirement_that_cannot_be_installed_ends_the_suite_in_one_line(tmp_path: Path) -> None:
    project = copy_fixture("envproject", tmp_path)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("nosuchpackage-farm-xyz==1.0\n")
    report = tmp_path / "report.json"
    result = farm("submit-suite", str(project), "--requirements", str(requirements), "--json", str(report),
                  env={"FARM_ENVS_DIR": str(tmp_path / "envs")})
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    data = load_report(report)
    assert data["status"] == "error"
    message = data["message"]
    assert message.startswith("could not build the suite's environment (installing: ")
    assert "No matching distribution found for nosuchpackage-farm-xyz==1.0" in message
    assert "\n" not in message
    assert message in result.stdout.splitlines()
    # The installer's last lines are shown above it, as a failed collection's output is.
    assert "ERROR: Could not find a version that satisfies the requirement" in data["collection"]["output"]


def test_a_constraint_file_line_is_refused_in_one_line_before_anything_is_built(tmp_path: Path) -> None:
    project = copy_fixture("envproject", tmp_path)
    (tmp_path / "constraints.txt").write_text("pytest<10\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pytest>=9\n-c constraints.txt\n")
    result = farm("submit-suite", str(project), "--requirements", str(requirements),
                  env={"FARM_ENVS_DIR": str(tmp_path / "envs")})
    assert result.returncode == 4, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    said = (f"farm: error: --requirements {requirements}, line 2: `-c constraints.txt`: constraint files are not "
            "followed (the worker gets requirement text only): put the pins in a requirement file")
    assert lines == [said], lines
    assert not (tmp_path / "envs").exists()
