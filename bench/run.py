"""Benchmark farm against pytest and pytest-xdist on generated suites, in the same run.

    python bench/run.py trivial|skewed|all [--slots N] [--runs K] [--out FILE.json] [--farm CMD]

See bench/README.md for what each scenario measures and the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if not __package__:  # run as `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(REPO))

from bench import suites  # noqa: E402
from bench.cluster import ClusterError, FarmCluster, resolve_farm  # noqa: E402
from bench.procs import run_timed  # noqa: E402
from bench.report import markdown  # noqa: E402

DEFAULT_FARM = str(REPO / ".venv" / "bin" / "farm")  # --farm overrides
COMMAND_TIMEOUT_S = 600.0  # any command running longer is killed with its process group
STARTUP_TIMEOUT_S = 120.0  # `farm up` must print its broker URL within this
DEFAULT_RUNS = 2  # farm submissions: the first has no recorded durations, the next ones do
TRIVIAL_SLOTS = 2  # target (a) is defined for 2 slots
SKEWED_SLOTS = 16  # target (b) is defined for 16 slots
TRIVIAL_TARGET = 1.5  # farm wall / `pytest -n 2` wall, 5,000 trivial tests
SKEWED_TARGET = 1.25  # farm makespan on its second run / lower bound, skewed suite
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
COLLECTED = re.compile(r"(\d+) tests? collected")

_VERSIONS = """\
import importlib.metadata as m, json, sys
def v(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
print(json.dumps({"python": sys.version.split()[0], "executable": sys.executable,
                  "pytest": v("pytest"), "xdist": v("pytest-xdist")}))
"""


class BenchError(Exception):
    """The bench cannot run at all (one line for the user)."""


@dataclass
class Bench:
    """What every scenario shares: interpreter, farm command, limits, temp dir, command log."""

    python: str
    farm: list[str]
    runs: int
    timeout_s: float
    startup_timeout_s: float
    tmp: Path
    env: dict[str, str]
    commands: list[str] = field(default_factory=list)

    def run(self, scenario: str, label: str, command: list[str], cwd: Path, slots: int) -> dict[str, Any]:
        log = self.tmp / f"command-{len(self.commands):02d}.log"
        self.commands.append(shlex.join(command))
        _say(f"[{scenario}] {label}: {shlex.join(command)}")
        timing = run_timed(label, command, cwd, self.timeout_s, log, self.env)
        row = asdict(timing)
        row.update(ok=timing.ok, slots=slots, ratio=None)
        if not timing.ok:
            row["output_tail"] = timing.output_tail
        else:
            del row["output_tail"]
        wall = "-" if timing.wall_s is None else f"{timing.wall_s:.2f} s"
        _say(f"[{scenario}] {label}: {wall}, {timing.error or timing.summary}")
        return row

    def pytest(self, *extra: str) -> list[str]:
        return [self.python, *PYTEST, *extra]

    def warm_up(self, scenario: str, suite: Path, tests: int) -> dict[str, Any]:
        """Untimed collection first, so every tool finds the same __pycache__ (as users have)."""
        row = self.run(scenario, "warm-up (untimed)", self.pytest("--collect-only"), suite, 1)
        found = COLLECTED.search(row["summary"] or "")
        if row["ok"] and (found is None or int(found.group(1)) != tests):
            row["ok"], row["error"] = False, f"expected {tests} tests collected, got: {row['summary']}"
        return row

    def farm_runs(self, scenario: str, suite: Path, slots: int, info: dict[str, Any]) -> list[dict[str, Any]]:
        """Start a cluster, submit the suite `runs` times, stop it; failures go into info["farm_error"]."""
        problem = resolve_farm(self.farm)
        if problem:
            _say(f"[{scenario}] farm: {problem}")
            info["farm_error"] = problem
            return []
        # Farm runs with the environment it would have anyway: `farm up` itself must flush its
        # broker line into the pipe (click.echo does); PYTHONUNBUFFERED here would slow its workers.
        log = self.tmp / f"{scenario}-cluster.log"
        cluster = FarmCluster(self.farm, 1, slots, log, self.startup_timeout_s, self.env, python=self.python)
        self.commands.append(shlex.join(cluster.command))
        info["farm_cluster"] = {"command": cluster.command}
        _say(f"[{scenario}] starting cluster: {shlex.join(cluster.command)}")
        rows: list[dict[str, Any]] = []
        try:
            with cluster:
                assert cluster.broker_url is not None
                info["farm_cluster"].update(broker_url=cluster.broker_url, startup_s=cluster.startup_s)
                for k in range(1, self.runs + 1):
                    submit = [*self.farm, "submit-suite", str(suite), "--broker", cluster.broker_url, "--", "-q"]
                    rows.append(self.run(scenario, f"farm run {k}", submit, suite, slots))
        except ClusterError as exc:
            _say(f"[{scenario}] farm: {exc}")
            info["farm_error"] = str(exc)
        info["farm_cluster"]["stop_note"] = cluster.stop_note
        return rows


def trivial(bench: Bench, slots: int) -> dict[str, Any]:
    """5,000 trivial tests: the fixed cost per test of each tool."""
    suite = bench.tmp / "trivial"
    tests = suites.trivial(suite)
    info: dict[str, Any] = {"tests": tests, "slots": slots, "suite": str(suite)}
    info["warm_up"] = bench.warm_up("trivial", suite, tests)
    plain = bench.run("trivial", "pytest", bench.pytest(), suite, 1)
    xdist = bench.run("trivial", f"pytest -n {slots}", bench.pytest("-n", str(slots)), suite, slots)
    farm = bench.farm_runs("trivial", suite, slots, info)
    for row in [plain, xdist, *farm]:
        row["ratio"] = _ratio(row, xdist["wall_s"] if xdist["ok"] else None)
    info["timings"] = [plain, xdist, *farm]
    info["about"] = f"{tests} trivial tests; ratio = wall / `pytest -n {slots}` wall"
    info["target"] = _target(
        f"every farm run ≤ {TRIVIAL_TARGET} × `pytest -n {TRIVIAL_SLOTS}`",
        [row["ratio"] for row in farm],
        TRIVIAL_TARGET,
        bench.runs,
        slots == TRIVIAL_SLOTS,
    )
    return info


def skewed(bench: Bench, slots: int) -> dict[str, Any]:
    """400 sleeping tests with lognormal durations: how close each tool gets to the best makespan."""
    suite = bench.tmp / "skewed"
    durations = suites.skewed(suite)
    bound = suites.lower_bound(durations, slots)
    info: dict[str, Any] = {
        "tests": len(durations),
        "slots": slots,
        "suite": str(suite),
        "total_s": sum(durations),
        "longest_s": max(durations),
        "lower_bound_s": bound,
    }
    info["warm_up"] = bench.warm_up("skewed", suite, len(durations))
    xdist = bench.run(
        "skewed", f"pytest -n {slots} --dist load", bench.pytest("-n", str(slots), "--dist", "load"), suite, slots
    )
    farm = bench.farm_runs("skewed", suite, slots, info)
    for row in [xdist, *farm]:
        row["ratio"] = _ratio(row, bound)
        # Makespan: the session time each tool reports ("in 12.34s"): for pytest, its session
        # without interpreter start-up; for farm, submission to the last merged result.
        found = SESSION_TIME.search(row["summary"] or "") if row["ok"] else None
        row["makespan_s"] = float(found.group(1)) if found else None
        row["makespan_ratio"] = row["makespan_s"] / bound if row["makespan_s"] else None
    info["timings"] = [xdist, *farm]
    info["about"] = (
        f"{len(durations)} sleeping tests, total {sum(durations):.1f} s, longest {max(durations):.2f} s; "
        f"lower bound max(total / {slots}, longest) = {bound:.2f} s; ratio = wall / lower bound; "
        "makespan = the session time the tool reports, judged against the target"
    )
    second = [farm[1]["makespan_ratio"]] if len(farm) >= 2 else [None]
    info["target"] = _target(
        f"farm run 2 makespan ≤ {SKEWED_TARGET} × lower bound at {SKEWED_SLOTS} slots",
        second,
        SKEWED_TARGET,
        1,
        slots == SKEWED_SLOTS,
    )
    return info


SESSION_TIME = re.compile(r" in ([0-9.]+)s")


def _ratio(row: dict[str, Any], reference: float | None) -> float | None:
    if not row["ok"] or row["wall_s"] is None or not reference:
        return None
    return float(row["wall_s"]) / reference


def _target(text: str, ratios: list[float | None], limit: float, expected: int, applies: bool) -> dict[str, Any]:
    if not applies:
        status = "not applicable (other slot count)"
    elif len(ratios) < expected or not ratios or any(r is None for r in ratios):
        status = "not measured"
    else:
        status = "met" if all(r is not None and r <= limit for r in ratios) else "missed"
    return {"text": text, "limit": limit, "ratios": ratios, "status": status}


def machine_info(python: str, timeout_s: float) -> dict[str, Any]:
    try:
        out = subprocess.run(
            [python, "-c", _VERSIONS], capture_output=True, text=True, timeout=timeout_s, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"cannot query {python} for versions: {exc}") from None
    versions = json.loads(out)
    for package in ("pytest", "xdist"):
        if versions[package] is None:
            raise BenchError(f"{python} has no {package}: run with .venv/bin/python or pass --python")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "platform": platform.platform(),
        **versions,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["trivial", "skewed", "all"])
    parser.add_argument(
        "--slots",
        type=_positive,
        help=f"slots for every tool (default: trivial {TRIVIAL_SLOTS}, skewed {SKEWED_SLOTS})",
    )
    parser.add_argument(
        "--runs", type=_positive, default=DEFAULT_RUNS, help=f"farm submissions per scenario (default {DEFAULT_RUNS})"
    )
    parser.add_argument("--out", type=Path, help="results JSON (default bench/results/SCENARIO-DATE.json)")
    parser.add_argument(
        "--farm", default=DEFAULT_FARM, help=f"farm command, split like a shell would (default {DEFAULT_FARM})"
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs pytest (default: this one)")
    parser.add_argument(
        "--timeout", type=float, default=COMMAND_TIMEOUT_S, help=f"seconds per command (default {COMMAND_TIMEOUT_S:g})"
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=STARTUP_TIMEOUT_S,
        help=f"seconds for `farm up` to print its broker URL (default {STARTUP_TIMEOUT_S:g})",
    )
    args = parser.parse_args(argv)
    args.farm = shlex.split(args.farm)
    if not args.farm:
        parser.error("--farm must not be empty")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    try:
        (tmp / "tmp").mkdir()
        env = {**os.environ, "TMPDIR": str(tmp / "tmp")}  # whatever the tools leave in TMPDIR goes too
        if os.sep in args.python:  # commands run in the suite's directory: a relative path would break
            args.python = os.path.abspath(args.python)
        bench = Bench(args.python, args.farm, args.runs, args.timeout, args.startup_timeout, tmp, env)
        results: dict[str, Any] = {"machine": machine_info(args.python, 60.0), "farm": args.farm, "runs": args.runs}
        scenarios: dict[str, dict[str, Any]] = {}
        results["scenarios"] = scenarios
        names = ["trivial", "skewed"] if args.scenario == "all" else [args.scenario]
        for name in names:
            if name == "trivial":
                scenarios[name] = trivial(bench, args.slots or TRIVIAL_SLOTS)
            else:
                scenarios[name] = skewed(bench, args.slots or SKEWED_SLOTS)
        results["commands"] = bench.commands
        results["machine"]["loadavg_at_end"] = os.getloadavg()
        out = args.out or REPO / "bench" / "results" / f"{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(markdown(results))
        print(f"results: {out}")
        rows = [row for s in scenarios.values() for row in [s["warm_up"], *s["timings"]]]
        failed = any(not row["ok"] for row in rows) or any(s.get("farm_error") for s in scenarios.values())
        return 1 if failed else 0
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started was killed, temp files removed", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
