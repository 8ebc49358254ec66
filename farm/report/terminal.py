"""The end-of-run text of a suite, as pytest prints it after the progress dots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from farm.model import SessionInfo
from farm.pytest_options import parse, report_chars
from farm.report.analysis_block import analysis_block
from farm.report.blocks import failure_sections, passes
from farm.report.gate_lines import gate_failed_lines, gate_lines, quarantine_lines
from farm.report.pytest_lines import pytest_major, separator, summary_line
from farm.report.resources import leak_lines, resource_lines
from farm.report.schema import quarantined_of
from farm.report.short_summary import running_on_ci, short_summary
from farm.report.stage_lines import stage_lines


def render_summary(report: Mapping[str, Any], *, verbose: bool = False, session: SessionInfo | None = None,
                   on_ci: bool | None = None) -> str:
    """The end-of-run text for a suite, as pytest prints it after the progress dots.

    `session` holds the pytest options that shape it (-r, --tb, --durations, -q, the deselected
    count), as the collecting worker reported them; read from the report's pytest args when None.
    `verbose` (farm's own -v) also lists skipped, xfailed, xpassed and not-run tests. `on_ci`
    (default: $CI or $BUILD_NUMBER set, as pytest decides) or -vv: the short summary carries each
    message whole, as pytest's does there; otherwise its first line.
    A quarantined test's banner and short-summary line say ` [quarantined]` after its id.
    Sections in pytest's order: ERRORS, FAILURES (none under --tb=no), slowest durations, short
    test summary info, farm's failure analysis (the full view's `analysis`; its tests under -v),
    the quarantined tests and the quality gates' verdicts, then the stop or interruption banner,
    the final `=` line, and `gate failed: …` when a gate failed. Ends with a newline (or is
    empty under -qq with nothing to say).
    """
    options = session or parse(report.get("pytest_args") or ())
    tests: Sequence[Mapping[str, Any]] = report.get("tests") or ()
    lines: list[str] = []
    chars = report_chars(options.reportchars) + ("sxX" if verbose else "")
    held = quarantined_of(report)  # marked `[quarantined]` where listed as failing: they do not fail the suite
    if options.tbstyle != "no":
        lines.extend(failure_sections(tests, options.tbstyle, options.pytest, held))
        lines.extend(passes(tests, report_chars(options.reportchars), options.pytest))
    lines.extend(renamed_warnings(tests))
    lines.extend(_durations(report, options))
    if verbose:
        lines.extend(resource_lines(report))
    whole = (running_on_ci() if on_ci is None else on_ci) or options.verbose >= 2
    short = short_summary(tests, chars, not_run=verbose or "a" in options.reportchars or "A" in options.reportchars,
                           xpass_dash=pytest_major(options.pytest) >= 8, whole_messages=whole, quarantined=held)
    for suspect in report.get("suspect_workers") or ():
        names = list(suspect.get("tests") or ())
        short.append(f"SUSPECT WORKER {suspect.get('worker')} - {len(names)} test{'s' if len(names) != 1 else ''} "
                     f"crashed its runner there and did not crash elsewhere: {', '.join(names[:3])}"
                     f"{' ...' if len(names) > 3 else ''}")
    short.extend(leak_lines(report))
    if short:
        lines.append(separator("=", "short test summary info"))
        lines.extend(short)
    if options.verbose >= -1:
        lines.extend(analysis_block(report.get("analysis"), verbose=verbose or options.verbose >= 1))
    lines.extend(stage_lines(report))
    if options.verbose >= -1:
        lines.extend(quarantine_lines(report))
        lines.extend(gate_lines(report))
    message = str(report.get("message") or "").rstrip("\n")
    if message:
        lines.extend(message.splitlines())
    stopped = str(report.get("stopped") or "")
    if stopped:  # pytest's words: "stopping after 1 failures"
        lines.append(separator("!", stopped.replace("stopped after", "stopping after", 1)))
    if report.get("status") == "canceled":
        lines.append(separator("!", "Interrupted: suite canceled"))
    if report.get("status") == "deadline":
        lines.append(separator("!", "Interrupted: suite deadline reached"))
    final = summary_line(report, options.deselected)
    if options.verbose >= 0:
        lines.append(separator("=", final))
    elif options.verbose == -1:
        lines.append(final)
    lines.extend(gate_failed_lines(report))  # last, whatever the verbosity: why the exit code is 1
    return "\n".join(lines) + "\n" if lines else ""


def _durations(report: Mapping[str, Any], options: SessionInfo) -> list[str]:
    """`--durations=N`: the slowest phases, as pytest lists them (the short ones hidden below -vv)."""
    entries = report.get("durations")
    if options.durations < 0 or entries is None:
        return []
    if not entries:
        return []
    title = f"slowest {options.durations} durations" if options.durations else "slowest durations"
    lines = [separator("=", title)]
    given = options.durations_min >= 0
    least = options.durations_min if given else 0.005 if options.verbose < 2 else 0.0
    old = pytest_major(options.pytest) < 9  # before pytest 9: a default of 0.005s that -vv lifts, and always the hint
    for i, (seconds, when, nodeid) in enumerate(entries):
        if float(seconds) < least and not (old and options.verbose >= 2):
            lines.append("")
            hint = "" if given and not old else "  Use -vv to show these durations."
            lines.append(f"({len(entries) - i} durations < {least:g}s hidden.{hint})")
            break
        lines.append(f"{float(seconds):02.2f}s {when:<8} {nodeid}")
    return lines


#: Renamed tests listed by name in the warnings summary; the rest are counted.
RENAMED_LISTED = 10


def renamed_warnings(tests: Sequence[Mapping[str, Any]]) -> list[str]:
    """A warnings summary for tests the runners collected under another id than the plan's."""
    renamed = [t for t in tests if t.get("ran_as")]
    if not renamed:
        return []
    n = len(renamed)
    lines = [separator("=", "warnings summary"),
             f"farm: {n} test{'s' if n != 1 else ''} ran under another id than planned (the parameter ids changed "
             "between collections); reported under the planned id:"]
    lines.extend(f"  {t.get('id')} ran as {t.get('ran_as')}" for t in renamed[:RENAMED_LISTED])
    if n > RENAMED_LISTED:
        lines.append(f"  ... and {n - RENAMED_LISTED} more (the JSON report's `ran_as`)")
    return lines
