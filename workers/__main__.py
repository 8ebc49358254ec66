"""`python -m workers`: the worker service entry point."""

from __future__ import annotations

import sys

from farm.service_main import run_service


def run() -> int:
    from workers.service import main

    return run_service(main, "worker")


if __name__ == "__main__":
    sys.exit(run())
