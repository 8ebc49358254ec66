"""Render benchmark results (the dict that bench/run.py writes as JSON) as a markdown table."""

from __future__ import annotations

from typing import Any

# A 1-minute load average above this per core, before the bench starts, makes its timings noisy.
BUSY_LOAD_PER_CORE = 0.5


def markdown(results: dict[str, Any]) -> str:
    """A table with one row per timed command, then one line per scenario on bounds and targets."""
    machine = results["machine"]
    lines = [
        (
            f"{machine['date']} · nproc {machine['nproc']} · Python {machine['python']} · "
            f"pytest {machine['pytest']} · pytest-xdist {machine['xdist']}"
        ),
        "",
        "| scenario | tool | slots | wall (s) | ratio | makespan (s) | makespan / bound | result |",
        "|---|---|---:|---:|---:|---:|---:|---|",
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
        for row in scenario["timings"]:
            wall = "" if row["wall_s"] is None else f"{row['wall_s']:.2f}"
            ratio = row.get("ratio")
            span, span_ratio = row.get("makespan_s"), row.get("makespan_ratio")
            lines.append(
                f"| {name} | {row['label']} | {row.get('slots', '')} | {wall} | "
                f"{'' if ratio is None else f'{ratio:.2f}'} | {'' if span is None else f'{span:.2f}'} | "
                f"{'' if span_ratio is None else f'{span_ratio:.2f}'} | {_result(row)} |"
            )
        farm_error = scenario.get("farm_error")
        if farm_error:
            lines.append(f"| {name} | farm | {scenario['slots']} |  |  |  |  | not run: {_cell(farm_error)} |")
    lines.append("")
    for name, scenario in results["scenarios"].items():
        lines.append(f"- {name}: {scenario['about']}")
        target = scenario.get("target")
        if target:
            lines.append(f"  - target: {target['text']}: **{target['status']}**")
    return "\n".join(lines) + "\n"


def _result(row: dict[str, Any]) -> str:
    if row["error"]:
        return "FAILED: " + _cell(row["error"])
    return _cell(row["summary"] or "ok")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
