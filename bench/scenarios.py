"""The `farm up` scenarios of issue 10: trivial (a), skewed (b), imports (c), huge (d)."""

from __future__ import annotations

from typing import Any

from bench import suites
from bench.core import Bench, nth, ratio, target, vs, wall

TRIVIAL_SLOTS = 2
SKEWED_SLOTS = 16
IMPORTS_SLOTS = 2
HUGE_SLOTS = 2
RSS_LIMIT_MB = 250.0


def _start(bench: Bench, name: str, tests: int, slots: int) -> dict[str, Any]:
    suite = bench.tmp / name
    return {"tests": tests, "slots": slots, "suite": str(suite), "scale": bench.scale, "targets": []}


def _vs(rows: list[dict[str, Any]], name: str, reference: float | None) -> None:
    for row in rows:
        row["vs"][name] = ratio(row, reference)


def _local(bench: Bench, name: str, info: dict[str, Any], slots: int, memory: bool = False) -> None:
    """Serial pytest, `pytest -n slots`, then every farm on `farm up` K runs; ratios to both."""
    suite = bench.tmp / name
    info["warm_up"] = bench.warm_up(name, suite, info["tests"])
    plain = bench.run(name, "pytest", bench.pytest(), suite, 1)
    xdist = bench.run(name, f"pytest -n {slots}", bench.pytest("-n", str(slots)), suite, slots)
    rows = [plain, xdist]
    info["by_farm"] = {}
    for farm in bench.farms:
        runs = bench.cluster_runs(name, farm, suite, slots, info, memory=memory)
        info["by_farm"][farm.label] = runs
        rows += runs
    _vs(rows, "serial", wall(plain))
    _vs(rows, f"-n {slots}", wall(xdist))
    info["timings"] = rows


def trivial(bench: Bench) -> dict[str, Any]:
    files, per = bench.scaled(50), 100
    info = _start(bench, "trivial", files * per, TRIVIAL_SLOTS)
    suites.parametrized(bench.tmp / "trivial", files, per)
    _local(bench, "trivial", info, TRIVIAL_SLOTS)
    info["about"] = f"{files * per} trivial tests ({files} files × {per} parametrized), {TRIVIAL_SLOTS} slots"
    for farm in bench.farms:
        second = nth(info["by_farm"][farm.label], 2)
        info["targets"] += [
            target("(a) run 2 ≤ 1.0 × serial pytest", 1.0, vs(second, "serial"), farm.label),
            target(f"(a) run 2 ≤ 0.7 × `pytest -n {TRIVIAL_SLOTS}`", 0.7,
                   vs(second, f"-n {TRIVIAL_SLOTS}"), farm.label),
        ]
    return info


def skewed(bench: Bench) -> dict[str, Any]:
    n, total = bench.scaled(400, 2), 120.0 * bench.scale
    suite = bench.tmp / "skewed"
    durations = suites.skewed(suite, n=n, total_s=total, modules=max(1, min(20, n // 2)))
    bound = suites.lower_bound(durations, SKEWED_SLOTS)
    info = _start(bench, "skewed", n, SKEWED_SLOTS)
    info.update(total_s=sum(durations), longest_s=max(durations), lower_bound_s=bound)
    info["warm_up"] = bench.warm_up("skewed", suite, n)
    xdist = bench.run("skewed", f"pytest -n {SKEWED_SLOTS} --dist load",
                      bench.pytest("-n", str(SKEWED_SLOTS), "--dist", "load"), suite, SKEWED_SLOTS)
    rows = [xdist]
    info["by_farm"] = {}
    for farm in bench.farms:
        runs = bench.cluster_runs("skewed", farm, suite, SKEWED_SLOTS, info)
        info["by_farm"][farm.label] = runs
        rows += runs
    _vs(rows, "bound", bound)
    for row in rows:  # the session time the tool reports: pytest's without interpreter start
        row["vs"]["bound (session)"] = row["session_s"] / bound if row.get("session_s") else None
    info["timings"] = rows
    info["about"] = (f"{n} sleeping tests, lognormal σ 1.2, total {sum(durations):.1f} s, longest "
                     f"{max(durations):.2f} s; lower bound max(total / {SKEWED_SLOTS}, longest) = {bound:.2f} s; "
                     "farm: wall of submit-suite, submission to report, collection included")
    for farm in bench.farms:
        runs = info["by_farm"][farm.label]
        first, second = nth(runs, 1), nth(runs, 2)
        info["targets"] += [
            target("(b) run 2 ≤ 1.05 × lower bound", 1.05, vs(second, "bound"), farm.label),
            target("(b) run 1 (no history) ≤ 1.35 × lower bound", 1.35, vs(first, "bound"), farm.label),
        ]
    return info


def imports(bench: Bench) -> dict[str, Any]:
    modules, per = bench.scaled(60), 20
    info = _start(bench, "imports", modules * per, IMPORTS_SLOTS)
    suites.imports(bench.tmp / "imports", modules, per)
    _local(bench, "imports", info, IMPORTS_SLOTS)
    info["about"] = (f"{modules * per} tests in {modules} modules, each burning 150 ms of CPU at import, "
                     f"tests 5 ms of CPU; {IMPORTS_SLOTS} slots")
    xd = f"-n {IMPORTS_SLOTS}"
    for farm in bench.farms:
        runs = info["by_farm"][farm.label]
        first, second = nth(runs, 1), nth(runs, 2)
        info["targets"] += [
            target(f"(c) run 2 ≤ 0.7 × `pytest {xd}`", 0.7, vs(second, xd), farm.label),
            target(f"(c) run 1 ≤ 1.0 × `pytest {xd}`", 1.0, vs(first, xd), farm.label),
        ]
    return info


def huge(bench: Bench) -> dict[str, Any]:
    files, per = bench.scaled(200), 500
    info = _start(bench, "huge", files * per, HUGE_SLOTS)
    suites.parametrized(bench.tmp / "huge", files, per)
    _local(bench, "huge", info, HUGE_SLOTS, memory=True)
    info["about"] = (f"{files * per} trivial tests ({files} files × {per} parametrized), {HUGE_SLOTS} slots; "
                     "coordinator peak = the largest of its VmHWM and its processes' summed VmRSS, "
                     "sampled every 0.2 s")
    for farm in bench.farms:
        runs = info["by_farm"][farm.label]
        for k, row in enumerate(runs, 1):
            info["targets"].append(target(f"(d) run {k} wall ≤ 0.8 × serial pytest", 0.8, row["vs"]["serial"],
                                          farm.label))
        peaks = [coordinator_peak_mb(row) for row in runs]
        known = [p for p in peaks if p is not None]
        info["targets"].append(target(f"(d) coordinator peak RSS ≤ {RSS_LIMIT_MB:g} MB", RSS_LIMIT_MB,
                                      max(known) if known and len(known) == len(peaks) else None, farm.label, "MB"))
    return info


def coordinator_peak_mb(row: dict[str, Any]) -> float | None:
    memory = row.get("memory") or {}
    hwm = memory.get("peak_hwm_mb", {}).get("coordinator")
    total = memory.get("peak_sum_rss_mb", {}).get("coordinator")
    values = [v for v in (hwm, total) if v]
    return max(values) if values else None
