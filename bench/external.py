"""Scenarios `planning` (g) and `results` (the results-path half of (d)): bench/planning.py and
bench/results_path.py, written separately, run as subprocesses.

Their interface: the LAST line of stdout is one JSON object
{"scenario": str, "rows": [{"label", "value", "unit"}], "targets": [{"text", "limit", "value", "status"}]}.
When the script is absent, the scenario says "not measured".
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench.core import Bench, target

SCRIPTS = {"planning": "planning.py", "results": "results_path.py"}


def external(bench: Bench, name: str, bench_dir: Any) -> dict[str, Any]:
    script = bench_dir / SCRIPTS[name]
    info: dict[str, Any] = {"tests": None, "slots": None, "suite": None, "scale": bench.scale,
                            "script": str(script), "timings": [], "targets": [], "rows": []}
    if not script.is_file():
        info["about"] = f"bench/{SCRIPTS[name]} is absent: not measured"
        info["targets"].append(target(f"{name}: bench/{SCRIPTS[name]} absent", 0.0, None))
        return info
    farm = bench.farms[-1]  # the farm under test (after): its environment, e.g. PYTHONPATH
    env = {**bench.farm_env(farm, name)}
    python = str(farm.tree.get("python") or sys.executable)
    row = bench.run(name, SCRIPTS[name], [python, str(script)], bench.tmp, 0, env)
    info["run"] = row
    info["about"] = f"bench/{SCRIPTS[name]} under {python}"
    try:
        log = bench.tmp / f"command-{len(bench.commands) - 1:03d}.log"
        found = _last_object(log.read_text(errors="replace").splitlines())
        info["rows"] = list(found.get("rows", []))
        for t in found.get("targets", []):
            info["targets"].append({**target(str(t["text"]), float(t["limit"]), t.get("value"), farm.label),
                                    "status": t.get("status", "not measured")})
    except (OSError, ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:
        info["error"] = f"no JSON object on the last line of its output: {exc}"
        info["targets"].append(target(f"{name}: {info['error']}", 0.0, None))
    return info


def _last_object(lines: list[str]) -> dict[str, Any]:
    """The last line that is a JSON object (stderr is in the same log, after it perhaps)."""
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    raise ValueError("none found")
