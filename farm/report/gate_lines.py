"""The summary's lines for quality gates and quarantine: a section each, and the `gate failed: …` line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from farm.gates import Verdict, failure_line
from farm.report.pytest_lines import separator


def verdicts_of(report: Mapping[str, Any]) -> tuple[Verdict, ...]:
    return tuple(Verdict.from_dict(v) for v in report.get("gates") or () if isinstance(v, Mapping))


def gate_lines(report: Mapping[str, Any]) -> list[str]:
    """`quality gates` and a line per gate: `gate max-failures: 3 failing > 2: FAILED`."""
    verdicts = verdicts_of(report)
    if not verdicts:
        return []
    return [separator("=", "quality gates"),
            *(f"gate {v.gate}: {v.detail}: {v.verdict.upper()}" for v in verdicts)]


def quarantine_lines(report: Mapping[str, Any]) -> list[str]:
    """`quarantined` and a line per quarantined test with its real outcome and why, then a
    warning per listed id the collection did not have."""
    held = [q for q in report.get("quarantined") or () if isinstance(q, Mapping)]
    unknown = list(report.get("quarantine_unknown") or ())
    if not held and not unknown:
        return []
    lines = [separator("=", "quarantined")]
    n = len(held)
    if n:
        lines.append(f"{n} quarantined test{'s' if n != 1 else ''} ran; their outcomes do not fail the suite:")
    lines.extend(f"QUARANTINED {q.get('test_id')} - {q.get('outcome')} ({q.get('reason')})" for q in held)
    lines.extend(f"farm: warning: --quarantine {t}: no such test in the collection (ignored)" for t in unknown)
    return lines


def gate_failed_lines(report: Mapping[str, Any]) -> list[str]:
    """The summary's last line when a gate failed: `gate failed: max-flaky: 1 flaky > 0` ([] if none did)."""
    line = failure_line(verdicts_of(report))
    return [line] if line else []
