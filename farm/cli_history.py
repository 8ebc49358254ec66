"""`farm history`: a project's run history (farm.run_history), of a running farm or as the embedded farm saved it."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import click

from farm.cli_common import CONTEXT, broker_option
from farm.config import Settings
from farm.errors import ProjectNotFound, UsageError


@click.command(context_settings=CONTEXT)
@click.argument("project", required=False)
@broker_option
@click.option("--json", "as_json", is_flag=True, help="Print the history as one JSON document.")
@click.option("--clear", is_flag=True, help="Remove the saved history (of PROJECT only, if given).")
@click.option("--path", "show_path", is_flag=True,
              help="Print where the history is kept (PROJECT's file, if given) and nothing else.")
def history(project: str | None, broker: str | None, as_json: bool, clear: bool, show_path: bool) -> None:
    """PROJECT's last runs, slowest tests, flaky tests and wall time; without PROJECT, the projects.

    With --broker (or FARM_BROKER_URL), a running farm's history (in its Redis, under
    farm:history:PROJECT); without, what embedded runs saved in the user's cache (--clear, --path).
    """
    from farm.history_cache import HistoryCache

    if clear and show_path:
        raise UsageError("--clear and --path do not go together")
    if broker and (clear or show_path):
        given = click.get_current_context().get_parameter_source("broker")
        if given == click.core.ParameterSource.COMMANDLINE:
            raise UsageError("--clear and --path are for the embedded farm's saved history, not a running farm's")
        broker = None  # FARM_BROKER_URL in the environment: --clear and --path still mean the saved history
    if as_json and (clear or show_path):
        raise UsageError("--json does not go with --clear or --path")
    keep = Settings.from_env().history_runs
    if broker:
        _history_of_farm(broker, project, as_json, keep)
        return
    cache = HistoryCache(warn=lambda m: click.echo(f"farm: warning: {m}", err=True))
    if show_path:
        click.echo(str(cache.path_of(project) if project is not None else cache.root))
        return
    if clear:
        gone = cache.clear(project)
        what = f"the history of {project!r}" if project is not None else "all history"
        click.echo(f"farm: removed {what} ({len(gone)} file{'s' if len(gone) != 1 else ''} in {cache.root})")
        return
    if project is not None:
        saved = cache.load(project)
        if saved is None:
            raise ProjectNotFound(f"no history of project {project!r} in {cache.root}")
        _show_history(project, saved, as_json, keep, f"in {cache.root}")
        return
    kept = cache.projects()
    if as_json:
        _echo_json({"schema": 1, "projects": [_project_doc(h) for _, h in kept if h is not None]})
        return
    if not kept:
        click.echo(f"no history kept in {cache.root}")
        return
    for path, h in kept:
        if h is None:
            click.echo(f"{path.name}: unreadable (ignored; replaced by the next run)")
            continue
        saved_at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.saved_at))
        size = path.stat().st_size if path.exists() else 0
        click.echo(f"{h.project}: {h.durations()} test durations, {len(h.keys)} key(s), saved {saved_at}, "
                   f"{size / 1024:.1f} KiB ({path}); {_last_run_text(h)}")


def _history_of_farm(broker: str, project: str | None, as_json: bool, keep: int) -> None:
    """`farm history --broker URL [PROJECT]`: from the running farm's Redis."""
    from farm.client import check_broker_url, connect
    from farm.history_show import from_redis, projects_in_redis

    r = connect(replace(Settings.from_env(), broker_url=check_broker_url(broker), state_url=None))
    try:
        if project is not None:
            _show_history(project, from_redis(r, project), as_json, keep, "on this farm")
            return
        saved = [from_redis(r, name) for name in projects_in_redis(r)]
        if as_json:
            _echo_json({"schema": 1, "projects": [_project_doc(h) for h in saved]})
            return
        if not saved:
            click.echo("no run history on this farm")
        for h in saved:
            click.echo(f"{h.project}: {_last_run_text(h)}")
    finally:
        r.close()


def _show_history(project: str, saved: Any, as_json: bool, keep: int, where: str) -> None:
    from farm.history_show import runs_and_rings, view_lines
    from farm.run_history import fold, view_document

    runs, rings = runs_and_rings(saved)
    if not runs:
        raise ProjectNotFound(f"no run history of project {project!r} {where}")
    view = fold(project, runs, rings, keep)
    if as_json:
        _echo_json({**view_document(view), "kept": keep})
        return
    for line in view_lines(view, keep):
        click.echo(line)


def _last_run_text(saved: Any) -> str:
    from farm.history_show import last_run, run_line, runs_and_rings

    run = last_run(saved)
    n = len(runs_and_rings(saved)[0]) if run is not None else 0
    return f"{n} run{'s' if n != 1 else ''}, last: {run_line(run)}" if run is not None else "no runs recorded"


def _project_doc(saved: Any) -> dict[str, Any]:
    from farm.history_show import runs_and_rings
    from farm.run_history import fold, view_document

    runs, _ = runs_and_rings(saved)
    last = view_document(fold(saved.project, runs[-1:], {}))["runs"]
    return {"project": saved.project, "runs": len(runs), "last_run": last[0] if last else None}


def _echo_json(doc: dict[str, Any]) -> None:
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
