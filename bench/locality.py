"""Bench: import locality and balance of the split, on synthetic plans (no runs, no services).

    .venv/bin/python bench/locality.py

For each suite, with and without recorded durations: the assignments `coordinator.splitting.split`
plans (the farm's default settings), the sum over assignments of the distinct modules each
touches (each costs its runner an import), the longest assignment against an equal share, and the
run's makespan estimate: the assignments, in publishing order, each to the slot free first
(plus IMPORT_S per module touched for the import-heavy suite), against the lower bound
max(total / slots, longest test). A table goes to stderr; the last line of stdout is the JSON the
benches share. Suites: (i) the issue's import-heavy suite (60 modules x 20 tests of 5 ms, 150 ms
of import each, 2 slots), (ii) the skewed suite (20 modules x 20 sleeping tests, lognormal
sigma 1.2 seed 1, 120 s, 16 slots; target: 1.05 x the lower bound), (iii) 5,000 trivial tests
(50 modules x 100) on 2 slots.
"""

from __future__ import annotations

import argparse
import heapq
import importlib.util
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.suites import skewed_durations  # noqa: E402
from coordinator import splitting  # noqa: E402
from farm.config import Settings  # noqa: E402

IMPORT_S = 0.150  # the import-heavy suite's import cost per module


def suite(modules: int, per_module: int, durations: list[float]) -> tuple[list[str], dict[str, float]]:
    ids = [f"tests/test_m{m:03d}.py::test_{k:04d}" for m in range(modules) for k in range(per_module)]
    return ids, dict(zip(ids, durations, strict=True))


def jitter(n: int, mean: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [mean * rng.lognormvariate(0.0, 0.1) for _ in range(n)]


def measure(ids: list[str], durations: dict[str, float], slots: int, history: bool,
            import_s: float = 0.0) -> dict[str, Any]:
    s = Settings()
    planned = splitting.split(ids, slots=slots, durations=durations if history else None,
                    per_slot=s.assignments_per_slot, min_assignment_s=s.min_assignment_s,
                    min_tests=s.min_assignment_tests)
    loads = [sum(durations[t] for t in p.test_ids) for p in planned]  # the real durations, always
    touched = [len({splitting.module_of(t) for t in p.test_ids}) for p in planned]
    total = sum(durations.values())
    free = [0.0] * slots
    for load, mods in zip(loads, touched, strict=True):  # publishing order: each to the slot free first
        heapq.heappush(free, heapq.heappop(free) + load + mods * import_s)
    n_modules = len({splitting.module_of(t) for t in ids})
    bound = max((total + n_modules * import_s) / slots, max(durations.values()))
    return {"assignments": len(planned), "modules_touched": sum(touched), "modules": n_modules,
            "longest_over_share": max(loads) / (total / len(planned)), "makespan_over_bound": max(free) / bound}


def main(argv: list[str] | None = None) -> int:
    global splitting
    p = argparse.ArgumentParser(prog="bench/locality.py", description=__doc__.splitlines()[0])
    p.add_argument("--splitting", type=Path, help="another splitting.py to measure (say, main's: before/after)")
    args = p.parse_args(argv)
    if args.splitting:
        spec = importlib.util.spec_from_file_location("other_splitting", args.splitting)
        if spec is None or spec.loader is None or not args.splitting.is_file():
            print(f"bench/locality.py: cannot load {args.splitting}", file=sys.stderr)
            return 2
        splitting = sys.modules["other_splitting"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(splitting)
    cases = {
        "import-heavy 60x20, 2 slots": (suite(60, 20, jitter(1200, 0.005, 3)), 2, IMPORT_S),
        "skewed 20x20, 16 slots": (suite(20, 20, skewed_durations(400, 120.0, 1.2, 1)), 16, 0.0),
        "trivial 5,000, 2 slots": (suite(50, 100, jitter(5000, 0.0003, 5)), 2, 0.0),
    }
    rows = []
    targets = []
    for name, ((ids, durations), slots, import_s) in cases.items():
        for history in (True, False):
            r = measure(ids, durations, slots, history, import_s)
            tag = f"{name}, {'history' if history else 'no history'}"
            print(f"{tag:<45} {r['assignments']:>3} assignments  modules touched {r['modules_touched']:>4} "
                  f"(of {r['modules']})  longest/share {r['longest_over_share']:.3f}  "
                  f"makespan/bound {r['makespan_over_bound']:.3f}", file=sys.stderr)
            rows += [{"label": f"{tag}: modules touched", "value": float(r["modules_touched"]), "unit": "modules"},
                     {"label": f"{tag}: longest/share", "value": round(r["longest_over_share"], 4), "unit": "x"},
                     {"label": f"{tag}: makespan/bound", "value": round(r["makespan_over_bound"], 4), "unit": "x"}]
            if name.startswith("skewed") and history:
                value = round(r["makespan_over_bound"], 4)
                targets.append({"text": "skewed suite, history: planned makespan / lower bound", "limit": 1.05,
                                "value": value, "status": "met" if value <= 1.05 else "missed"})
    print(json.dumps({"scenario": "locality", "rows": rows, "targets": targets}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
