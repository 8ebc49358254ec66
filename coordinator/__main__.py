"""`python -m coordinator`: the coordinator service entry point."""

from __future__ import annotations

import sys

from farm.errors import FarmError


def run() -> int:
    from coordinator.service import main

    try:
        return main()
    except FarmError as exc:
        print(f"farm coordinator: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(run())
