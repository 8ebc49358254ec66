"""The configuration file's layering (farm/project_config.py) and its keys (farm/config_keys.py):
command line > environment > profile > file > default, and one line naming the file and key for
every bad input."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
from support.helpers import ROOT

from farm.cli import submit_suite
from farm.config_keys import EXCLUDED, keys_of
from farm.errors import UsageError
from farm.project_config import ConfigFile, Profile, Setting, chosen_profile, project_file, resolve

KEYS = keys_of(submit_suite)


def pyproject(farm: dict[str, Any], directory: Path = Path("/proj")) -> ConfigFile:
    found = project_file(directory, ".", {"project": {"name": "p"}, "tool": {"farm": farm}}, None)
    assert found is not None
    return found


def settle(farm: dict[str, Any] | None, env: dict[str, str] | None = None, profile: str | None = None,
           command_line: dict[str, object] | None = None, directory: Path = Path("/proj")) -> dict[str, Setting]:
    config = pyproject(farm, directory) if farm is not None else None
    return resolve(KEYS, config, env or {}, Profile(profile, "--profile") if profile else None, command_line)


def error_of(farm: dict[str, Any] | None, **kwargs: Any) -> str:
    with pytest.raises(UsageError) as caught:
        settle(farm, **kwargs)
    return str(caught.value)


# --- precedence -------------------------------------------------------------------------

FILE = {"max-failures": 1, "profiles": {"ci": {"max-failures": 2}}}


@pytest.mark.parametrize(("farm", "env", "profile", "command_line", "value", "source"), [
    (FILE, {"FARM_MAX_FAILURES": "3"}, "ci", {"max-failures": 4}, 4, "command line"),  # command line > env
    (FILE, {"FARM_MAX_FAILURES": "3"}, "ci", None, 3, "env FARM_MAX_FAILURES"),  # env > profile
    (FILE, {}, "ci", None, 2, "profile ci (pyproject.toml)"),  # profile > file
    (FILE, {}, None, None, 1, "pyproject.toml"),  # file > default
    ({}, {}, None, None, None, "default"),
    (FILE, {"FARM_MAX_FAILURES": ""}, None, None, 1, "pyproject.toml"),  # an empty variable is unset
    ({"profiles": {"ci": {}}}, {}, "ci", None, None, "default"),  # a profile that does not set it
])
def test_each_layer_beats_the_one_below(farm: dict[str, Any], env: dict[str, str], profile: str | None,
                                        command_line: dict[str, object] | None, value: object, source: str) -> None:
    assert settle(farm, env, profile, command_line)["max-failures"] == Setting(value, source)


def test_every_pair_of_layers_is_ordered() -> None:
    layers = ["command line", "env", "profile", "file", "default"]
    for i, upper in enumerate(layers[:-1]):
        for lower in layers[i + 1:]:
            present = {upper, lower}
            farm: dict[str, Any] = {}
            if "file" in present:
                farm["rerun-failures"] = 1
            if "profile" in present:
                farm["profiles"] = {"p": {"rerun-failures": 2}}
            env = {"FARM_RERUN_FAILURES": "3"} if "env" in present else {}
            line = {"rerun-failures": 4} if "command line" in present else None
            got = settle(farm, env, "p" if "profile" in present else None, line)["rerun-failures"]
            expected = {"command line": 4, "env": 3, "profile": 2, "file": 1, "default": 0}[upper]
            assert got.value == expected, (upper, lower, got)


def test_a_profile_overrides_the_file_key_by_key_and_the_rest_stays() -> None:
    got = settle({"pool": "big", "dist": "loadfile", "profiles": {"ci": {"dist": "load", "strict-flaky": True}}},
                 profile="ci")
    assert got["pool"] == Setting("big", "pyproject.toml")
    assert got["dist"] == Setting("load", "profile ci (pyproject.toml)")
    assert got["strict-flaky"] == Setting(True, "profile ci (pyproject.toml)")
    assert got["verbose"] == Setting(False, "default")


def test_an_array_of_a_higher_layer_replaces_the_lower_one() -> None:
    got = settle({"quarantine": ["t.py::a", "t.py::b"], "profiles": {"ci": {"quarantine": ["t.py::c"]}}},
                 profile="ci")
    assert got["quarantine"].value == ("t.py::c",)


def test_the_options_own_environment_variables_are_kept() -> None:
    got = settle({"pool": "big", "broker": "redis://file:6379/0"},
                 {"FARM_POOL": "small", "FARM_BROKER_URL": "redis://env:6379/0"})
    assert got["pool"] == Setting("small", "env FARM_POOL")
    assert got["broker"] == Setting("redis://env:6379/0", "env FARM_BROKER_URL")


def test_the_profile_comes_from_the_option_else_farm_profile() -> None:
    assert chosen_profile("dev", {"FARM_PROFILE": "ci"}) == Profile("dev", "--profile")
    assert chosen_profile(None, {"FARM_PROFILE": "ci"}) == Profile("ci", "FARM_PROFILE")
    assert chosen_profile(None, {"FARM_PROFILE": ""}) is None


# --- values -------------------------------------------------------------------------------


def test_values_are_read_through_the_options_types(tmp_path: Path) -> None:
    (tmp_path / "req.txt").write_text("pytest\n")
    got = settle({"dist": "loadfile", "rerun-failures": 2, "min-pass-rate": 95, "max-duration-regression": 15.5,
                  "test-timeout": 30, "deadline": "10m", "max-memory": "2G", "strict-flaky": True,
                  "verbose": "yes", "requirements": ["req.txt"], "install": [".[test]"], "install-mode": "plain",
                  "stage": ["smoke=-m smoke", "rest=-m 'not smoke'"], "quarantine-flake-rate": "20",
                  "json": "out/r.json", "pytest-args": ["-k", "not slow"], "max-failures": "3"},
                 directory=tmp_path)
    values = {name: s.value for name, s in got.items()}
    assert values["dist"] == "loadfile" and values["rerun-failures"] == 2
    assert values["min-pass-rate"] == 95.0 and values["max-duration-regression"] == 15.5
    assert values["test-timeout"] == "30" and values["deadline"] == "10m" and values["max-memory"] == "2G"
    assert values["strict-flaky"] is True and values["verbose"] is True
    assert values["requirements"] == (tmp_path / "req.txt",)  # relative to the file's directory
    assert values["json"] == tmp_path / "out" / "r.json"
    assert values["install"] == (".[test]",) and values["install-mode"] == "plain"
    assert values["stage"] == ("smoke=-m smoke", "rest=-m 'not smoke'")
    assert values["pytest-args"] == ("-k", "not slow")
    assert values["quarantine-flake-rate"] == 20.0 and values["max-failures"] == 3  # as the command line's text


def test_environment_values_are_the_command_lines_text_and_arrays_shell_words(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.txt").write_text("x\n")
    got = settle(None, {"FARM_STAGE": "'smoke=-m smoke' \"rest=-m 'not smoke'\"", "FARM_STRICT_FLAKY": "1",
                        "FARM_PYTEST_ARGS": "-k 'a or b'", "FARM_REQUIREMENTS": "r.txt",
                        "FARM_SUITE_TEST_TIMEOUT": "5m", "FARM_TEST_TIMEOUT": "0.0"})
    assert got["stage"] == Setting(("smoke=-m smoke", "rest=-m 'not smoke'"), "env FARM_STAGE")
    assert got["strict-flaky"].value is True
    assert got["pytest-args"].value == ("-k", "a or b")
    assert got["requirements"].value == (Path("r.txt"),)  # relative to the working directory, as on the command line
    assert got["test-timeout"] == Setting("5m", "env FARM_SUITE_TEST_TIMEOUT")  # not the runner plugin's variable


# --- errors: one line naming the file (or variable) and key ------------------------------


def test_a_bad_value_names_the_file_the_table_and_the_key() -> None:
    assert error_of({"profiles": {"ci": {"max-failures": "x"}}}, profile="ci") == (
        'pyproject.toml: [tool.farm.profiles.ci] max-failures: expected an integer >= 0, got "x"')
    assert error_of({"max-failures": -1}) == 'pyproject.toml: [tool.farm] max-failures: expected an integer >= 0, ' \
                                             'got -1'


@pytest.mark.parametrize(("key", "value", "says"), [
    ("max-failures", 2.5, "expected an integer >= 0, got 2.5"),
    ("max-failures", True, "expected an integer >= 0, got true"),
    ("rerun-failures", 11, "expected an integer from 0 to 10, got 11"),
    ("min-pass-rate", 101, "expected a number from 0 to 100, got 101"),
    ("dist", "each", 'expected one of load, loadfile, got "each"'),
    ("strict-flaky", "maybe", 'expected true or false, got "maybe"'),
    ("strict-flaky", 1, "expected true or false, got 1"),
    ("pool", 3, "expected a string, got 3"),
    ("test-timeout", "soon", 'expected a duration (e.g. 90, 90s, 1.5m, 2h), got "soon"'),
    ("deadline", 0, "expected a duration (e.g. 90, 90s, 1.5m, 2h), got 0"),
    ("max-memory", "lots", 'expected a size (e.g. 300M, 2G), got "lots"'),
    ("stage", "smoke=-m smoke", 'expected an array, each a string, got "smoke=-m smoke"'),
    ("pytest-args", "-k x", 'expected an array, each a string, got "-k x"'),
    ("install", [".", 3], "install[1]: expected a string, got 3"),
    ("requirements", ["missing.txt"], 'requirements[0]: expected an existing file, got "missing.txt"'),
    ("project", {"a": 1}, "expected a string, got a table"),
])
def test_a_value_the_option_would_refuse_is_a_bad_value(key: str, value: object, says: str, tmp_path: Path) -> None:
    line = error_of({key: value}, directory=tmp_path)
    assert line.startswith(f"pyproject.toml: [tool.farm] {key}") and says in line, line
    assert "\n" not in line


def test_a_bad_environment_value_names_the_variable() -> None:
    assert error_of(None, env={"FARM_MAX_FAILURES": "x"}) == 'FARM_MAX_FAILURES: expected an integer >= 0, got "x"'
    assert error_of(None, env={"FARM_STAGE": "'open"}).startswith("FARM_STAGE: expected shell words")
    assert error_of(None, env={"FARM_DIST": "x"}) == 'FARM_DIST: expected one of load, loadfile, got "x"'


def test_an_unknown_key_is_named_with_its_table_in_the_file_and_in_any_profile() -> None:
    assert error_of({"max-failure": 1}) == "pyproject.toml: [tool.farm] max-failure: unknown key " \
                                           "(did you mean max-failures?)"
    assert error_of({"profiles": {"ci": {"rerun_failures": 1}}}) == (  # a profile not chosen is checked too
        "pyproject.toml: [tool.farm.profiles.ci] rerun_failures: unknown key (did you mean rerun-failures?)")
    assert error_of({"colour": "red"}) == "pyproject.toml: [tool.farm] colour: unknown key"
    assert error_of({"no-wait": True}) == (
        "pyproject.toml: [tool.farm] no-wait: not a key of the configuration file (a command-line option only)")
    assert error_of({"profiles": {"ci": {"profiles": {}}}}) == (
        "pyproject.toml: [tool.farm.profiles.ci] profiles: a profile holds no profiles")


def test_an_unknown_profile_lists_the_files_profiles() -> None:
    assert error_of({"profiles": {"dev": {}, "ci": {}}}, profile="qa") == (
        "pyproject.toml: no profile 'qa' (--profile); its profiles: ci, dev")
    assert error_of({}, profile="qa") == "pyproject.toml: no profile 'qa' (--profile); its profiles: none"
    assert error_of(None, profile="qa") == (
        "--profile qa: the project has no configuration file (pyproject.toml with [tool.farm], or farm.toml)")


def test_a_profile_that_is_no_table_is_an_error() -> None:
    assert error_of({"profiles": {"ci": "fast"}}) == (
        'pyproject.toml: [tool.farm.profiles] ci: expected a table (a profile), got "fast"')
    assert error_of({"profiles": ["ci"]}) == 'pyproject.toml: [tool.farm] profiles: expected a table of profiles, ' \
                                             'got ["ci"]'


# --- which file -----------------------------------------------------------------------------


def test_farm_toml_is_the_table_itself_and_its_errors_say_so() -> None:
    config = project_file(Path("/p"), "proj", None, {"max-failures": "x", "profiles": {}})
    assert config is not None and config.path == "proj/farm.toml"
    with pytest.raises(UsageError, match=re.escape('proj/farm.toml: max-failures: expected an integer >= 0, got "x"')):
        resolve(KEYS, config, {})
    config = project_file(Path("/p"), ".", {"project": {}}, {"profiles": {"ci": {"dist": "x"}}})
    assert config is not None
    with pytest.raises(UsageError, match=re.escape("farm.toml: [profiles.ci] dist: expected one of")):
        resolve(KEYS, config, {}, Profile("ci", "FARM_PROFILE"))


def test_pyproject_without_tool_farm_is_no_configuration_and_both_files_are_ambiguous() -> None:
    assert project_file(Path("/p"), ".", {"tool": {"ruff": {}}}, None) is None
    assert project_file(Path("/p"), ".", None, None) is None
    with pytest.raises(UsageError, match=re.escape("pyproject.toml has [tool.farm] and farm.toml exists: both "
                                                   "configure farm, keep one")):
        project_file(Path("/p"), ".", {"tool": {"farm": {}}}, {})
    with pytest.raises(UsageError, match=re.escape("pyproject.toml: [tool.farm]: expected a table, got 3")):
        project_file(Path("/p"), ".", {"tool": {"farm": 3}}, None)


# --- the keys -------------------------------------------------------------------------------


def test_every_option_of_submit_suite_is_a_key_but_the_excluded_ones() -> None:
    longs = {o[2:] for p in submit_suite.params if isinstance(p, click.Option) for o in p.opts if o.startswith("--")}
    assert set(KEYS) == (longs - EXCLUDED) | {"pytest-args"}
    assert {"no-wait", "profile"} <= longs


def test_a_new_option_becomes_a_key() -> None:
    command = click.Command("c", params=[click.Option(["--shiny-new"], type=click.IntRange(1, 3), default=2)])
    (key,) = keys_of(command).values()
    assert (key.name, key.envvar, key.default) == ("shiny-new", "FARM_SHINY_NEW", 2)


def test_no_keys_environment_variable_means_something_else_in_farm() -> None:
    """A key's FARM_* variable is none that farm's code reads for another purpose (Settings, the
    runner plugin, the services), unless it is the option's own (FARM_POOL, FARM_BROKER_URL)."""
    own = {p.envvar for p in submit_suite.params if isinstance(p.envvar, str)}
    used: set[str] = set()
    for package in ("farm", "coordinator", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name not in ("config_keys.py", "project_config.py", "cli_config.py"):
                used |= set(re.findall(r"\bFARM_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")))
    clashes = sorted(k.envvar for k in KEYS.values() if k.envvar in used and k.envvar not in own)
    assert not clashes
    assert "FARM_TEST_TIMEOUT" in used and KEYS["test-timeout"].envvar == "FARM_SUITE_TEST_TIMEOUT"


def test_the_files_are_read_from_the_project_directory(tmp_path: Path) -> None:
    from farm.cli_config import read_config

    assert read_config(tmp_path, "p") is None
    (tmp_path / "farm.toml").write_text('dist = "loadfile"\n[profiles.ci]\nmax-failures = 0\n')
    config = read_config(tmp_path, "p")
    assert config is not None and config.describe() == "p/farm.toml"
    assert resolve(KEYS, config, {}, Profile("ci", "--profile"))["max-failures"] == Setting(
        0, "profile ci (p/farm.toml)")
    (tmp_path / "pyproject.toml").write_text("[tool.farm]\n")
    with pytest.raises(UsageError, match=re.escape("p/pyproject.toml has [tool.farm] and p/farm.toml exists")):
        read_config(tmp_path, "p")
    (tmp_path / "pyproject.toml").write_text("[tool.farm\n")
    with pytest.raises(UsageError, match=re.escape("p/pyproject.toml: not valid TOML: ")):
        read_config(tmp_path, "p")
