"""The suite environment cache's own rules: least recently used eviction, one build per key across
slots at once, a failed key remembered. The installer is a stub script (real installs: tests/
integration/test_suite_envs.py); the virtualenv itself is real (`python -m venv --without-pip`)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from farm.suite_env import SuiteEnv
from workers.env_plan import PIP, Installer
from workers.suite_envs import BUILT_FILE, FAILED_TTL_S, PLAIN_PER_ENV, EnvBuildError, EnvCache

#: Stands for `python -m pip --python ENV/bin/python install ...`: counts its runs, takes a while,
#: fails when the requirements name `fail-me`.
STUB_PIP = """\
import sys, time, pathlib
args = sys.argv[1:]
with open(sys.argv[0] + ".runs", "a") as fh:
    fh.write(" ".join(args) + "\\n")
time.sleep(0.3)
files = [args[i + 1] for i, a in enumerate(args) if a == "-r"]
if "--target" in args:  # a plain install: the project's files into the target
    pathlib.Path(args[args.index("--target") + 1], "installed.txt").parent.mkdir(parents=True)
    pathlib.Path(args[args.index("--target") + 1], "installed.txt").write_text(args[-1])
if any("fail-me" in pathlib.Path(f).read_text() for f in files):
    print("ERROR: No matching distribution found for fail-me")
    sys.exit(1)
"""


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    script = tmp_path / "stub_pip.py"
    script.write_text(STUB_PIP)
    return script


def _cache(tmp_path: Path, stub: Path, max_envs: int = 8) -> EnvCache:
    return EnvCache(tmp_path / "envs", max_envs, Installer(PIP, (sys.executable, str(stub))))


def _runs(stub: Path) -> int:
    runs = Path(str(stub) + ".runs")
    return len(runs.read_text().splitlines()) if runs.exists() else 0


def _env(text: str) -> SuiteEnv:
    return SuiteEnv(requirements=(("r.txt", text),))


def _prepare(cache: EnvCache, env: SuiteEnv, tmp_path: Path, *, release: bool = True) -> str:
    """A run's use of the environment: prepared, then (unless told not to) released as its run ends."""
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    key = cache.prepare(env, tree, "0" * 64, sys.executable, "fingerprint").key
    if release:
        cache.release(key)
    return key


def _kept(tmp_path: Path) -> set[str]:
    return {p.name for p in (tmp_path / "envs").iterdir() if len(p.name) == 64}


def test_a_second_use_reuses_the_environment_without_running_the_installer(tmp_path: Path, stub: Path) -> None:
    cache = _cache(tmp_path, stub)
    key = _prepare(cache, _env("x\n"), tmp_path)
    built = (tmp_path / "envs" / key / BUILT_FILE).read_text()
    assert _runs(stub) == 1
    assert _prepare(cache, _env("x\n"), tmp_path) == key
    assert _runs(stub) == 1 and cache.builds == 1
    assert (tmp_path / "envs" / key / BUILT_FILE).read_text() == built
    assert not list((tmp_path / "envs").glob(".incoming-*"))


def test_slots_preparing_the_same_environment_at_once_build_it_once(tmp_path: Path, stub: Path) -> None:
    caches = [_cache(tmp_path, stub) for _ in range(3)]  # as three pool processes would have
    keys: list[str] = []
    threads = [threading.Thread(target=lambda c=c: keys.append(_prepare(c, _env("x\n"), tmp_path))) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys) == 3
    assert _runs(stub) == 1
    assert sum(c.builds for c in caches) == 1


def test_past_the_bound_the_least_recently_used_environment_is_evicted(tmp_path: Path, stub: Path) -> None:
    cache = _cache(tmp_path, stub, max_envs=2)
    first = _prepare(cache, _env("one\n"), tmp_path)
    second = _prepare(cache, _env("two\n"), tmp_path)
    _prepare(cache, _env("one\n"), tmp_path)  # used again: now the second is the least recent
    third = _prepare(cache, _env("three\n"), tmp_path)
    kept = {p.name for p in (tmp_path / "envs").iterdir() if len(p.name) == 64}
    assert kept == {first, third}
    assert second not in kept
    assert _runs(stub) == 3


def test_an_environment_a_run_uses_is_not_evicted_and_goes_once_released(tmp_path: Path, stub: Path) -> None:
    running, other = _cache(tmp_path, stub, max_envs=2), _cache(tmp_path, stub, max_envs=2)  # two slots
    busy = _prepare(running, _env("busy\n"), tmp_path, release=False)  # the least recently used, but in use
    two = _prepare(other, _env("two\n"), tmp_path)
    three = _prepare(other, _env("three\n"), tmp_path)
    assert _kept(tmp_path) == {busy, three}  # past the bound: `two` went, the one in use stayed
    four = _prepare(other, _env("four\n"), tmp_path)
    assert _kept(tmp_path) == {busy, four}
    assert (tmp_path / "envs" / busy / "bin" / "python").exists()
    running.release(busy)
    five = _prepare(other, _env("five\n"), tmp_path)
    assert _kept(tmp_path) == {four, five}
    assert two not in _kept(tmp_path) and _runs(stub) == 5


def test_a_plain_install_a_run_uses_is_not_evicted(tmp_path: Path, stub: Path) -> None:
    """Plain installs (one per bundle, PLAIN_PER_ENV per environment) are held for their run too."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "1"\ndependencies = []\n')
    env = SuiteEnv(install=(".",), install_mode="plain")
    running, other = _cache(tmp_path, stub, max_envs=1), _cache(tmp_path, stub, max_envs=1)

    keys: set[str] = set()

    def plain(cache: EnvCache, bundle: int, *, release: bool = True) -> str:
        prepared = cache.prepare(env, tree, f"{bundle:02d}".ljust(64, "0"), sys.executable, "fingerprint")
        keys.add(prepared.key)
        if release:
            cache.release(prepared.key)
        (where,) = prepared.paths
        return Path(where).name

    held = plain(running, 0, release=False)  # the oldest, but its run goes on
    made = [plain(other, n) for n in range(1, PLAIN_PER_ENV + 2)]
    kept = {p.name for p in (tmp_path / "envs" / "plain").iterdir() if not p.name.startswith(".")}
    assert held in kept and len(kept) == PLAIN_PER_ENV
    assert kept == {held, *made[-(PLAIN_PER_ENV - 1):]}
    (key,) = keys  # one environment: the bundles differ, their requirements do not
    running.release(key)
    plain(other, 99)
    kept = {p.name for p in (tmp_path / "envs" / "plain").iterdir() if not p.name.startswith(".")}
    assert held not in kept and len(kept) == PLAIN_PER_ENV


def test_a_failed_build_is_remembered_and_not_tried_again_for_a_while(tmp_path: Path, stub: Path) -> None:
    cache = _cache(tmp_path, stub)
    with pytest.raises(EnvBuildError) as failed:
        _prepare(cache, _env("fail-me\n"), tmp_path)
    assert failed.value.summary == ("could not build the suite's environment (installing: pip exit 1): "
                                    "ERROR: No matching distribution found for fail-me")
    assert "ERROR: No matching distribution found for fail-me" in failed.value.tail
    with pytest.raises(EnvBuildError) as again:
        _prepare(cache, _env("fail-me\n"), tmp_path)
    assert again.value.summary == failed.value.summary
    assert _runs(stub) == 1  # remembered: not run again
    assert not [p for p in (tmp_path / "envs").iterdir() if len(p.name) == 64]  # no half environment
    assert not list((tmp_path / "envs").glob(".incoming-*"))
    assert FAILED_TTL_S >= 60
