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


def parametrized(dest: Path | str, files: int, per_file: int) -> int:
    """files modules of one test parametrized per_file times (`test_p_007.py::test_trivial[42]`)."""
    if files < 1 or per_file < 1:
        raise ValueError("files and per_file must be positive")
    root = _prepare(dest)
    width = len(str(files - 1))
    body = (
        '"""Trivial parametrized benchmark tests."""\n\nimport pytest\n\n\n'
        f'@pytest.mark.parametrize("i", range({per_file}))\ndef test_trivial(i):\n    assert i >= 0\n'
    )
    for m in range(files):
        (root / f"test_p_{m:0{width}d}.py").write_text(body)
    return files * per_file


_BURN = """\
import time



def burn(seconds):
    \"\"\"Busy-loop for `seconds` of CPU (not sleep: the CPU is what these tests cost).\"\"\"
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
"""


def imports(dest: Path | str, modules: int, per_module: int, import_s: float = 0.15, test_s: float = 0.005) -> int:
    """modules modules that each burn import_s of CPU when imported, with per_module tests of test_s each."""
    if modules < 1 or per_module < 1:
        raise ValueError("modules and per_module must be positive")
    root = _prepare(dest)
    width = len(str(modules - 1))
    for m in range(modules):
        (root / f"test_heavy_{m:0{width}d}.py").write_text(
            f'"""Import-heavy benchmark module {m}."""\n\nimport pytest\n' + _BURN +
            f"\n\nburn({import_s!r})\n\n\n"
            f'@pytest.mark.parametrize("i", range({per_module}))\ndef test_work(i):\n    burn({test_s!r})\n'
        )
    return modules * per_module


_CONFTEST = """\
import pytest


@pytest.fixture(scope="session")
def table():
    return {i: i * i for i in range(1000)}


@pytest.fixture
def record(tmp_path):
    path = tmp_path / "record.txt"
    path.write_text("x" * 100)
    return path
"""


def small(dest: Path | str, n: int = 300, modules: int = 10) -> int:
    """A small realistic suite: n tests over `modules` modules, plain, parametrized and with fixtures
    (a session-scoped one, and one using tmp_path)."""
    if n < 3 or modules < 1:
        raise ValueError("n must be at least 3 and modules positive")
    root = _prepare(dest)
    (root / "conftest.py").write_text(_CONFTEST)
    per = max(3, n // modules)
    written = 0
    m = 0
    while written < n:
        count = min(per, n - written)
        third = max(1, count // 3)
        plain = [f"\n\ndef test_plain_{i}(table):\n    assert table[{i}] == {i * i}\n" for i in range(third)]
        files = [f"\n\ndef test_file_{i}(record):\n    assert record.read_text() == 'x' * 100\n"
                 for i in range(min(max(1, count // 6), count - third))]
        rest = count - len(plain) - len(files)
        params = (f'\n\n@pytest.mark.parametrize("i", range({rest}))\ndef test_param(i):\n    assert str(i).isdigit()\n'
                  if rest else "")
        (root / f"test_small_{m:02d}.py").write_text(
            f'"""Small benchmark suite, module {m}."""\n\nimport pytest\n' + "".join(plain + files) + params
        )
        written += count
        m += 1
    return written


def _prepare(dest: Path | str) -> Path:
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text(_PYTEST_INI)
    return root
