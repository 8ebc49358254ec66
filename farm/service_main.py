"""Running a farm service's main function as a process: one line and an exit code for any error,
and one line (not a traceback) while its broker does not answer yet."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import redis

from farm.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, BrokerUnreachable, FarmError, UsageError
from farm.urls import redact

#: How often a service waiting for its broker tries again, and says again that it waits.
BROKER_RETRY_S = 1.0
BROKER_NOTICE_S = 30.0


# A service's exit codes (farm.errors; README, docs/configuration.md "Exit codes of the
# services"): a stop asked for by SIGTERM (systemd's, `farm up`'s) is clean, EXIT_OK; Ctrl-C
# (SIGINT) is EXIT_INTERRUPTED, as for every farm command; an error that stops the service
# (Celery's "unrecoverable error", a broker lost at start-up, a bug) is EXIT_INTERNAL; a usage
# error (bad option, bad setting, a broker that refuses us) is EXIT_USAGE.


class ServiceFailed(FarmError):
    """The service's Celery worker stopped on an error it cannot recover from (EXIT_INTERNAL)."""


def run_service(main: Callable[[], int], name: str) -> int:
    """Call a service's main; usage errors exit 4 (argparse's own 2 included), Ctrl-C exits 2,
    a broker lost at start-up, an unrecoverable error or a bug exits 3, each in one line
    (FARM_DEBUG=1: the traceback)."""
    try:
        return main()
    except SystemExit as exc:  # argparse: 2 on a bad option; farm's usage errors exit 4
        return 4 if exc.code == 2 else int(exc.code or 0)
    except FarmError as exc:
        print(f"farm {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 2
    except redis.RedisError as exc:  # the broker went away again between the wait and the start
        print(f"farm {name}: error: lost the broker: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:
        if os.environ.get("FARM_DEBUG"):
            raise
        print(f"farm {name}: internal error: {type(exc).__name__}: {exc} (FARM_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 3


def wait_for_broker(url: str, name: str, *, out: TextIO | None = None,
                    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Block until the Redis server at `url` answers, as a service under systemd should.

    While it cannot be reached it says so in one line, then again every BROKER_NOTICE_S; once it
    answers, one line more (only if it had to wait). A server that answers but refuses us (a
    wrong password, an unknown database) is no reason to wait: BrokerUnreachable (exit 4)."""
    out = out or sys.stderr
    shown = redact(url)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    except ValueError as exc:
        raise UsageError(f"bad broker URL {shown}: {exc}") from None
    began = clock()
    said_at: float | None = None
    try:
        while True:
            try:
                client.ping()
                break
            except (redis.AuthenticationError, redis.ResponseError) as exc:
                raise BrokerUnreachable(f"the broker at {shown} refused the connection: {exc}") from None
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                now = clock()
                if said_at is None:
                    _say(out, f"farm {name}: waiting for the broker at {shown} ({_why(exc)}); retrying")
                    said_at = now
                elif now - said_at >= BROKER_NOTICE_S:
                    _say(out, f"farm {name}: still waiting for the broker at {shown} after {now - began:.0f}s "
                              f"({_why(exc)})")
                    said_at = now
            sleep(BROKER_RETRY_S)
    finally:
        client.close()
    if said_at is not None:
        _say(out, f"farm {name}: the broker at {shown} answers after {clock() - began:.0f}s; starting")


def run_celery_worker(app: Any, *, hostname: str, queue: str, pool: str, concurrency: int, loglevel: str) -> int:
    """Run `app` as `celery worker --hostname H --queues Q --pool P --concurrency N --loglevel L
    --without-mingle --without-gossip --task-events` would, in the foreground, without Celery's
    command line: `app.worker_main` imports celery.bin, i.e. click-repl with prompt_toolkit and every
    `celery.commands` plugin installed (Flower, with tornado), about 0.45 s of CPU per service start
    on an idle machine here, more than the worker's own modules, and on the embedded farm's path.
    The options are the command's, converted as it converts them (-O default, NO_COLOR included)."""
    from celery import concurrency as pools
    from celery import signals
    from celery.utils.log import mlevel
    from celery.utils.nodenames import default_nodename, host_format

    worker = app.Worker(
        hostname=host_format(default_nodename(hostname)), queues=[queue], pool_cls=pools.get_implementation(pool),
        concurrency=concurrency, loglevel=mlevel(loglevel), optimization="default", without_mingle=True,
        # NO_COLOR set and not empty turns colour off (no-color.org; Click took "0" for on).
        without_gossip=True, task_events=True, no_color=bool(os.environ.get("NO_COLOR")), quiet=False,
    )
    failure = _Unrecoverable()
    signals.worker_shutting_down.connect(failure.shutting_down, weak=False)
    celery_log = logging.getLogger("celery.worker")  # celery.worker.worker logs as this
    celery_log.addFilter(failure)
    try:
        worker.start()
    finally:
        celery_log.removeFilter(failure)
        signals.worker_shutting_down.disconnect(failure.shutting_down)
    return failure.exit_code(worker.exitcode)


class _Unrecoverable(logging.Filter):
    """What ended a Celery worker, which its exit code alone does not tell (1 for Ctrl-C as for an
    unrecoverable error, 0 for SIGTERM): the signal that asked it to stop (`worker_shutting_down`),
    and the error Celery logs as "Unrecoverable error", whose traceback it keeps out of the log
    (FARM_DEBUG=1 keeps it): the service says it in one line instead (ServiceFailed)."""

    def __init__(self) -> None:
        super().__init__()
        self.error: BaseException | None = None
        self.signal = ""

    def shutting_down(self, sig: str = "", **_: Any) -> None:
        self.signal = self.signal or str(sig)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL and record.exc_info and record.exc_info[1] is not None:
            self.error = record.exc_info[1]
            if not os.environ.get("FARM_DEBUG"):
                return False  # said in one line by run_service
        return True

    def exit_code(self, celery_code: object) -> int:
        if self.error is not None:
            raise ServiceFailed(f"unrecoverable error: {type(self.error).__name__}: {self.error}")
        if self.signal in ("SIGINT",):
            return EXIT_INTERRUPTED
        if self.signal:  # SIGTERM (warm) or SIGQUIT (cold): a stop asked for
            return EXIT_OK
        return EXIT_INTERNAL if celery_code else EXIT_OK  # Celery stopped by itself: 0 or its error


def _why(exc: BaseException) -> str:
    """The cause in a few words: the OS's reason (Connection refused) where there is one."""
    cause = exc.__context__ if isinstance(exc.__context__, OSError) else exc
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(exc).strip().rstrip(".") or type(exc).__name__


def _say(out: TextIO, line: str) -> None:
    print(line, file=out, flush=True)
