"""The `farm` command line: submit-suite, status, cancel, history, up, the services (results, events: cli_results)."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from farm import __version__
from farm.bundle import make_bundle
from farm.cli_common import CONTEXT, broker_option
from farm.cli_common import CommandExit as _Exit
from farm.cli_common import check_writable as _check_writable
from farm.cli_common import client_for as _client
from farm.cli_common import exit_with as _exit
from farm.cli_config import ConfiguredCommand, config
from farm.cli_history import history
from farm.cli_results import events, results
from farm.config import Settings, parse_duration
from farm.config_keys import ParsedText
from farm.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, FarmError, Interrupted, UsageError
from farm.extras import require_libvirt
from farm.resources import parse_size
from farm.states import FINAL_STATUSES, SuiteStatus

if TYPE_CHECKING:  # imported when used (celery, redis): the embedded farm starts first
    from farm.client import SuiteOptions
    from farm.cluster import LocalCluster  # imported when used: a submission to a running farm needs none of it


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="farm")
def main() -> None:
    """farm: run pytest suites across a farm of Celery workers."""


# --- submit-suite ------------------------------------------------------------------------


#: Options whose text submit-suite reads itself (so its error names the option); the configuration
#: file checks a value of theirs with the same parser.
DURATION = ParsedText("duration", parse_duration, "a duration (e.g. 90, 90s, 1.5m, 2h)")
SIZE = ParsedText("size", parse_size, "a size (e.g. 300M, 2G)")


@main.command("submit-suite", context_settings=CONTEXT, cls=ConfiguredCommand)
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@broker_option
@click.option("--pool", envvar="FARM_POOL", default="default", show_default=True,
              help="Pool whose workers run the suite [env: FARM_POOL].")
@click.option("--dist", type=click.Choice(["load", "loadfile"]), default="load", show_default=True,
              help="load: spread tests; loadfile: keep each module's tests together.")
@click.option("--junit-xml", type=click.Path(path_type=Path, dir_okay=False), help="Write JUnit XML here.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the JSON report here.")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the HTML report here (one self-contained file, with the timeline).")
@click.option("--no-wait", is_flag=True, help="Print the suite id and return at once (needs --broker).")
@click.option("--local-workers", type=click.IntRange(min=1), default=None,
              help="Embedded farm only: slots of the local worker [default: one per CPU].")
@click.option("--python", "python", type=click.Path(exists=True, dir_okay=False),
              help="Embedded farm only: interpreter that runs pytest [default: farm's].")
@click.option("--project", default=None, help="Name under which durations are recorded [default: PATH's name].")
@click.option("--test-timeout", "test_timeout", metavar="DURATION", default=None, type=DURATION,
              help="Stop a test running longer (e.g. 30s, 5m) and record it as timeout, with its stack.")
@click.option("--rerun-failures", "rerun_failures", type=click.IntRange(0, 10), default=0, metavar="N",
              help="Run failing tests again, up to N times; one that then passes is reported flaky.")
@click.option("--strict-flaky", is_flag=True, help="A flaky test fails the suite (exit code 1).")
@click.option("--deadline", "deadline", metavar="DURATION", default=None, type=DURATION,
              help="End the whole suite this long after submission: what runs then is stopped (timeout), "
                   "what has not started is not_run; exit code 2.")
@click.option("--max-memory", "max_memory", metavar="SIZE", default=None, type=SIZE,
              help="Stop a runner whose process tree's resident memory exceeds SIZE (e.g. 300M, 2G) and record "
                   "the test running then as crashed.")
@click.option("--requirements", "requirements", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run the suite in a virtualenv with these requirements, built (once, then cached) on each "
                   "worker; repeatable.")
@click.option("--install", "install", multiple=True, metavar="SPEC",
              help="Also install SPEC into the suite's virtualenv (a package, or the project: `.[test]`); "
                   "repeatable.")
@click.option("--install-mode", type=click.Choice(["editable", "plain"]), default="editable", show_default=True,
              help="How the project itself (an --install path such as `.[test]`) goes into the environment.")
@click.option("--min-pass-rate", type=click.FloatRange(0, 100), default=None, metavar="PCT",
              help="Gate: at least PCT percent of the tests that count (not skipped or xfailed) pass.")
@click.option("--max-failures", type=click.IntRange(min=0), default=None, metavar="N",
              help="Gate: at most N failed, error, timeout and crashed tests.")
@click.option("--max-duration-regression", type=click.FloatRange(min=0), default=None, metavar="PCT",
              help="Gate: wall time at most PCT percent over the median of the project's recent runs.")
@click.option("--max-flaky", type=click.IntRange(min=0), default=None, metavar="N", help="Gate: at most N flaky tests.")
@click.option("--stage", "stage", multiple=True, metavar="NAME=PYTEST_ARGS",
              help="Run the suite in stages, in the order given: a stage starts only when the one before it "
                   "passed its gates; repeatable.")
@click.option("--quarantine", "quarantine", multiple=True, metavar="TEST_ID",
              help="Run this test but do not let it fail the suite; repeatable.")
@click.option("--quarantine-flake-rate", type=click.FloatRange(0, 100), default=0.0, metavar="PCT",
              help="Quarantine the tests whose flake rate in the project's history is above PCT percent "
                   "(0: none).")
@click.option("-v", "--verbose", is_flag=True,
              help="As pytest's -v (which works after `--` too): a line per test as it finishes, with its "
                   "worker; the summary also lists skipped, xfailed and not-run tests.")
def submit_suite(path: Path, pytest_args: tuple[str, ...], broker: str | None, pool: str, dist: str,
                 junit_xml: Path | None, json_path: Path | None, no_wait: bool, local_workers: int | None,
                 python: str | None, project: str | None, test_timeout: str | None, rerun_failures: int,
                 strict_flaky: bool, deadline: str | None, max_memory: str | None, verbose: bool,
                 html_path: Path | None, requirements: tuple[Path, ...], install: tuple[str, ...],
                 install_mode: str, min_pass_rate: float | None, max_failures: int | None,
                 max_duration_regression: float | None, max_flaky: int | None, stage: tuple[str, ...],
                 quarantine: tuple[str, ...], quarantine_flake_rate: float) -> None:
    """Run the pytest suite of the project at PATH on the farm; pytest options go after `--`.

    With no broker configured, runs an embedded farm for this one suite.
    """
    settings = Settings.from_env()
    if broker:
        from farm.client import check_broker_url

        settings = replace(settings, broker_url=check_broker_url(broker))
    if settings.broker_url and (local_workers or python):
        raise UsageError("--local-workers and --python apply to the embedded farm only (no --broker)")
    if not settings.broker_url and no_wait:
        raise UsageError("--no-wait needs a running farm: pass --broker URL or set FARM_BROKER_URL")
    _check_writable(junit_xml, json_path, html_path)
    timeout_s = _option_value("--test-timeout", test_timeout, parse_duration, 0.0)
    deadline_s = _option_value("--deadline", deadline, parse_duration, 0.0)
    max_memory_bytes = _option_value("--max-memory", max_memory, parse_size, 0)
    from farm import submit_options
    from farm.gates import Gates

    env = submit_options.suite_env(requirements, install, install_mode)
    gates = Gates(min_pass_rate=min_pass_rate, max_failures=max_failures,
                  max_duration_regression=max_duration_regression, max_flaky=max_flaky)
    stages = submit_options.stages(stage)
    bundle = make_bundle(path, settings.max_bundle_bytes, settings.max_unpacked_bytes)
    name = project or path.resolve().name
    cluster = None
    if not settings.broker_url:
        from farm.cluster import ClusterSpec, LocalCluster, kept_trees_dir, usable_kept_trees

        # Absolute, but not resolved: a venv's python is a symlink that must stay inside its venv.
        # Its workers keep the unpacked, compiled bundle between runs (bounded, in the user's cache).
        spec = ClusterSpec(slots=local_workers or os.cpu_count() or 1, pool=pool,
                           python=os.path.abspath(python) if python else None,
                           kept_trees=usable_kept_trees(
                               kept_trees_dir(), lambda m: click.echo(f"farm: warning: {m}", err=True)))
        # A worker or the coordinator that dies mid-suite is started again (its lost attempt runs
        # again); Redis, without persistence here, is not: its death ends the run (exit 3).
        # Started before the client's own imports (celery, redis: most of this command's start-up),
        # which then overlap the services' start.
        cluster = LocalCluster(spec, log=_say)
        cluster.start()
    try:
        from farm.client import SuiteOptions

        options = SuiteOptions(test_timeout_s=timeout_s, deadline_s=deadline_s, rerun_failures=rerun_failures,
                               strict_flaky=strict_flaky, max_memory_bytes=max_memory_bytes, env=env,
                               gates=gates, stages=stages, quarantine=quarantine,
                               quarantine_flake_rate=quarantine_flake_rate)
        if cluster is None:
            _exit(_submit_and_wait(settings, bundle, name, pool, dist, pytest_args, junit_xml, json_path, no_wait,
                                   verbose, options, rootdir=str(path.resolve()), html_path=html_path))
        from farm.history_cache import EmbeddedHistory, HistoryCache, collections_dir, environment_digest

        # What earlier embedded runs measured, and what they collected under this environment
        # (unless the cache is off): an unchanged suite is then planned without a collection session.
        collections = HistoryCache(collections_dir(), noun="collection cache") if settings.collection_cache else None
        history = EmbeddedHistory.restore(cluster.broker_url, name, collections=collections,
                                          environment=environment_digest())
        settings = replace(settings, broker_url=cluster.broker_url)
        code = _submit_and_wait(settings, bundle, name, pool, dist, pytest_args, junit_xml, json_path, False,
                                verbose, options, cluster=cluster, rootdir=str(path.resolve()), html_path=html_path)
        history.save()
    except BaseException:
        if cluster is not None:
            cluster.stop()  # warm: workers stop their runners
        raise
    # The suite has ended: nothing left to hand back, so no warm shutdown (about a second). What a
    # killed process leaves in its TMPDIR goes with the cluster's directory.
    cluster.stop(fast=True)
    _finished.append(True)
    _exit(code)


def _say(line: str) -> None:
    click.echo(line, err=True)


def _submit_and_wait(settings: Settings, bundle: Any, project: str, pool: str, dist: str,
                     pytest_args: tuple[str, ...], junit_xml: Path | None, json_path: Path | None, no_wait: bool,
                     verbose: bool, options: SuiteOptions, cluster: LocalCluster | None = None,
                     rootdir: str = "", html_path: Path | None = None) -> int:
    from farm.client import Client
    from farm.watch import wait_and_report

    client = Client(settings)
    try:
        suite_id = client.submit(bundle, project=project, pool=pool, dist=dist, pytest_args=pytest_args,
                                 options=options)
        if no_wait:
            click.echo(suite_id)
            return EXIT_OK
        click.echo(f"farm: suite {suite_id} ({bundle.files} files, bundle {bundle.digest[:12]})", err=True)
        return wait_and_report(client, suite_id, junit_xml, json_path, verbose, cluster, rootdir=rootdir,
                               html_path=html_path)
    finally:
        client.close()


_T = TypeVar("_T", float, int)


def _option_value(option: str, text: str | None, parse: Callable[[str], _T], absent: _T) -> _T:
    """An option's text read by `parse` (`absent` when not given); a bad one is a usage error naming it."""
    if text is None:
        return absent
    try:
        return parse(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


# --- status, cancel (results and events: farm/cli_results.py) ----------------------------

main.add_command(results)
main.add_command(events)


@main.command(context_settings=CONTEXT)
@click.argument("suite_id", required=False)
@broker_option
def status(suite_id: str | None, broker: str | None) -> None:
    """Show a suite's state and progress; without SUITE_ID, the farm's workers and their health."""
    client = _client(broker)
    try:
        if suite_id is None:
            workers = client.workers()
            if not workers:
                click.echo("no worker has announced itself to this farm")
            for w, alive in sorted(workers, key=lambda wa: wa[0].name):
                state = ("unhealthy: " + w.health) if w.health else "ok" if alive else "silent (no heartbeat)"
                click.echo(f"{w.name}: pool {w.pool}, backend {w.backend}, {w.slots} slots, {state}")
            return
        p = client.progress(suite_id)
        status = f"{p.status} stage {p.stage}" if p.stage and p.status == SuiteStatus.RUNNING else p.status
        line = f"{suite_id}: {status}, {p.done}/{p.total} tests done, {p.failed} failed, {p.elapsed_s:.1f}s"
        if p.status in FINAL_STATUSES:
            report = client.report(suite_id)
            line += f", exit code {report['exit_code']}"
        click.echo(line)
    finally:
        client.close()


@main.command(context_settings=CONTEXT)
@click.argument("suite_id")
@broker_option
def cancel(suite_id: str, broker: str | None) -> None:
    """Cancel a suite: running assignments are stopped, the rest is reported not_run.

    A suite that had already ended is left as it was (exit 0)."""
    client = _client(broker)
    try:
        ended = client.cancel(suite_id)
        if ended is not None:  # nothing to stop: not an error, so cleanup scripts may cancel blindly
            click.echo(f"farm: suite {suite_id} had already finished ({ended})")
        else:
            click.echo(f"farm: cancel requested for {suite_id}")
    finally:
        client.close()


# --- history ----------------------------------------------------------------------------


main.add_command(history)
main.add_command(config)


# --- farm up, and the service entry points -----------------------------------------------


@main.command(context_settings=CONTEXT)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--slots", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True,
              help="Slots per worker.")
@click.option("--coordinators", type=click.IntRange(min=1), default=1, show_default=True,
              help="Coordinator processes (they share the suites; one sweeps at a time).")
@click.option("--pool", default="default", show_default=True)
@click.option("--python", type=click.Path(exists=True, dir_okay=False),
              help="Interpreter that runs pytest.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Redis port [default: a free one].")
@click.option("--flower", is_flag=True, help="Also start Flower.")
@click.option("--flower-address", default="127.0.0.1", show_default=True)
@click.option("--flower-port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--flower-auth", metavar="USER:PASS", help="Basic auth; required to listen beyond loopback.")
@click.option("--backend", type=click.Choice(["local", "ssh", "libvirt"]), default="local", show_default=True,
              help="Where the workers' runners run (docs/backends.md).")
@click.option("--hosts", type=click.Path(exists=True, dir_okay=False), help="ssh: the hosts file.")
@click.option("--image", "image_dir", type=click.Path(file_okay=False),
              help="libvirt: the image directory [default: ~/.cache/farm/images/debian-bookworm, built if missing].")
@click.option("--warm", type=click.IntRange(min=0), default=0, help="libvirt: VMs kept booted per worker.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Prometheus /metrics on this loopback port (coordinator i: PORT+i) [default: off].")
def up(workers: int, slots: int, coordinators: int, pool: str, python: str | None, port: int | None, flower: bool,
       flower_address: str, flower_port: int, flower_auth: str | None, backend: str, hosts: str | None,
       image_dir: str | None, warm: int, metrics_port: int | None) -> None:
    """Start a local farm in the foreground until Ctrl-C, and print its broker URL.

    A process of the farm that dies (a worker, a coordinator, Flower, Redis) is started again
    after a back-off, with a line on stderr; the rest keeps running."""
    worker_args: tuple[str, ...] = ()
    if metrics_port is not None and metrics_port + coordinators - 1 > 65535:
        raise UsageError(f"--metrics-port {metrics_port}: coordinator i listens on it + i, and "
                         f"{coordinators} coordinators need ports up to {metrics_port + coordinators - 1} (> 65535)")
    if backend == "ssh":
        if not hosts:
            raise UsageError("--backend ssh needs --hosts FILE")
        worker_args = ("--backend", "ssh", "--hosts", os.path.abspath(hosts))
    elif backend == "libvirt":
        require_libvirt()  # before building an image no worker could boot
        image_path = os.path.abspath(image_dir or os.path.expanduser("~/.cache/farm/images/debian-bookworm"))
        click.echo(f"farm: image {image_path} (built if missing or out of date)", err=True)
        built = subprocess.run([sys.executable, "-m", "workers.image_cli", "build", "--output", image_path])
        if built.returncode != 0:
            raise SystemExit(built.returncode)
        worker_args = ("--backend", "libvirt", "--image", image_path, "--warm", str(warm))
    from farm.cluster import ClusterSpec, LocalCluster

    spec = ClusterSpec(workers=workers, coordinators=coordinators, slots=slots, pool=pool,
                       python=os.path.abspath(python) if python else None, flower=flower,
                       flower_address=flower_address, flower_port=flower_port, flower_auth=flower_auth,
                       redis_port=port, appendonly=True, worker_args=worker_args, metrics_port=metrics_port)
    with LocalCluster(spec, log=_say) as cluster:
        cluster.wait_ready()
        click.echo(f"broker: {cluster.broker_url}")
        click.echo(f"signing key: {cluster.key_file}")  # what a process joining this farm needs
        if flower:
            click.echo(f"flower: http://{flower_address}:{flower_port}/")
        if metrics_port is not None:
            for i in range(coordinators):
                click.echo(f"metrics: http://127.0.0.1:{metrics_port + i}/metrics")
        click.echo(f"farm: {coordinators} coordinator(s), {workers} worker(s) x {slots} slot(s) in pool {pool!r}; "
                   f"submit with: farm submit-suite PATH --broker {cluster.broker_url}   (Ctrl-C stops)")
        sys.stdout.flush()
        try:
            while True:
                cluster.supervise()
                time.sleep(0.2)
        except (KeyboardInterrupt, Interrupted):
            click.echo("farm: stopping", err=True)


_PASSTHROUGH = dict(CONTEXT, ignore_unknown_options=True, allow_extra_args=True, help_option_names=[])


@main.command(context_settings=_PASSTHROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def worker(args: tuple[str, ...]) -> NoReturn:
    """Run a worker service (`farm worker --help` for its options)."""
    os.execv(sys.executable, [sys.executable, "-m", "workers", *args])


@main.command(context_settings=_PASSTHROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def image(args: tuple[str, ...]) -> NoReturn:
    """Build or check the base image of libvirt workers (`farm image --help`)."""
    os.execv(sys.executable, [sys.executable, "-m", "workers.image_cli", *args])


@main.command(context_settings=_PASSTHROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def coordinator(args: tuple[str, ...]) -> NoReturn:
    """Run the coordinator service (`farm coordinator --help` for its options)."""
    os.execv(sys.executable, [sys.executable, "-m", "coordinator", *args])


# --- running the CLI ---------------------------------------------------------------------


def _on_term(signum: int, frame: Any) -> None:
    raise Interrupted()


def run(argv: list[str] | None = None, prog: str = "farm") -> int:
    """Run the CLI; every error becomes one line on stderr and a documented exit code."""
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)  # the terminal went away: clean up as for Ctrl-C
    # Ctrl-C must always stop a farm, even when started from a shell that ignores SIGINT in
    # background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main.main(args=argv, prog_name=prog, standalone_mode=False)
        return EXIT_OK
    except _Exit as done:
        return done.code
    except click.UsageError as exc:
        if type(exc).__name__.startswith("NoArgsIsHelp"):  # bare `farm`: show the help
            click.echo(exc.format_message(), err=True)
            return EXIT_USAGE
        click.echo(f"{prog}: error: {exc.format_message()}", err=True)
        return EXIT_USAGE
    except click.Abort:
        click.echo(f"{prog}: interrupted", err=True)
        return EXIT_INTERRUPTED
    except (KeyboardInterrupt, Interrupted):
        click.echo(f"{prog}: interrupted", err=True)
        return EXIT_INTERRUPTED
    except FarmError as exc:
        click.echo(f"{prog}: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except Exception as exc:  # a bug: one line for the user, the traceback on request
        if os.environ.get("FARM_DEBUG"):
            raise
        click.echo(f"{prog}: internal error: {type(exc).__name__}: {exc} (FARM_DEBUG=1 shows the traceback)",
                   err=True)
        return EXIT_INTERNAL


#: Set once an embedded suite has ended and its farm is stopped: nothing of the command is left
#: to clean up or write, so `_leave` skips the interpreter's teardown (with celery, kombu and
#: redis-py loaded, 0.05-0.5 s between the last line and the exit here, more under load).
_finished: list[bool] = []


def _leave(code: int) -> NoReturn:
    """Exit with `code`. After an embedded suite (`_finished`): flush and `os._exit`, no teardown
    at all. Otherwise skip only the interpreter's garbage collection of what is left (`gc.freeze`):
    the command's work is done (output flushed, files closed), and with redis-py, click and the
    report loaded that collection took 0.1-0.3 s after the report was printed (2 cores, 1-min load
    3-12); atexit handlers and the flush of stdio still run."""
    if _finished:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said anyway
            pass
        os._exit(code)
    gc.freeze()
    sys.exit(code)


def entry() -> NoReturn:
    """Console script `farm`."""
    _leave(run())


def submit_entry() -> NoReturn:
    """Console script `submit-suite`: the same as `farm submit-suite`."""
    _leave(run(["submit-suite", *sys.argv[1:]], prog="submit-suite"))
