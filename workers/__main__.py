"""`python -m workers`: the worker service entry point."""

from __future__ import annotations

import argparse
import sys


def start_fingerprint_early(argv: list[str]) -> None:
    """Start the local backend's interpreter fingerprint (workers.service._prefetch_environment)
    before the service imports Celery: the pool forks wait for its answer, and started after those
    imports it was on the embedded farm's path (0.26 s at load 4, 1.45 s at load 8, for 0.05 s of
    CPU). Only the options it needs are read here; anything wrong with them is main's to say."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--backend", default="local")
    early.add_argument("--python", default=None)
    try:
        args, _ = early.parse_known_args(argv)
    except SystemExit:  # argparse on a malformed option: main says what is wrong
        return
    from farm.config import Settings

    try:
        settings = Settings.from_env()
    except Exception:  # a bad variable: main says so
        return
    if args.backend != "local" or not settings.collection_cache:
        return
    # Not through workers.backends.local, which imports redis-py (0.3-0.8 s before the script started).
    from workers.fingerprint import start_fingerprint

    start_fingerprint(args.python or sys.executable)


def run() -> int:
    start_fingerprint_early(sys.argv[1:])
    # Imported after: farm.service_main imports redis-py, the service Celery.
    from farm.service_main import run_service
    from workers.service import main

    return run_service(main, "worker")


if __name__ == "__main__":
    sys.exit(run())
