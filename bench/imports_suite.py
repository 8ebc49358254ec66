"""Writes the import-heavy benchmark suite: modules that burn CPU when imported, and count it.

60 test modules under `tests/` (the user names `tests/`), each burning 150 ms of CPU at import,
with 20 tests of 5 ms of CPU each (1,200 tests): about 9 s of imports and 6 s of tests. When
IMPORTS_LOG names a file, every import appends `PID MODULE` to it, so a run can tell how many
modules each process (collection, runner) imported:

    python bench/imports_suite.py /tmp/heavy
    IMPORTS_LOG=/tmp/imports.log pytest /tmp/heavy/tests
    python bench/imports_suite.py --count /tmp/imports.log
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

_MODULE = '''"""Import-heavy benchmark module {m}."""

import os
import time


def _burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


if os.environ.get("IMPORTS_LOG"):
    with open(os.environ["IMPORTS_LOG"], "a") as _log:
        _log.write(f"{{os.getpid()}} {{__name__}}\\n")
    import sys
    if not hasattr(sys, "_imports_suite_cpu"):  # once per process: its CPU when it exits
        import atexit
        import resource
        sys._imports_suite_cpu = True

        def _cpu(path=os.environ["IMPORTS_LOG"], pid=os.getpid()):
            usage = resource.getrusage(resource.RUSAGE_SELF)
            with open(path, "a") as log:
                log.write(f"{{pid}} cpu {{usage.ru_utime + usage.ru_stime:.3f}}\\n")

        atexit.register(_cpu)
_burn({import_s!r})
'''

_TEST = '''

def test_{i:04d}():
    _burn({test_s!r})
'''


def write(dest: Path | str, modules: int = 60, per_module: int = 20, import_s: float = 0.150,
          test_s: float = 0.005) -> int:
    """Write the suite into `dest` (a pytest.ini pins the rootdir; the tests under `tests/`);
    returns the number of tests."""
    root = Path(dest)
    tests = root / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    for m in range(modules):
        text = _MODULE.format(m=m, import_s=import_s)
        text += "".join(_TEST.format(i=m * per_module + i, test_s=test_s) for i in range(per_module))
        (tests / f"test_heavy_{m:02d}.py").write_text(text)
    return modules * per_module


def count(log: Path | str) -> dict[str, int]:
    """Imports per process id, from an IMPORTS_LOG file."""
    per_pid: collections.Counter[str] = collections.Counter()
    for line in Path(log).read_text().splitlines():
        pid, _, module = line.partition(" ")
        if not module.startswith("cpu "):
            per_pid[pid] += 1
    return dict(per_pid)


def cpu(log: Path | str) -> dict[str, float]:
    """CPU seconds per process id (those that exited normally), from an IMPORTS_LOG file."""
    seconds: dict[str, float] = {}
    for line in Path(log).read_text().splitlines():
        pid, _, rest = line.partition(" ")
        if rest.startswith("cpu "):
            seconds[pid] = float(rest.split()[1])
    return seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", help="where to write the suite, or with --count the IMPORTS_LOG file")
    parser.add_argument("--count", action="store_true", help="print imports per process of an IMPORTS_LOG")
    parser.add_argument("--modules", type=int, default=60)
    parser.add_argument("--per-module", type=int, default=20)
    parser.add_argument("--import-s", type=float, default=0.150)
    parser.add_argument("--test-s", type=float, default=0.005)
    args = parser.parse_args(argv)
    if args.count:
        per_pid = count(args.dest)
        print(f"{len(per_pid)} processes, {sum(per_pid.values())} imports:", sorted(per_pid.values()))
        seconds = cpu(args.dest)
        print(f"CPU of those processes: {sum(seconds.values()):.2f} s:",
              sorted((per_pid.get(p, 0), round(s, 2)) for p, s in seconds.items()))
        return 0
    print(write(args.dest, args.modules, args.per_module, args.import_s, args.test_s), "tests written")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
