"""The project's configuration file (`[tool.farm]` in pyproject.toml, or farm.toml) and its named
profiles, layered: command line > environment > profile > file > default.

Pure: fed the parsed TOML documents, the environment as a mapping and the profile's name, it
returns each key's effective value and where it came from. Reading the files is farm/cli_config.py's.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from farm.config_keys import EXCLUDED, Key, from_env, from_file, shown
from farm.errors import UsageError

PYPROJECT = "pyproject.toml"
FARM_TOML = "farm.toml"
PROFILE_ENV = "FARM_PROFILE"
COMMAND_LINE = "command line"
DEFAULT = "default"


@dataclass(frozen=True)
class ConfigFile:
    """The farm table of a project's configuration file."""

    path: str  # as messages name it: "pyproject.toml", "proj/farm.toml"
    directory: Path  # relative paths in the file are relative to it
    table: Mapping[str, object]
    section: str  # the table's own name: "tool.farm" in pyproject.toml, "" in farm.toml

    def where(self, profile: str | None = None) -> str:
        """The file and table an error names: `pyproject.toml: [tool.farm.profiles.ci]`."""
        parts = [p for p in (self.section, f"profiles.{profile}" if profile is not None else "") if p]
        return f"{self.path}: [{'.'.join(parts)}]" if parts else f"{self.path}:"

    def describe(self) -> str:
        """`pyproject.toml [tool.farm]`, `farm.toml`: what a notice says was read."""
        return f"{self.path} [{self.section}]" if self.section else self.path

    def profiles(self) -> dict[str, Mapping[str, object]]:
        """The file's profiles by name (checked: a table of tables)."""
        raw = self.table.get("profiles", {})
        if not isinstance(raw, dict):
            raise UsageError(f"{self.where()} profiles: expected a table of profiles, got {shown(raw)}")
        out: dict[str, Mapping[str, object]] = {}
        for name, table in raw.items():
            if not isinstance(table, dict):
                prefix = f"[{self.section}.profiles]" if self.section else "[profiles]"
                raise UsageError(f"{self.path}: {prefix} {name}: expected a table (a profile), got {shown(table)}")
            out[name] = table
        return out


@dataclass(frozen=True)
class Setting:
    """A key's effective value and its source: `command line`, `env FARM_X`, `profile ci
    (pyproject.toml)`, `pyproject.toml` or `default`."""

    value: object
    source: str


@dataclass(frozen=True)
class Profile:
    """The profile asked for, and who asked (`--profile` or FARM_PROFILE)."""

    name: str
    named_by: str


def project_file(directory: Path, shown_dir: str, pyproject: Mapping[str, object] | None,
                 farm_toml: Mapping[str, object] | None) -> ConfigFile | None:
    """The project's configuration from its parsed pyproject.toml and farm.toml (None: absent), if
    either configures farm. Both doing so is ambiguous: an error naming both."""
    pyproject_path = str(Path(shown_dir) / PYPROJECT)
    farm_toml_path = str(Path(shown_dir) / FARM_TOML)
    tool = pyproject.get("tool", {}) if pyproject is not None else {}
    table = tool.get("farm") if isinstance(tool, dict) else None
    if table is not None and not isinstance(table, dict):
        raise UsageError(f"{pyproject_path}: [tool.farm]: expected a table, got {shown(table)}")
    if table is not None and farm_toml is not None:
        raise UsageError(f"{pyproject_path} has [tool.farm] and {farm_toml_path} exists: both configure farm, "
                         "keep one")
    if table is not None:
        return ConfigFile(pyproject_path, directory, table, "tool.farm")
    if farm_toml is not None:
        return ConfigFile(farm_toml_path, directory, farm_toml, "")
    return None


def chosen_profile(option: str | None, env: Mapping[str, str]) -> Profile | None:
    """`--profile NAME`, else FARM_PROFILE (empty: unset)."""
    if option:
        return Profile(option, "--profile")
    if env.get(PROFILE_ENV):
        return Profile(env[PROFILE_ENV], PROFILE_ENV)
    return None


def resolve(keys: Mapping[str, Key], config: ConfigFile | None, env: Mapping[str, str],
            profile: Profile | None = None, command_line: Mapping[str, object] | None = None) -> dict[str, Setting]:
    """Every key's effective value with its source. The file's table and the chosen profile are
    checked whole (an unknown key or a bad value is an error even where a higher layer wins);
    every profile's keys are checked for unknown ones."""
    given = command_line or {}
    file_values: dict[str, object] = {}
    profile_values: dict[str, object] = {}
    if config is not None:
        profiles = config.profiles()
        for name, table in profiles.items():
            _check_names(keys, table, config.where(name), in_profile=True)
        _check_names(keys, config.table, config.where(), in_profile=False)
        file_values = _values(keys, config.table, config, None)
        if profile is not None:
            if profile.name not in profiles:
                have = ", ".join(sorted(profiles)) if profiles else "none"
                raise UsageError(f"{config.path}: no profile {profile.name!r} ({profile.named_by}); "
                                 f"its profiles: {have}")
            profile_values = _values(keys, profiles[profile.name], config, profile.name)
    elif profile is not None:
        raise UsageError(f"{profile.named_by} {profile.name}: the project has no configuration file "
                         f"({PYPROJECT} with [tool.farm], or {FARM_TOML})")
    out: dict[str, Setting] = {}
    for name, key in keys.items():
        raw_env = env.get(key.envvar)
        if name in given:
            out[name] = Setting(given[name], COMMAND_LINE)
        elif raw_env:
            out[name] = Setting(from_env(key, raw_env, key.envvar), f"env {key.envvar}")
        elif name in profile_values:
            assert config is not None and profile is not None
            out[name] = Setting(profile_values[name], f"profile {profile.name} ({config.path})")
        elif name in file_values:
            assert config is not None
            out[name] = Setting(file_values[name], config.path)
        else:
            out[name] = Setting(key.default, DEFAULT)
    return out


def _values(keys: Mapping[str, Key], table: Mapping[str, object], config: ConfigFile,
            profile: str | None) -> dict[str, object]:
    where = config.where(profile)
    return {name: from_file(keys[name], raw, f"{where} {name}", config.directory)
            for name, raw in table.items() if name != "profiles" or profile is not None}


def _check_names(keys: Mapping[str, Key], table: Mapping[str, object], where: str, in_profile: bool) -> None:
    for name in table:
        if name in keys or (name == "profiles" and not in_profile):
            continue
        if name == "profiles":
            raise UsageError(f"{where} profiles: a profile holds no profiles")
        if name in EXCLUDED:
            raise UsageError(f"{where} {name}: not a key of the configuration file (a command-line option only)")
        close = difflib.get_close_matches(name.replace("_", "-"), list(keys), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"{where} {name}: unknown key{hint}")
