"""The submitter's watch over a suite: live progress, pytest's header and -v lines, notices while
it waits, then the summary and the report files (what `submit-suite` and `farm results` print)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from farm import registry
from farm.client import Client, Progress
from farm.errors import Interrupted
from farm.model import SessionInfo
from farm.states import UNPLANNED_STATUSES, SuiteStatus

if TYPE_CHECKING:
    from farm.cluster import LocalCluster
    from farm.events import Event


def wait_and_report(client: Client, suite_id: str, junit_xml: Path | None, json_path: Path | None,
                     verbose: bool, cluster: LocalCluster | None = None, *, rootdir: str = "",
                     html_path: Path | None = None) -> int:
    from farm.report.live import LiveProgress

    session = SessionLines(client, suite_id, verbose, rootdir)
    notices = waiting_notices(client, suite_id)

    def show(p: Progress, live: LiveProgress) -> None:
        if cluster is not None:
            cluster.supervise()
        if p.status not in UNPLANNED_STATUSES:  # the header, then -v lines as tests finish
            live.echo(session.lines(p.total), sys.stdout)
        line = notices.see(p.status, time.monotonic())
        if line:
            click.echo(line, err=True)
        # A staged suite's line names the stage it runs (a new plain line when the stage changes).
        status = f"{p.status} stage {p.stage}" if p.stage and p.status == SuiteStatus.RUNNING else p.status
        live.update(p.done, p.total, p.failed, p.elapsed_s, status, p.eta_s)

    interrupted = False
    # With -v the test lines are the live display: the progress is then plain lines on stderr.
    interactive = False if session.options.verbose > 0 else None
    with LiveProgress(sys.stderr, interactive=interactive) as live:
        try:
            client.wait(suite_id, lambda p: show(p, live))
        except (KeyboardInterrupt, Interrupted):
            interrupted = True
    if interrupted:
        click.echo(f"farm: interrupted: canceling suite {suite_id}", err=True)
        client.cancel(suite_id)
        try:
            with LiveProgress(sys.stderr, interactive=interactive) as live:
                client.wait(suite_id, lambda p: show(p, live))
        except (KeyboardInterrupt, Interrupted):
            return 2  # interrupted, as pytest
    final = client.progress(suite_id)
    tail = session.lines(final.total, final=True)
    if tail:
        click.echo("\n".join(tail))
    # The HTML report's markers come from the event log, read once the suite has ended.
    log = []
    if html_path:
        from farm.report.timeline import timeline_events

        log = timeline_events(client.iter_events(suite_id))
    return emit_report(client.report(suite_id), junit_xml, json_path, verbose, session.options,
                       html_path=html_path, events=log)


class SessionLines:
    """What the waiting client prints before the summary: pytest's header once the collection is
    back, then (with -v) a line per test as the coordinator merges it; read with the effective
    options the collecting worker reported."""

    def __init__(self, client: Client, suite_id: str, verbose: bool, rootdir: str) -> None:
        from farm.pytest_options import parse

        self.client, self.suite_id, self.verbose, self.rootdir = client, suite_id, verbose, rootdir
        self.pytest_args = client.spec(suite_id).pytest_args
        self.options = self._with_flag(parse(self.pytest_args))
        self.headed = False
        self.after = "0-0"
        self.seen: set[str] = set()

    def _with_flag(self, options: SessionInfo) -> SessionInfo:
        return replace(options, verbose=options.verbose + 1) if self.verbose else options

    def lines(self, total: int, *, final: bool = False) -> list[str]:
        """The lines not printed yet: the header (once), then new -v lines, then (final) a blank line."""
        from farm.pytest_options import effective
        from farm.report.header import render_header
        from farm.report.live import verbose_line

        out: list[str] = []
        if not self.headed:
            collection = self.client.collection(self.suite_id)
            if collection is None:
                return []
            self.headed = True
            self.options = self._with_flag(effective(collection.session, self.pytest_args))
            workers = [(w.name, w.slots) for w, alive in self.client.workers()
                       if alive and w.pool == self.client.spec(self.suite_id).pool]
            decided = [d.outcome.value for d in collection.decided]
            header = render_header(self.options, collected=len(collection.test_ids), errors=decided.count("error"),
                                   skipped=decided.count("skipped"), rootdir=self.rootdir, workers=workers,
                                   collector=collection.worker)
            out.extend(header.splitlines())
            if header and self.options.verbose > 0:
                out.append("")
        if self.options.verbose > 0:
            while True:
                self.after, finished = self.client.finished(self.suite_id, self.after)
                for test in finished:
                    self.seen.add(test.test_id)
                    if test.outcome != "not_run":  # never ran: the summary counts them, pytest prints none
                        out.append(verbose_line(test.worker, len(self.seen), total, test.test_id, test.outcome,
                                                test.message))
                if not finished:
                    break
        if final and self.headed and self.options.verbose >= 0:
            out.append("")
        return out


def waiting_notices(client: Client, suite_id: str) -> Any:
    from farm.waiting import SuiteWatch

    pool = client.spec(suite_id).pool
    return SuiteWatch(pool, lambda: len(registry.alive(client.store, client.settings.worker_stale_s, pool)))


def emit_report(report: dict[str, Any], junit_xml: Path | None, json_path: Path | None, verbose: bool,
                 session: SessionInfo | None = None, *, html_path: Path | None = None,
                 events: Sequence[Event] = ()) -> int:
    from farm.report.jsonfile import write_html, write_json, write_junit
    from farm.report.terminal import render_summary

    if report.get("status") == "error" and report.get("collection"):
        output = (report["collection"] or {}).get("output") or ""
        if output:
            click.echo(output.rstrip())
    text = render_summary(report, verbose=verbose, session=session).rstrip("\n")
    if text:
        click.echo(text)
    if junit_xml:
        write_junit(report, junit_xml)
    if json_path:
        write_json(report, json_path)
    if html_path:
        write_html(report, events, html_path)
    return int(report["exit_code"])
