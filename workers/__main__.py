"""`python -m workers`: the worker service entry point."""

from __future__ import annotations

import sys

from farm.errors import FarmError


def run() -> int:
    from workers.service import main

    try:
        return main()
    except FarmError as exc:
        print(f"farm worker: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(run())
