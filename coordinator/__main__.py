"""`python -m coordinator`: the coordinator service entry point."""

from __future__ import annotations

import sys

from farm.errors import FarmError


def run() -> int:
    from coordinator.service import main

    try:
        return main()
    except SystemExit as exc:  # argparse: 2 on a bad option; farm's usage errors exit 4
        return 4 if exc.code == 2 else int(exc.code or 0)
    except FarmError as exc:
        print(f"farm coordinator: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 2


if __name__ == "__main__":
    sys.exit(run())
