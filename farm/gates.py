"""Quality gates: the limits a suite (or one of its stages) must stay within, and their verdicts.

Pure: fed a summary's counts and wall times, it returns one verdict per gate asked for. Where the
figures come from (the report's summary, the run history's median wall) is the caller's business.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from farm.outcomes import FAILURES, Outcome

if TYPE_CHECKING:  # farm.run_history imports the model, which imports this module
    from farm.run_history import RunEntry

PASSED = "passed"
FAILED = "failed"
#: A gate that could not be decided (no history to compare the wall time with): it does not fail.
SKIPPED = "skipped"
#: The regression gate compares the suite's wall time with the median of the project's last
#: RECENT_RUNS comparable runs (`comparable_walls`), and is skipped with fewer than MIN_RUNS.
RECENT_RUNS = 10
MIN_RUNS = 3


@dataclass(frozen=True)
class Gates:
    """The gates a suite was submitted with (None: not asked for)."""

    min_pass_rate: float | None = None  # percent, 0-100: (passed + flaky) / tests that count
    max_failures: int | None = None  # failed + error + timeout + crashed
    max_duration_regression: float | None = None  # percent over the median wall of recent runs
    max_flaky: int | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.min_pass_rate, self.max_failures,
                                           self.max_duration_regression, self.max_flaky))


@dataclass(frozen=True)
class Verdict:
    """One gate's figure against its limit."""

    gate: str  # the option's name without dashes' prefix: "min-pass-rate", "max-failures", ...
    limit: float
    value: float | None  # the measured figure (None when it could not be measured)
    verdict: str  # PASSED, FAILED or SKIPPED
    detail: str  # one line, as the summary prints it after "gate NAME: "

    def as_dict(self) -> dict[str, object]:
        return {"gate": self.gate, "limit": self.limit, "value": self.value, "verdict": self.verdict,
                "detail": self.detail}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        """A verdict as a report's `gates` list holds it (`as_dict`)."""
        value = d.get("value")
        return cls(str(d.get("gate", "")), float(d.get("limit") or 0), None if value is None else float(value),
                   str(d.get("verdict", "")), str(d.get("detail", "")))


def comparable_walls(runs: Iterable[RunEntry], *, suite_id: str, pool: str,
                     pytest_args: Sequence[str]) -> list[float]:
    """The wall times the regression gate compares a suite with, oldest first: the last RECENT_RUNS
    runs of its project's history that ran to their end (status `finished`, whatever their tests'
    outcomes) on the same pool with the same pytest arguments (`-k smoke` is another suite),
    the suite itself left out. `runs`: the project's run history, in any order."""
    args = tuple(pytest_args)
    same = [r for r in runs if r.status == "finished" and r.pool == pool and r.pytest_args == args
            and r.suite_id != suite_id]
    same.sort(key=lambda r: r.finished_at)
    return [r.wall_s for r in same[-RECENT_RUNS:]]


def median_wall(walls: Sequence[float]) -> float | None:
    """The median of `comparable_walls`, None with fewer than MIN_RUNS of them (the gate is skipped)."""
    return statistics.median(walls) if len(walls) >= MIN_RUNS else None


def pass_rate(counts: Mapping[str, int]) -> float | None:
    """Percent of the tests that count which passed (flaky ones pass): skipped and xfailed tests do
    not count, not-run ones do (they did not pass). None when no test counts."""
    total = sum(counts.get(o.value, 0) for o in Outcome)
    counted = total - counts.get(Outcome.SKIPPED.value, 0) - counts.get(Outcome.XFAILED.value, 0)
    if counted <= 0:
        return None
    passed = counts.get(Outcome.PASSED.value, 0) + counts.get(Outcome.FLAKY.value, 0)
    return 100.0 * passed / counted


def failures(counts: Mapping[str, int]) -> int:
    """Failed, error, timeout and crashed tests together."""
    return sum(counts.get(o.value, 0) for o in FAILURES)


def evaluate(gates: Gates, counts: Mapping[str, int], wall_s: float,
             median_wall_s: float | None, compared: int | None = None) -> tuple[Verdict, ...]:
    """A verdict for each gate asked for, in a fixed order. `counts`: tests by outcome value, with
    quarantined tests already left out; `median_wall_s`: the median wall time of the project's
    recent runs (None: no history, and the regression gate is skipped); `compared`: how many
    runs that median is of (`comparable_walls`), for the verdict's detail (None: not said)."""
    out: list[Verdict] = []
    if gates.min_pass_rate is not None:
        rate = pass_rate(counts)
        if rate is None:
            out.append(Verdict("min-pass-rate", gates.min_pass_rate, None, SKIPPED,
                               f"no test counts (limit {gates.min_pass_rate:g}%)"))
        else:
            ok = rate >= gates.min_pass_rate
            out.append(Verdict("min-pass-rate", gates.min_pass_rate, round(rate, 2), PASSED if ok else FAILED,
                               f"pass rate {rate:.1f}% {'>=' if ok else '<'} {gates.min_pass_rate:g}%"))
    if gates.max_failures is not None:
        n = failures(counts)
        ok = n <= gates.max_failures
        out.append(Verdict("max-failures", gates.max_failures, n, PASSED if ok else FAILED,
                           f"{n} failing {'<=' if ok else '>'} {gates.max_failures}"))
    if gates.max_duration_regression is not None:
        limit = gates.max_duration_regression
        if not median_wall_s:
            why = "no earlier runs to compare with" if not compared else \
                f"{compared} earlier comparable run{'s' if compared != 1 else ''}, {MIN_RUNS} needed"
            out.append(Verdict("max-duration-regression", limit, None, SKIPPED, f"{why} (wall {wall_s:.2f}s)"))
        else:
            change = 100.0 * (wall_s - median_wall_s) / median_wall_s
            ok = change <= limit
            of = f" of {compared} runs" if compared else ""
            out.append(Verdict("max-duration-regression", limit, round(change, 1), PASSED if ok else FAILED,
                               f"wall {wall_s:.2f}s is {change:+.1f}% against the median {median_wall_s:.2f}s{of} "
                               f"({'<=' if ok else '>'} +{limit:g}%)"))
    if gates.max_flaky is not None:
        n = counts.get(Outcome.FLAKY.value, 0)
        ok = n <= gates.max_flaky
        out.append(Verdict("max-flaky", gates.max_flaky, n, PASSED if ok else FAILED,
                           f"{n} flaky {'<=' if ok else '>'} {gates.max_flaky}"))
    return tuple(out)


def failed(verdicts: tuple[Verdict, ...]) -> tuple[Verdict, ...]:
    """The verdicts that fail."""
    return tuple(v for v in verdicts if v.verdict == FAILED)


def failure_line(verdicts: tuple[Verdict, ...]) -> str:
    """`gate failed: ...` for the failed ones ("" when none failed)."""
    bad = failed(verdicts)
    return "gate failed: " + "; ".join(f"{v.gate}: {v.detail}" for v in bad) if bad else ""


def exit_code_with(exit_code: int, verdicts: tuple[Verdict, ...]) -> int:
    """The suite's exit code once its gates are judged: a failed gate turns 0 (every test that
    counts passed) into 1; any other code stays, being as bad or saying more (1 failures already,
    2 interrupted: canceled or past its deadline, 3 farm could not run a test, 4, 5 no tests)."""
    return 1 if exit_code == 0 and failed(verdicts) else exit_code
