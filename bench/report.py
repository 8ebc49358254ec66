"""Render benchmark results (the dict that bench/run.py writes as JSON) as markdown."""

from __future__ import annotations

from typing import Any

# A 1-minute load average above this per core, before the bench starts, makes its timings noisy.
BUSY_LOAD_PER_CORE = 0.5


def markdown(results: dict[str, Any]) -> str:
    """A table with one row per timed command, then each scenario's targets: met / missed / not measured."""
    machine = results["machine"]
    farms = ", ".join(f"{f['label']}: `{' '.join(f['argv'])}`" + (f" env {f['env']}" if f["env"] else "")
                      for f in results.get("farms", []))
    lines = [
        (
            f"{machine['date']} · nproc {machine['nproc']} · Python {machine['python']} · "
            f"pytest {machine['pytest']} · pytest-xdist {machine['xdist']} · scale {results.get('scale', 1.0):g} · "
            f"K = {results.get('runs')} farm runs"
        ),
        "",
        f"farms: {farms}",
        "",
        "| scenario | command | slots | wall (s) | CPU (s) | vs | notes | result |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    # Only the load before the bench started says something about others: the bench loads the machine itself.
    load = machine["loadavg_at_start"][0]
    if load > BUSY_LOAD_PER_CORE * machine["nproc"]:
        lines[1:1] = [
            "",
            f"**Warning: the machine was busy before the bench started (1-min load average {load:.1f} on "
            f"{machine['nproc']} cores); these figures are noisy: run again on an idle machine.**",
        ]
    for name, scenario in results["scenarios"].items():
        for row in scenario.get("timings", []):
            where = f"{name}/{row['suite']}" if row.get("suite") else name
            lines.append(
                f"| {where} | {row['label']} | {row.get('slots') or ''} | {_num(row['wall_s'])} | "
                f"{_num(row.get('cpu_s'))} | {_vs(row)} | {_cell(_notes(row))} | {_result(row)} |"
            )
        for label, error in (scenario.get("farm_errors") or {}).items():
            lines.append(f"| {name} | {label} |  |  |  |  |  | not run: {_cell(error)} |")
        for row in scenario.get("rows", []):  # from an external bench script
            lines.append(f"| {name} | {_cell(str(row.get('label')))} |  | | | | "
                         f"{row.get('value')} {row.get('unit', '')} | |")
    lines.append("")
    for name, scenario in results["scenarios"].items():
        lines.append(f"- **{name}**: {_cell(scenario.get('about', ''))}")
        for t in scenario.get("targets", []):
            lines.append(f"  - {t['farm'] + ': ' if t.get('farm') else ''}{t['text']}: "
                         f"{_value(t)} → **{t['status']}**")
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _vs(row: dict[str, Any]) -> str:
    parts = [f"{v:.2f} × {k}" if "local" not in k else f"+{v:.2f} s vs {k}"
             for k, v in (row.get("vs") or {}).items() if v is not None]
    return ", ".join(parts)


def _notes(row: dict[str, Any]) -> str:
    notes = []
    if row.get("service_cpu_s"):
        notes.append("services CPU " + " ".join(f"{k} {v:.1f}" for k, v in sorted(row["service_cpu_s"].items())))
    memory = row.get("memory")
    if memory:
        hwm, total = memory.get("peak_hwm_mb", {}), memory.get("peak_sum_rss_mb", {})
        for role in ("coordinator", "redis"):
            if role in hwm:
                notes.append(f"{role} peak {max(hwm[role], total.get(role, 0)):.0f} MB")
        info = memory.get("redis_info") or {}
        if "used_memory_peak" in info:
            notes.append(f"redis used_memory_peak {info['used_memory_peak'] / 2**20:.0f} MB")
    return "; ".join(notes)


def _value(t: dict[str, Any]) -> str:
    value = t.get("value")
    if value is None:
        return "-"
    unit = t.get("unit", "×")
    return f"{value:.2f} {unit}" if unit != "×" else f"{value:.2f} ×"


def _result(row: dict[str, Any]) -> str:
    if row.get("error"):
        return "FAILED: " + _cell(row["error"])
    return _cell(row.get("summary") or "ok")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
