"""What every scenario shares: running timed commands, pytest baselines, farm clusters and targets."""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import sampler
from bench.cluster import ClusterError, FarmCluster
from bench.farmcmd import FarmCommand, problem, service_env
from bench.procs import run_timed

PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
COLLECTED = re.compile(r"(\d+) tests? collected")
SESSION_TIME = re.compile(r" in ([0-9.]+)s")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Bench:
    """Interpreter, farms under test, limits, temp dir and the log of every command run."""

    python: str
    farms: list[FarmCommand]
    runs: int
    timeout_s: float
    startup_timeout_s: float
    tmp: Path
    env: dict[str, str]
    scale: float = 1.0
    commands: list[str] = field(default_factory=list)

    def scaled(self, n: int, least: int = 1) -> int:
        return max(least, round(n * self.scale))

    def run(
        self, scenario: str, label: str, command: list[str], cwd: Path, slots: int, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        log = self.tmp / f"command-{len(self.commands):03d}.log"
        self.commands.append(shlex.join(command))
        say(f"[{scenario}] {label}: {shlex.join(command)}")
        timing = run_timed(label, command, cwd, self.timeout_s, log, env or self.env)
        row = asdict(timing)
        row.update(ok=timing.ok, slots=slots, farm=None, vs={})
        if timing.ok:
            del row["output_tail"]
        found = SESSION_TIME.search(timing.summary or "") if timing.ok else None
        row["session_s"] = float(found.group(1)) if found else None  # the time the tool itself reports
        wall = "-" if timing.wall_s is None else f"{timing.wall_s:.2f} s"
        say(f"[{scenario}] {label}: {wall}, {timing.error or timing.summary}")
        return row

    def pytest(self, *extra: str) -> list[str]:
        return [self.python, *PYTEST, *extra]

    def warm_up(self, scenario: str, suite: Path, tests: int | None, args: tuple[str, ...] = ()) -> dict[str, Any]:
        """Untimed collection first, so every tool finds the same __pycache__ (as users have)."""
        row = self.run(scenario, "warm-up (untimed)", self.pytest("--collect-only", *args), suite, 1)
        found = COLLECTED.search(row["summary"] or "")
        if row["ok"] and found is None:
            row["ok"], row["error"] = False, f"no test count in: {row['summary']}"
        elif row["ok"] and tests is not None and int(found.group(1)) != tests:  # type: ignore[union-attr]
            row["ok"], row["error"] = False, f"expected {tests} tests collected, got: {row['summary']}"
        row["collected"] = int(found.group(1)) if found else None
        return row

    def farm_env(self, farm: FarmCommand, name: str) -> dict[str, str]:
        """The farm's environment, with caches and history of its own (a first run finds none)."""
        caches = self.tmp / "farm-caches" / f"{farm.label}-{name}"
        caches.mkdir(parents=True, exist_ok=True)
        return {
            **self.env,
            "XDG_CACHE_HOME": str(caches),
            "FARM_CACHE_DIR": str(caches / "farm"),
            "FARM_HISTORY_DIR": str(caches / "history"),
            **farm.env,
        }

    def cluster_runs(
        self,
        scenario: str,
        farm: FarmCommand,
        suite: Path,
        slots: int,
        info: dict[str, Any],
        *,
        runs: int | None = None,
        up_args: list[str] | None = None,
        memory: bool = False,
        name: str | None = None,
        python: str | None = None,
    ) -> list[dict[str, Any]]:
        """Start `farm up`, submit the suite `runs` times, stop it; failures go into info["farm_errors"].
        Each run's row gets the CPU its cluster's services spent (and with `memory`, their peaks)."""
        key = name or farm.label
        why = problem(farm)
        if why:
            say(f"[{scenario}] {key}: {why}")
            info.setdefault("farm_errors", {})[key] = why
            return []
        env = self.farm_env(farm, f"{scenario}-{key}")
        log = self.tmp / f"{scenario}-{key}-cluster.log"
        py = self.python if python is None else python  # "": none given, the backend's own
        cluster = FarmCluster(farm.argv, 1, slots, log, self.startup_timeout_s, env, py or None, up_args, self.tmp)
        self.commands.append(shlex.join(cluster.command))
        record: dict[str, Any] = {"command": cluster.command, "env": farm.env}
        info.setdefault("clusters", {})[key] = record
        say(f"[{scenario}] starting cluster: {shlex.join(cluster.command)}")
        rows: list[dict[str, Any]] = []
        try:
            with cluster:
                assert cluster.broker_url is not None and cluster.pid is not None
                record.update(broker_url=cluster.broker_url, startup_s=cluster.startup_s)
                found = sampler.services(cluster.pid)
                record["services"] = {role: len(pids) for role, pids in found.items()}
                if found.get("coordinator"):
                    record["coordinator_env"] = service_env(found["coordinator"][0])
                port = urlsplit(cluster.broker_url).port or 6379
                for k in range(1, (runs or self.runs) + 1):
                    submit = [*farm.argv, "submit-suite", str(suite), "--broker", cluster.broker_url, "--", "-q"]
                    cpu_before = sampler.cpu_by_role(cluster.pid)
                    watch = sampler.Sampler(cluster.pid) if memory else None
                    if watch:
                        with watch:
                            row = self.run(scenario, f"{key} run {k}", submit, suite, slots, env)
                    else:
                        row = self.run(scenario, f"{key} run {k}", submit, suite, slots, env)
                    cpu_after = sampler.cpu_by_role(cluster.pid)
                    row["service_cpu_s"] = {r: round(cpu_after[r] - cpu_before.get(r, 0.0), 2) for r in cpu_after}
                    if watch:
                        row["memory"] = watch.as_json()
                        row["memory"]["redis_info"] = sampler.redis_info_memory(port)
                    row["farm"] = key
                    rows.append(row)
        except ClusterError as exc:
            say(f"[{scenario}] {key}: {exc}")
            info.setdefault("farm_errors", {})[key] = str(exc)
        record["stop_note"] = cluster.stop_note
        return rows

    def embedded_runs(
        self, scenario: str, farm: FarmCommand, suite: Path, info: dict[str, Any], name: str,
        args: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        """`farm submit-suite DIR` with no broker (an embedded farm per command), `runs` times:
        run 1 has no saved history, the next ones have what run 1 saved."""
        key = f"{farm.label}"
        why = problem(farm)
        if why:
            info.setdefault("farm_errors", {})[key] = why
            return []
        env = self.farm_env(farm, f"{scenario}-{name}")
        env.pop("FARM_BROKER_URL", None)
        rows = []
        for k in range(1, self.runs + 1):
            submit = [*farm.argv, "submit-suite", str(suite), "--python", self.python, "--", "-q", *args]
            row = self.run(scenario, f"{key} embedded run {k}", submit, suite, 0, env)
            row["farm"] = key
            rows.append(row)
        return rows


def ratio(row: dict[str, Any], reference: float | None) -> float | None:
    if not row["ok"] or row["wall_s"] is None or not reference:
        return None
    return float(row["wall_s"]) / reference


def wall(row: dict[str, Any] | None) -> float | None:
    return float(row["wall_s"]) if row and row["ok"] and row["wall_s"] is not None else None


def target(text: str, limit: float, value: float | None, farm: str | None = None, unit: str = "×") -> dict[str, Any]:
    """One target: met when value ≤ limit; not measured when there is no value."""
    status = "not measured" if value is None else ("met" if value <= limit else "missed")
    return {"text": text, "limit": limit, "value": value, "unit": unit, "farm": farm, "status": status}


def farm_rows(rows: list[dict[str, Any]], farm: FarmCommand) -> list[dict[str, Any]]:
    return [row for row in rows if row.get("farm") == farm.label]


def vs(row: dict[str, Any] | None, reference: str) -> float | None:
    """The row's ratio to a reference, if the row ran and has it."""
    value = (row or {}).get("vs", {}).get(reference)
    return None if value is None else float(value)


def nth(rows: list[dict[str, Any]], k: int) -> dict[str, Any] | None:
    """The k-th farm run (1-based) of these rows, if it ran."""
    return rows[k - 1] if len(rows) >= k else None
