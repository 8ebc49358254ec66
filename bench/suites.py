"""Generators that write throwaway pytest projects for the benchmarks."""

from __future__ import annotations

import random
from pathlib import Path

# A pytest.ini in the suite pins pytest's rootdir to the suite itself, so no
# setup.cfg/pyproject.toml above the temp dir can change what gets collected.
_PYTEST_INI = "[pytest]\n"


def trivial(dest: Path | str, n: int = 5000, per_module: int = 100) -> int:
    """Write n trivial passing tests, per_module plain functions per module.

    Returns the number of tests written. Test ids are plain
    (`test_trivial_007.py::test_0712`): no parametrize, no classes.
    """
    if n < 1 or per_module < 1:
        raise ValueError("n and per_module must be positive")
    root = _prepare(dest)
    modules = (n + per_module - 1) // per_module
    width = len(str(modules - 1))
    for m in range(modules):
        lines = [f'"""Trivial benchmark tests, module {m}."""\n']
        for i in range(m * per_module, min(n, (m + 1) * per_module)):
            lines.append(f"\n\ndef test_{i:04d}():\n    assert True\n")
        (root / f"test_trivial_{m:0{width}d}.py").write_text("".join(lines))
    return n


def skewed_durations(n: int = 400, total_s: float = 120.0, sigma: float = 1.2, seed: int = 1) -> list[float]:
    """n lognormal(0, sigma) durations from a fixed seed, scaled to sum to total_s."""
    if n < 1 or total_s <= 0:
        raise ValueError("n and total_s must be positive")
    rng = random.Random(seed)
    raw = [rng.lognormvariate(0.0, sigma) for _ in range(n)]
    scale = total_s / sum(raw)
    return [d * scale for d in raw]


def skewed(
    dest: Path | str,
    n: int = 400,
    total_s: float = 120.0,
    sigma: float = 1.2,
    seed: int = 1,
    modules: int = 20,
) -> list[float]:
    """Write n tests that each sleep a skewed duration; return the durations in test order.

    Test i sleeps durations[i]; tests are spread in order over `modules` modules
    (`test_skewed_00.py` holds tests 0..19 for the defaults), which is also the
    order pytest collects them in.
    """
    if modules < 1:
        raise ValueError("modules must be positive")
    durations = skewed_durations(n, total_s, sigma, seed)
    root = _prepare(dest)
    per_module = (n + modules - 1) // modules
    width = len(str(modules - 1))
    for m in range(modules):
        first, last = m * per_module, min(n, (m + 1) * per_module)
        if first >= last:
            break
        lines = [f'"""Skewed benchmark tests, module {m}."""\n\nimport time\n']
        for i in range(first, last):
            lines.append(f"\n\ndef test_{i:04d}():\n    time.sleep({durations[i]!r})\n")
        (root / f"test_skewed_{m:0{width}d}.py").write_text("".join(lines))
    return durations


def lower_bound(durations: list[float], slots: int) -> float:
    """The makespan no scheduler can beat: max(total / slots, longest test)."""
    if slots < 1:
        raise ValueError("slots must be positive")
    return max(sum(durations) / slots, max(durations, default=0.0))


def _prepare(dest: Path | str) -> Path:
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text(_PYTEST_INI)
    return root
