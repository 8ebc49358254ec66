"""The collection step alone: one runner against K runners (workers/collect_shards.py), pairs alternated.

    .venv/bin/python bench/collect_split.py [--modules 60] [--pairs 3] [--collectors 2] [--python PY]

Generates the import-heavy suite (bench/suites.py `imports`), then times `runner.collect_suite` through
the local backend (no standby, no Redis) with 1 and with K collectors in turn, checks that both give
the same collection, and prints each pair's seconds and ratio, and the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import suites  # noqa: E402

from farm.bundle import make_bundle  # noqa: E402
from farm.config import Settings  # noqa: E402
from farm.model import Collection, SuiteSpec  # noqa: E402
from workers import runner  # noqa: E402
from workers.backends.local import LocalBackend  # noqa: E402


def collect(backend: LocalBackend, bundle: Path, collectors: int) -> tuple[float, Collection]:
    spec = SuiteSpec("bench", "bench", "0" * 64, "default", "load", ("-q",), time.time())
    started = time.monotonic()
    collection = runner.collect_suite(spec, backend=backend, bundle=lambda digest: bundle, worker="bench",
                                      settings=Settings(), collectors=collectors)
    assert collection is not None and collection.exit_code == 0, collection
    return time.monotonic() - started, collection


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--collectors", type=int, default=2)
    parser.add_argument("--python", default=sys.executable, help="the runners' interpreter (needs pytest)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="farm-collect-split-") as tmp:
        root = Path(tmp)
        suites.imports(root / "suite", args.modules, 20)
        made = make_bundle(root / "suite", 64 * 1024 * 1024)
        bundle = root / f"{made.digest}.tar.gz"
        bundle.write_bytes(made.data)
        backend = LocalBackend(python=args.python, scratch=root / "runs", standby=False)
        ratios, ones, splits = [], [], []
        for pair in range(args.pairs):
            one, whole = collect(backend, bundle, 1)
            split, merged = collect(backend, bundle, args.collectors)
            assert merged.test_ids == whole.test_ids, "the split collection differs"
            ones.append(one)
            splits.append(split)
            ratios.append(split / one)
            print(f"pair {pair + 1}: one runner {one:.2f} s, {args.collectors} runners {split:.2f} s, "
                  f"ratio {split / one:.2f}", flush=True)
        print(f"median: one runner {statistics.median(ones):.2f} s, {args.collectors} runners "
              f"{statistics.median(splits):.2f} s, ratio {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
