"""The configuration file through the CLI: `farm config show`, and `farm submit-suite` on a project
whose pyproject.toml has [tool.farm] with profiles (tests/fixtures/config_file)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.helpers import ROOT, assert_nothing_left_of, copy_fixture, farm
from support.services import HandBuiltFarm

from farm import keys
from farm.model import SuiteSpec
from farm.protocol import decode
from farm.report.schema import load_report

NOT_EXCLUDED = ["-p", "no:hypothesispytest", "-k", "not excluded"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_fixture("config_file", tmp_path)


def _outcomes(report_path: Path) -> dict[str, str]:
    return {t["id"].split("::")[-1]: t["outcome"] for t in load_report(report_path)["tests"]}


def test_config_show_prints_each_setting_and_its_source(project: Path) -> None:
    shown = farm("config", "show", str(project), env={"FARM_DIST": "loadfile"})
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == f"farm: config {project}/pyproject.toml [tool.farm]\n"
    assert shown.stdout.splitlines() == [
        'pool = "default"  (default)',
        'dist = "loadfile"  (env FARM_DIST)',
        f'json = "{project}/report.json"  ({project}/pyproject.toml)',
        f"local-workers = 1  ({project}/pyproject.toml)",
        "rerun-failures = 0  (default)",
        'install-mode = "editable"  (default)',
        "quarantine-flake-rate = 0.0  (default)",
        f'pytest-args = {json.dumps(NOT_EXCLUDED)}  ({project}/pyproject.toml)',
    ]


def test_config_show_json_gives_every_key_with_value_and_source(project: Path) -> None:
    shown = farm("config", "show", "--profile", "ci", "--json", cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == "farm: config pyproject.toml [tool.farm], profile ci\n"
    settings = json.loads(shown.stdout)
    assert settings["rerun-failures"] == {"value": 1, "source": "profile ci (pyproject.toml)"}
    assert settings["max-failures"] == {"value": 0, "source": "profile ci (pyproject.toml)"}
    assert settings["pytest-args"] == {"value": NOT_EXCLUDED, "source": "pyproject.toml"}
    assert settings["json"] == {"value": "report.json", "source": "pyproject.toml"}  # PATH ".", joined
    assert settings["verbose"] == {"value": False, "source": "default"}  # profile dev's, not chosen
    assert settings["deadline"] == {"value": None, "source": "default"}
    assert "no-wait" not in settings and "profile" not in settings


def test_submit_suite_takes_the_files_pytest_args_and_report_path(project: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    result = farm("submit-suite", str(project), env={"FARMTEST_FLAKY_DIR": str(state)})
    assert result.returncode == 1, result.stdout + result.stderr  # no rerun without the ci profile
    assert result.stderr.splitlines()[0] == f"farm: config {project}/pyproject.toml [tool.farm]"
    # The file's -k left one test out, and its report went where the file said (next to it).
    assert _outcomes(project / "report.json") == {"test_flaky": "failed", "test_passes": "passed"}
    assert_nothing_left_of(load_report(project / "report.json")["suite_id"])


def test_farm_profile_picks_the_profile_whose_reruns_make_the_test_flaky(project: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    result = farm("submit-suite", str(project), env={"FARMTEST_FLAKY_DIR": str(state), "FARM_PROFILE": "ci"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.splitlines()[0] == f"farm: config {project}/pyproject.toml [tool.farm], profile ci"
    report = load_report(project / "report.json")
    assert _outcomes(project / "report.json") == {"test_flaky": "flaky", "test_passes": "passed"}
    flaky = next(t for t in report["tests"] if t["id"].endswith("test_flaky"))
    assert [(a["outcome"], a["runs"]) for a in flaky["attempts"]] == [("failed", 2), ("passed", 2)]
    assert_nothing_left_of(report["suite_id"])


def test_the_command_line_beats_the_profile_and_the_file(project: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    elsewhere = tmp_path / "mine.json"
    result = farm("submit-suite", str(project), "--profile", "ci", "--rerun-failures", "0", "--json", str(elsewhere),
                  "--", "-p", "no:hypothesispytest", "-k", "flaky or excluded", env={"FARMTEST_FLAKY_DIR": str(state)})
    assert result.returncode == 1, result.stdout + result.stderr
    # --rerun-failures 0 beat the profile's 1, --json the file's json, the arguments its pytest-args.
    assert _outcomes(elsewhere) == {"test_flaky": "failed", "test_excluded_always_fails": "failed"}
    assert not (project / "report.json").exists()
    assert_nothing_left_of(load_report(elsewhere)["suite_id"])


@pytest.mark.parametrize(("edit", "env", "line"), [
    ("max-failure = 1\n", {},
     "farm: error: {pyproject}: [tool.farm] max-failure: unknown key (did you mean max-failures?)"),
    ('[tool.farm.profiles.qa]\nmax-failures = "x"\n', {"FARM_PROFILE": "qa"},
     'farm: error: {pyproject}: [tool.farm.profiles.qa] max-failures: expected an integer >= 0, got "x"'),
    ("", {"FARM_MAX_FAILURES": "many"}, 'farm: error: FARM_MAX_FAILURES: expected an integer >= 0, got "many"'),
    ("", {"FARM_PROFILE": "qa"}, "farm: error: {pyproject}: no profile 'qa' (FARM_PROFILE); its profiles: ci, dev"),
])
def test_a_bad_key_value_variable_or_profile_exits_4_with_one_line(project: Path, edit: str, env: dict[str, str],
                                                                 line: str) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    if edit.startswith("["):
        text += "\n" + edit
    else:
        text = text.replace("[tool.farm]\n", "[tool.farm]\n" + edit)
    pyproject.write_text(text)
    for command in (["submit-suite", str(project)], ["config", "show", str(project)]):
        result = farm(*command, env=env)
        assert result.returncode == 4, (command, result.stdout, result.stderr)
        assert result.stderr.splitlines() == [line.format(pyproject=pyproject)], command
        assert result.stdout == ""


def test_the_files_embedded_farm_options_are_left_out_for_a_farm_at_a_broker(project: Path, tmp_path: Path) -> None:
    """The fixture's file sets local-workers (embedded farm only): with --broker it is not applied,
    where --local-workers on the command line is still refused."""
    redis_farm = HandBuiltFarm(tmp_path)
    redis_farm.start_redis()
    try:
        submitted = farm("submit-suite", str(project), "--broker", redis_farm.broker, "--no-wait")
        refused = farm("submit-suite", str(project), "--broker", redis_farm.broker, "--no-wait", "--local-workers", "2")
    finally:
        redis_farm.stop()
    assert submitted.returncode == 0, submitted.stderr
    assert re.fullmatch(r"s-[\w-]+\n", submitted.stdout)
    assert refused.returncode == 4
    assert refused.stderr.splitlines()[-1] == (
        "farm: error: --local-workers and --python apply to the embedded farm only (no --broker)")


def _docs_example() -> str:
    """The complete pyproject.toml of docs/configuration.md's "The configuration file"."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text.split("\n## The configuration file\n", 1)[1]
    match = re.search(r"```toml\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_every_kind_of_key_of_the_docs_example_reaches_the_submitted_suite(tmp_path: Path) -> None:
    """The docs' example, profile ci, submitted to a real Redis (--no-wait, --broker beating the
    profile's): the stored spec carries the environment, gates, stages and quarantine."""
    project = tmp_path / "shop"
    (project / "tests").mkdir(parents=True)
    (project / "reports").mkdir()
    (project / "tests" / "test_shop.py").write_text("def test_one():\n    pass\n")
    (project / "requirements-test.txt").write_text("iniconfig\n")
    (project / "pyproject.toml").write_text(_docs_example())
    redis_farm = HandBuiltFarm(tmp_path)
    redis_farm.start_redis()
    try:
        submitted = farm("submit-suite", str(project), "--profile", "ci", "--broker", redis_farm.broker, "--no-wait")
        assert submitted.returncode == 0, submitted.stderr
        store = redis_farm.store()
        spec = decode(store.hget(keys.suite(submitted.stdout.strip()), "spec"), SuiteSpec)
        store.close()
    finally:
        redis_farm.stop()
    assert submitted.stderr.splitlines()[0] == f"farm: config {project}/pyproject.toml [tool.farm], profile ci"
    assert (spec.pool, spec.dist, spec.pytest_args) == ("default", "loadfile", ("-m", "not slow"))
    assert (spec.test_timeout_s, spec.deadline_s, spec.rerun_failures, spec.strict_flaky) == (120.0, 1800.0, 1, True)
    assert spec.env.requirements == ((str(project / "requirements-test.txt"), "iniconfig\n"),)
    assert (spec.env.install, spec.env.install_mode) == ((".[test]",), "editable")
    gates = spec.gates
    assert (gates.min_pass_rate, gates.max_failures, gates.max_duration_regression, gates.max_flaky) == (95, 0, 15, 3)
    assert [(s.name, s.pytest_args) for s in spec.stages] == [("smoke", ("-m", "smoke")), ("rest", ("-m", "not smoke"))]
    assert (spec.quarantine, spec.quarantine_flake_rate) == (("tests/test_mirror.py::test_upstream_mirror",), 20.0)
