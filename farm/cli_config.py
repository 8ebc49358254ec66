"""The configuration file at the command line: submit-suite's options layered over it
(ConfiguredCommand, `--profile`), and `farm config show`."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from farm.cli_common import CONTEXT
from farm.config_keys import Key, keys_of, plain, shown
from farm.errors import UsageError
from farm.project_config import (
    COMMAND_LINE,
    DEFAULT,
    FARM_TOML,
    PYPROJECT,
    ConfigFile,
    Profile,
    Setting,
    chosen_profile,
    project_file,
    resolve,
)

#: Keys that only the embedded farm takes (submit-suite refuses them with a broker): from the
#: file, profile or environment they apply when no broker is set, and are left out when one is.
EMBEDDED_ONLY = frozenset({"local-workers", "python"})
PROFILE_HELP = "Use this profile of the project's configuration file [env: FARM_PROFILE]."


def read_config(directory: Path, shown_dir: str) -> ConfigFile | None:
    """The configuration of the project at `directory` (its pyproject.toml's [tool.farm], or its
    farm.toml), if it has one."""
    return project_file(directory, shown_dir, _document(directory / PYPROJECT, Path(shown_dir) / PYPROJECT),
                        _document(directory / FARM_TOML, Path(shown_dir) / FARM_TOML))


def _document(path: Path, shown_path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{shown_path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{shown_path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{shown_path}: not valid TOML: {exc}") from None


def settle(command: click.Command, path: Path, profile_option: str | None, env: Mapping[str, str],
           command_line: Mapping[str, object] | None = None) -> tuple[ConfigFile | None, Profile | None,
                                                                     dict[str, Setting]]:
    """The project's configuration file, the profile asked for and every key's setting."""
    config = read_config(path, str(path)) if path.is_dir() else None
    profile = chosen_profile(profile_option, env)
    return config, profile, resolve(keys_of(command), config, env, profile, command_line)


def notice(config: ConfigFile, profile: Profile | None) -> str:
    return f"farm: config {config.describe()}" + (f", profile {profile.name}" if profile else "")


class ConfiguredCommand(click.Command):
    """A command (submit-suite) whose options not given on the command line come from the
    environment, the profile and the project's configuration file (its PATH argument), in that
    order; it gets `--profile NAME`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(["--profile"], metavar="NAME", help=PROFILE_HELP))

    def invoke(self, ctx: click.Context) -> Any:
        option = ctx.params.pop("profile", None)
        path = ctx.params.get("path")
        if isinstance(path, Path) and path.is_dir():
            keys = keys_of(self)
            given = {name: ctx.params[key.param] for name, key in keys.items()
                     if ctx.get_parameter_source(key.param) is ParameterSource.COMMANDLINE}
            config, profile, settings = settle(self, path, option, os.environ, given)
            embedded = not settings["broker"].value  # --broker, FARM_BROKER_URL or the file's
            for name, key in keys.items():
                setting = settings[name]
                if name in EMBEDDED_ONLY and not embedded and setting.source != COMMAND_LINE:
                    continue  # the file's value for the embedded farm, which a farm at a broker does not need
                ctx.params[key.param] = setting.value
            if config is not None:
                click.echo(notice(config, profile), err=True)
        return super().invoke(ctx)


@click.group(context_settings=CONTEXT)
def config() -> None:
    """The project's configuration file: [tool.farm] in pyproject.toml, or farm.toml."""


@config.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path(path_type=Path, file_okay=False), default=".")
@click.option("--profile", metavar="NAME", help=PROFILE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print {key: {value, source}} for every key, as JSON.")
def show(path: Path, profile: str | None, as_json: bool) -> None:
    """Print the settings submit-suite would use for the project at PATH, and where each comes from."""
    if not path.is_dir():
        raise UsageError(f"{path}: no such directory")
    ctx = click.get_current_context()
    submit = ctx.find_root().command
    command = submit.get_command(ctx, "submit-suite") if isinstance(submit, click.Group) else None
    if command is None:
        raise UsageError("no submit-suite command to configure")
    found, chosen, settings = settle(command, path, profile, os.environ)
    if found is not None:
        click.echo(notice(found, chosen), err=True)
    if as_json:
        click.echo(json.dumps({name: {"value": plain(s.value), "source": s.source} for name, s in settings.items()},
                              indent=2))
        return
    keys = keys_of(command)
    for name, setting in settings.items():
        if setting.source != DEFAULT or _has_value(keys[name], setting.value):
            click.echo(f"{name} = {shown(plain(setting.value))}  ({setting.source})")


def _has_value(key: Key, value: object) -> bool:
    """A default worth showing: one that is something (not none, no values, a flag off)."""
    return value is not None and value != () and not (key.flag and value is False)
