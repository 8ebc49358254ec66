"""Benchmark farm against pytest and pytest-xdist on the suites of issue 10, in the same run.

    python bench/run.py all|trivial|skewed|imports|huge|small|vm|planning|results ...
        [--runs K] [--scale F] [--farm CMD] [--farm-before CMD] [--python PY] [--out FILE.json]

See bench/README.md for what each scenario measures and the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if not __package__:  # run as `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(REPO))

from bench import external, scenarios, small, vmscenario  # noqa: E402
from bench.core import Bench, say  # noqa: E402
from bench.farmcmd import FarmCommand, locate, parse  # noqa: E402
from bench.report import markdown  # noqa: E402

COMMAND_TIMEOUT_S = 900.0  # any command running longer is killed with its process group
STARTUP_TIMEOUT_S = 120.0  # `farm up` must print its broker URL within this
DEFAULT_RUNS = 2  # farm submissions: the first has no recorded durations, the next ones do
SCENARIOS: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "trivial": scenarios.trivial,
    "skewed": scenarios.skewed,
    "imports": scenarios.imports,
    "huge": scenarios.huge,
    "small": small.small,
    "planning": lambda bench: external.external(bench, "planning", REPO / "bench"),
    "results": lambda bench: external.external(bench, "results", REPO / "bench"),
    "vm": vmscenario.vm,
}
ALL = [name for name in SCENARIOS if name != "vm"]  # vm only when asked: QEMU under TCG is slow

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


def default_farm() -> str:
    """This checkout's farm: its venv's entry point, else `python -m farm` with this tree first."""
    exe = REPO / ".venv" / "bin" / "farm"
    if exe.is_file():
        return str(exe)
    return f"env PYTHONPATH={REPO} {sys.executable} -m farm"


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
            raise BenchError(f"{python} has no {package}: pass --python with pytest and pytest-xdist installed")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "platform": platform.platform(),
        **versions,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("scenario", nargs="+", choices=[*SCENARIOS, "all"], help="scenarios; all = every one but vm")
    parser.add_argument("--runs", type=_positive, default=DEFAULT_RUNS,
                        help=f"farm submissions per cluster (default {DEFAULT_RUNS})")
    parser.add_argument("--scale", type=_fraction, default=1.0, help="shrink every generated suite (e.g. 0.1)")
    parser.add_argument("--out", type=Path, help="results JSON (default bench/results/SCENARIO-DATE.json)")
    parser.add_argument("--farm", default=None, help="farm command, split like a shell would; leading `env` "
                        "and VAR=VALUE words are its environment (default: this checkout's)")
    parser.add_argument("--farm-env", action="append", default=[], metavar="VAR=VALUE", help="more env for --farm")
    parser.add_argument("--farm-before", default=None, help="an older farm command, measured in the same run")
    parser.add_argument("--farm-before-env", action="append", default=[], metavar="VAR=VALUE")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs pytest (default: this one)")
    parser.add_argument("--timeout", type=float, default=COMMAND_TIMEOUT_S,
                        help=f"seconds per command (default {COMMAND_TIMEOUT_S:g})")
    parser.add_argument("--startup-timeout", type=float, default=STARTUP_TIMEOUT_S,
                        help=f"seconds for `farm up` to print its broker URL (default {STARTUP_TIMEOUT_S:g})")
    args = parser.parse_args(argv)
    try:
        farms = [parse("after" if args.farm_before else "farm", args.farm or default_farm(), args.farm_env)]
        if args.farm_before:
            farms.insert(0, parse("before", args.farm_before, args.farm_before_env))
    except ValueError as exc:
        parser.error(str(exc))
    args.farms = farms
    names = [n for s in args.scenario for n in (ALL if s == "all" else [s])]
    args.names = list(dict.fromkeys(names))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="farm-bench-"))
    try:
        (tmp / "tmp").mkdir()
        env = {**os.environ, "TMPDIR": str(tmp / "tmp")}  # whatever the tools leave in TMPDIR goes too
        for name in ("FARM_BROKER_URL", "CELERY_BROKER_URL"):  # farm runs go to the bench's own clusters
            env.pop(name, None)
        if os.sep in args.python:  # commands run in the suite's directory: a relative path would break
            args.python = os.path.abspath(args.python)
        results: dict[str, Any] = {"machine": machine_info(args.python, 60.0), "runs": args.runs,
                                   "scale": args.scale}
        farms: list[FarmCommand] = args.farms
        for farm in farms:
            farm.tree = locate(farm, env, str(tmp))
            say(f"farm {farm.label}: {' '.join(farm.argv)} {farm.env or ''} -> {farm.tree}")
        results["farms"] = [farm.as_json() for farm in farms]
        bench = Bench(args.python, farms, args.runs, args.timeout, args.startup_timeout, tmp, env, args.scale)
        scenarios_out: dict[str, dict[str, Any]] = {}
        results["scenarios"] = scenarios_out
        for name in args.names:
            started = time.perf_counter()
            scenarios_out[name] = SCENARIOS[name](bench)
            scenarios_out[name]["elapsed_s"] = round(time.perf_counter() - started, 1)
        results["commands"] = bench.commands
        results["machine"]["loadavg_at_end"] = os.getloadavg()
        stem = "-".join(args.scenario)
        out = args.out or REPO / "bench" / "results" / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(markdown(results))
        print(f"results: {out}")
        return 1 if any(_failed(s) for s in scenarios_out.values()) else 0
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started was killed, temp files removed", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _failed(scenario: dict[str, Any]) -> bool:
    rows = list(scenario.get("timings", []))
    rows += [s["warm_up"] for s in (scenario.get("suites") or {}).values() if "warm_up" in s]
    rows += [scenario[k] for k in ("warm_up", "run") if k in scenario]
    broken = [s for s in (scenario.get("suites") or {}).values() if "error" in s]
    return any(not row["ok"] for row in rows) or bool(scenario.get("farm_errors")) or bool(broken)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
