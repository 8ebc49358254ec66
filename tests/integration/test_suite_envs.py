"""Suite environments built for real, from the package index the host is configured for: with pip
and with uv, reused, evicted, and a failed install's message carrying the installer's error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.helpers import need

from farm.suite_env import SuiteEnv
from workers.env_plan import UV, Installer
from workers.suite_envs import BUILT_FILE, TAIL_LINES, EnvBuildError, EnvCache, find_installer

BASE = sys.executable  # a venv made from a venv's python is made from its base interpreter


def _run(python: str, code: str, cwd: Path | None = None) -> str:
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=cwd, check=False,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return done.stdout.strip() if done.returncode == 0 else f"failed: {done.stderr.strip().splitlines()[-1]}"


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    return tree


@pytest.fixture(scope="module")
def uv(tmp_path_factory: pytest.TempPathFactory) -> str:
    """uv, from PATH or installed from the index into a temporary directory."""
    from shutil import which

    found = which("uv")
    if found:
        return found
    target = tmp_path_factory.mktemp("uv")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "uv"],
                          capture_output=True, text=True, check=False)
    need(done.returncode == 0 and (target / "bin" / "uv").exists(), f"cannot install uv from the index: {done.stderr}")
    return str(target / "bin" / "uv")


def test_pip_builds_the_environment_once_with_the_requirements_pytest(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs", installer="pip")
    env = SuiteEnv(requirements=(("requirements.txt", "pytest>=9\n"),), install=("iniconfig",))
    prepared = cache.prepare(env, _tree(tmp_path), "0" * 64, BASE, "fp")
    assert _run(prepared.python, "import pytest, iniconfig; print(pytest.version_tuple[0])") != "failed"
    assert int(_run(prepared.python, "import pytest; print(pytest.version_tuple[0])")) >= 9
    assert _run(prepared.python, "import pip") .startswith("failed")  # no pip of its own: the worker's installs
    built = Path(prepared.python).parent.parent / BUILT_FILE
    first = built.read_text()
    assert json.loads(first)["installer"] == "pip"
    again = EnvCache(tmp_path / "envs", installer="pip").prepare(env, _tree(tmp_path), "0" * 64, BASE, "fp")
    assert again == prepared
    assert built.read_text() == first  # not built again
    assert cache.builds == 1


def test_uv_builds_the_environment_when_it_is_on_path(tmp_path: Path, uv: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(uv).parent}:{os.environ['PATH']}")
    assert find_installer("auto") == Installer(UV, (str(Path(uv).parent / "uv"),))
    cache = EnvCache(tmp_path / "envs")
    env = SuiteEnv(requirements=(("requirements.txt", "pytest>=9\niniconfig\n"),))
    prepared = cache.prepare(env, _tree(tmp_path), "0" * 64, BASE, "fp")
    assert _run(prepared.python, "import pytest, iniconfig; print(pytest.version_tuple[0])") == "9"
    built = Path(prepared.python).parent.parent / BUILT_FILE
    assert json.loads(built.read_text())["installer"] == "uv"
    first = built.read_text()
    assert EnvCache(tmp_path / "envs").prepare(env, _tree(tmp_path), "0" * 64, BASE, "fp") == prepared
    assert built.read_text() == first


def test_uv_trusts_the_hosts_certificates_as_pip_does(tmp_path: Path, uv: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host whose pip reaches the index through a CA it added (pip.conf's `cert`, the system
    store), with no SSL_CERT_FILE in the environment: uv's built-in roots alone refuse the index
    (seen on a fresh Debian root: "invalid peer certificate: UnknownIssuer"); farm has uv use the
    host's store. Where the index needs no such CA, the build passes either way."""
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "UV_SYSTEM_CERTS",
                 "UV_NATIVE_TLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))  # fetched now, not from a cache
    cache = EnvCache(tmp_path / "envs", installer=Installer(UV, (uv,)))
    prepared = cache.prepare(SuiteEnv(install=("iniconfig",)), _tree(tmp_path), "0" * 64, BASE, "fp")
    assert _run(prepared.python, "import iniconfig; print('ok')") == "ok"


def test_past_the_bound_the_oldest_environment_is_removed(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs", max_envs=1, installer="pip")
    one = cache.prepare(SuiteEnv(install=("iniconfig",)), _tree(tmp_path), "0" * 64, BASE, "fp")
    cache.release(one.key)  # its run ended
    two = cache.prepare(SuiteEnv(install=("iniconfig", "pytest>=8")), _tree(tmp_path), "0" * 64, BASE, "fp")
    assert not Path(one.python).exists()
    assert Path(two.python).exists()
    assert cache.builds == 2


def test_a_failed_install_says_pips_error_in_its_last_lines(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs", installer="pip")
    env = SuiteEnv(requirements=(("requirements.txt", "nosuchpackage-farm-xyz==1.0\n"),))
    with pytest.raises(EnvBuildError) as failed:
        cache.prepare(env, _tree(tmp_path), "0" * 64, BASE, "fp")
    assert failed.value.summary.startswith("could not build the suite's environment (installing: pip exit 1): ")
    assert "nosuchpackage-farm-xyz==1.0" in failed.value.summary and "\n" not in failed.value.summary
    assert "No matching distribution found for nosuchpackage-farm-xyz==1.0" in failed.value.tail
    assert len(failed.value.tail.splitlines()) <= TAIL_LINES
    assert not [p for p in (tmp_path / "envs").iterdir() if len(p.name) == 64]


def test_a_project_without_static_metadata_leaves_only_its_dependencies(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    (tree / "setup.py").write_text('from setuptools import setup\n'
                                   'setup(name="legacydemo", version="0.1", py_modules=["legacydemo"], '
                                   'install_requires=["iniconfig"])\n')
    (tree / "legacydemo.py").write_text("VALUE = 1\n")
    cache = EnvCache(tmp_path / "envs", installer="pip")
    prepared = cache.prepare(SuiteEnv(install=(".",)), tree, "0" * 64, BASE, "fp")
    assert _run(prepared.python, "import iniconfig; print('ok')", cwd=tmp_path) == "ok"
    assert _run(prepared.python, "import legacydemo", cwd=tmp_path).startswith("failed")  # the bundle's code: not in it
    assert not list(Path(prepared.python).parent.parent.glob("lib/*/site-packages/legacydemo*"))
    assert not list(tree.glob("*.egg-info")) and not (tree / "build").exists()  # the tree was not built in
