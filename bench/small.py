"""Scenario `small`, target (e): small suites on the embedded default (`farm submit-suite DIR`, no
broker: an embedded farm per command) against the faster of pytest and `pytest -n 2`.

Suites: a generated one (300 tests in 10 modules with fixtures, scaled by --scale) and real
open-source suites from their sdists, which need nothing but pytest (not scaled). The sdists are
downloaded once with `pip download --no-binary :all: --no-deps` into ~/.cache/farm-bench/sdists.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from bench import suites
from bench.core import Bench, nth, ratio, say, target, wall

XDIST_SLOTS = 2
# (pip requirement, sdist file name, pytest arguments for every tool): suites of a few hundred tests
# that run with only pytest. toolz's test_has_version reads the installed metadata, which only the
# sdist's toolz.egg-info gives, and farm's bundle leaves *.egg-info out: deselected for every tool.
SDISTS = [
    ("six==1.17.0", "six-1.17.0.tar.gz", ()),
    ("toolz==1.2.0", "toolz-1.2.0.tar.gz", ("--deselect", "toolz/tests/test_package.py::test_has_version")),
]
CACHE = Path.home() / ".cache" / "farm-bench" / "sdists"


def fetch(requirement: str, filename: str) -> Path | str:
    """The cached sdist, downloading it first if needed; a one-line reason when that fails."""
    path = CACHE / filename
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
               requirement, "-d", str(CACHE)]
    say(f"[small] downloading {requirement}: {' '.join(command)}")
    try:
        subprocess.run(command, capture_output=True, timeout=600, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot download {requirement}: {exc}"
    return path if path.is_file() else f"pip download {requirement} did not write {filename}"


def unpack(sdist: Path, dest: Path) -> Path:
    with tarfile.open(sdist) as archive:
        archive.extractall(dest, filter="data")
    (top,) = [p for p in dest.iterdir() if p.is_dir()]
    return top


def small(bench: Bench) -> dict[str, Any]:
    root = bench.tmp / "small"
    n = bench.scaled(300, 10)
    suite_dirs: dict[str, tuple[Path | str, tuple[str, ...]]] = {}
    suites.small(root / "generated", n=n, modules=10)
    suite_dirs[f"generated-{n}"] = (root / "generated", ())
    for requirement, filename, args in SDISTS:
        got = fetch(requirement, filename)
        name = requirement.replace("==", "-")
        suite_dirs[name] = (got if isinstance(got, str) else unpack(got, root / name), args)
    info: dict[str, Any] = {"tests": None, "slots": XDIST_SLOTS, "suite": str(root), "scale": bench.scale,
                            "suites": {}, "timings": [], "targets": []}
    for name, (where, args) in suite_dirs.items():
        if isinstance(where, str):
            info["suites"][name] = {"error": where}
            info["targets"].append(target(f"(e) {name}: {where}", 0.0, None))
            continue
        info["suites"][name] = one(bench, name, where, info, args)
    info["about"] = ("embedded default (`farm submit-suite DIR`, no broker); target (e) per suite and run: "
                     "farm wall ≤ 1.2 × min(pytest, pytest -n 2) + 1 s; generated suite scaled, sdists not")
    return info


def one(bench: Bench, name: str, suite: Path, info: dict[str, Any], args: tuple[str, ...]) -> dict[str, Any]:
    scenario = f"small/{name}"
    warm = bench.warm_up(scenario, suite, None, args)
    plain = bench.run(scenario, "pytest", bench.pytest(*args), suite, 1)
    xdist = bench.run(scenario, f"pytest -n {XDIST_SLOTS}", bench.pytest("-n", str(XDIST_SLOTS), *args), suite,
                      XDIST_SLOTS)
    rows = [plain, xdist]
    for farm in bench.farms:
        rows += bench.embedded_runs(scenario, farm, suite, info, name, args)
    walls = [w for w in (wall(plain), wall(xdist)) if w is not None]
    best = min(walls) if len(walls) == 2 else None
    limit = 1.2 * best + 1.0 if best is not None else None
    for row in rows:
        row["suite"] = name
        row["vs"]["best"] = ratio(row, best)
    info["timings"] += rows
    for farm in bench.farms:
        mine = [row for row in rows if row.get("farm") == farm.label]
        for k in range(1, bench.runs + 1):
            value = wall(nth(mine, k)) if limit is not None else None
            info["targets"].append(target(
                f"(e) {name} embedded run {k} ≤ 1.2 × min(pytest, -n 2) + 1 s"
                + ("" if limit is None else f" = {limit:.2f} s"), limit or 0.0, value, farm.label, "s"))
    return {"path": str(suite), "tests": warm.get("collected"), "pytest_args": list(args), "warm_up": warm,
            "limit_s": limit}
