"""What every `farm` command module shares: the context, the --broker option, a client, the exit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from farm.config import Settings
from farm.errors import UsageError

if TYPE_CHECKING:  # imported when used: celery and redis are most of the CLI's start-up
    from farm.client import Client

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
broker_option = click.option("--broker", envvar="FARM_BROKER_URL", metavar="URL",
                             help="Redis broker of a running farm [env: FARM_BROKER_URL].")


class CommandExit(Exception):
    """A command's exit code (click's own Exit is swallowed in non-standalone mode): `farm.cli.run` returns it."""

    def __init__(self, code: int) -> None:
        self.code = code


def exit_with(code: int) -> NoReturn:
    raise CommandExit(code)


def check_writable(*paths: Path | None) -> None:
    for p in paths:
        if p is not None and not p.resolve().parent.is_dir():
            raise UsageError(f"cannot write {p}: no such directory")


def client_for(broker: str | None) -> Client:
    """A client of the farm at --broker (or FARM_BROKER_URL); a usage error without one."""
    from farm.client import Client, check_broker_url

    settings = Settings.from_env()
    if broker:
        settings = replace(settings, broker_url=check_broker_url(broker))
    if not settings.broker_url:
        raise UsageError("no farm to ask: pass --broker URL or set FARM_BROKER_URL")
    return Client(settings)
