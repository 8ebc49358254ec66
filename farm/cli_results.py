"""`farm results` (the report, stored or rebuilt from the event log) and `farm events` (the log itself)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from farm.cli_common import CONTEXT, broker_option, check_writable, client_for, exit_with
from farm.states import FINAL_STATUSES

if TYPE_CHECKING:
    from farm.client import Client
    from farm.events import Event

#: How often `farm events --follow` looks for new events (seconds).
FOLLOW_POLL_S = 0.2


@click.command(context_settings=CONTEXT)
@click.argument("suite_id")
@broker_option
@click.option("--junit-xml", type=click.Path(path_type=Path, dir_okay=False), help="Write JUnit XML here.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the JSON report here.")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the HTML report here (one self-contained file, with the timeline).")
@click.option("-v", "--verbose", is_flag=True, help="List skipped and xfailed tests in the summary.")
@click.option("--from-events", is_flag=True,
              help="Rebuild the report from the suite's event log alone (exit 3 if the log was trimmed).")
def results(suite_id: str, broker: str | None, junit_xml: Path | None, json_path: Path | None,
            html_path: Path | None, verbose: bool, from_events: bool) -> None:
    """Wait for a suite to end, then print its summary; exits with the suite's exit code."""
    from farm.watch import wait_and_report

    check_writable(junit_xml, json_path, html_path)
    client = client_for(broker)
    try:
        client.progress(suite_id)  # unknown suite: a usage error before any waiting
        if from_events:
            code = _from_events(client, suite_id, junit_xml, json_path, verbose, html_path)
        else:
            code = wait_and_report(client, suite_id, junit_xml, json_path, verbose, html_path=html_path)
    finally:
        client.close()
    exit_with(code)


def _from_events(client: Client, suite_id: str, junit_xml: Path | None, json_path: Path | None,
                 verbose: bool, html_path: Path | None) -> int:
    from farm.report.rebuild import rebuild
    from farm.report.schema import expand
    from farm.watch import emit_report

    client.wait(suite_id, lambda p: None)
    log = client.all_events(suite_id)
    report = rebuild(log, suite_id)
    return emit_report(expand(report), junit_xml, json_path, verbose, html_path=html_path, events=log)


@click.command(context_settings=CONTEXT)
@click.argument("suite_id")
@broker_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event instead of a line of text.")
@click.option("--follow", is_flag=True, help="Keep printing events until the suite finishes (then exit 0).")
def events(suite_id: str, broker: str | None, as_json: bool, follow: bool) -> None:
    """Print a suite's event log: time since submission, kind, attempt, worker, node, detail."""
    from farm.events import Kind

    client = client_for(broker)
    try:
        since = client.spec(suite_id).submitted_at  # unknown suite: one line, exit 4
        after, done = "-", not follow
        while True:  # page by page: an empty page is the log's end, then stop unless following
            after, found = client.events(suite_id, after)
            for e in found:
                click.echo(json.dumps(_plain(e, since)) if as_json else line(e, since))
            done = done or any(e.kind == Kind.FINISHED for e in found)
            if not found:
                if done or client.progress(suite_id).status in FINAL_STATUSES:
                    break  # (a final status without a `finished` event: a farm older than the log)
                time.sleep(FOLLOW_POLL_S)
    finally:
        client.close()


def line(e: Event, since: float) -> str:
    """One event as a line: `+12.345s  started  S-a001#1  w1@host  local:...  detail`."""
    where = f"{e.assignment}#{e.attempt}" if e.assignment else "-"
    return f"{e.at - since:+10.3f}s  {e.kind.value:<11}  {where:<16}  {e.worker or '-':<14}  {e.node or '-':<14}  " \
           f"{e.detail}".rstrip()


def _plain(e: Event, since: float) -> dict[str, Any]:
    return {"at": e.at, "since_s": round(e.at - since, 6), "kind": e.kind.value, "assignment": e.assignment,
            "attempt": e.attempt, "worker": e.worker, "node": e.node, "detail": e.detail}
