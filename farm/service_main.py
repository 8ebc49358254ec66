"""Running a farm service's main function as a process: one line and an exit code for any error."""

from __future__ import annotations

import sys
from collections.abc import Callable

from farm.errors import FarmError


def run_service(main: Callable[[], int], name: str) -> int:
    """Call a service's main; usage errors exit 4 (argparse's own 2 included), Ctrl-C exits 2."""
    try:
        return main()
    except SystemExit as exc:  # argparse: 2 on a bad option; farm's usage errors exit 4
        return 4 if exc.code == 2 else int(exc.code or 0)
    except FarmError as exc:
        print(f"farm {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 2
