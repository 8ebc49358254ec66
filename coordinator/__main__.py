"""`python -m coordinator`: the coordinator service entry point."""

from __future__ import annotations

import sys

from farm.service_main import run_service


def run() -> int:
    from coordinator.service import main

    return run_service(main, "coordinator")


if __name__ == "__main__":
    sys.exit(run())
