"""workers/remote_env_build.py as a remote runs it (`python3 -c SOURCE ...`), on this machine: a build
renamed into place whole, the least recently used environments evicted, a failed install's last
lines, and a key that another build finished first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from workers.remote_env import BUILDER, WheelCache


def _builder(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", BUILDER.read_text(), *args], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def _ready(envs: Path, key: str, age: int) -> None:
    (envs / key / "bin").mkdir(parents=True)
    marker = envs / key / "farm-env.json"
    marker.write_text("{}")
    os.utime(marker, (1_000_000 + age, 1_000_000 + age))


def _plan(env_dir: Path, install: str = "pass") -> str:
    return json.dumps({
        "env_dir": str(env_dir),
        "create": [sys.executable, "-c", "import os, sys; os.makedirs(sys.argv[1] + '/bin')", str(env_dir)],
        "requirement_files": [[str(env_dir / "farm-requirements" / "0-requirements.txt"), "pytest>=9\n"]],
        "install": [sys.executable, "-c", install],
    })


def test_a_build_is_renamed_into_place_and_the_least_recently_used_beyond_the_bound_go(tmp_path: Path) -> None:
    envs, wheels = tmp_path / "envs", tmp_path / "wheels"
    wheels.mkdir()
    for age, key in enumerate(["oldest", "old", "recent"]):
        _ready(envs, key, age)
    answer = _builder("build", str(envs), "new", str(wheels), "3", _plan(envs / ".new-1"))
    assert answer == {"ok": True, "python": str(envs / "new" / "bin" / "python"), "built": True,
                      "built_s": answer["built_s"]}
    assert sorted(p.name for p in envs.iterdir()) == ["new", "old", "recent"]
    assert (envs / "new" / "farm-requirements" / "0-requirements.txt").read_text() == "pytest>=9\n"
    assert not wheels.exists(), "the shipped wheels are removed once used"
    probe = _builder("probe", str(envs), "old")
    assert probe["ready"] == ["new", "old", "recent"] and probe["touched"] == "old"
    assert (envs / "old" / "farm-env.json").stat().st_mtime > 1_000_010  # used now: the last to go


def test_a_failed_install_leaves_nothing_and_says_its_last_lines(tmp_path: Path) -> None:
    envs, wheels = tmp_path / "envs", tmp_path / "wheels"
    wheels.mkdir()
    fail = "import sys; print('ERROR: No matching distribution found for nope==1'); sys.exit(1)"
    answer = _builder("build", str(envs), "k", str(wheels), "3", _plan(envs / ".k-1", fail))
    assert answer == {"ok": False, "tail": "ERROR: No matching distribution found for nope==1"}
    assert list(envs.iterdir()) == []


def test_a_key_another_build_finished_first_is_used_as_it_is(tmp_path: Path) -> None:
    envs, wheels = tmp_path / "envs", tmp_path / "wheels"
    wheels.mkdir()
    _ready(envs, "k", 0)
    answer = _builder("build", str(envs), "k", str(wheels), "3", _plan(envs / ".k-2"))
    assert answer == {"ok": True, "python": str(envs / "k" / "bin" / "python"), "built": False}
    assert sorted(p.name for p in envs.iterdir()) == ["k"]


def test_the_workers_wheel_cache_evicts_as_the_remote_does(tmp_path: Path) -> None:
    """WheelCache (the worker's wheel sets) and the remote builder make the same choice: the least
    recently used beyond the bound go, never the set just made, sets still being fetched untouched."""
    root = tmp_path / "wheels"
    for age, key in enumerate(["old", "older-used", "new", "made"]):
        (root / key).mkdir(parents=True)
        os.utime(_done(root / key), (1_000_000 + age, 1_000_000 + age))
    os.utime(root / "older-used" / "done", (2_000_000, 2_000_000))  # used again since
    (root / ".fetching-x").mkdir()  # a set being fetched: no `done` yet
    os.utime(root / "made" / "done", (500, 500))  # oldest stamp, but the one just made
    WheelCache(root, max_kept=2)._evict("made")
    assert sorted(p.name for p in root.iterdir()) == [".fetching-x", "made", "older-used"]


def _done(directory: Path) -> Path:
    (directory / "done").write_text("{}")
    return directory / "done"


def _wheel(path: Path, members: dict[str, str]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_a_plain_install_unpacks_the_projects_pure_wheel_beside_its_environment(tmp_path: Path) -> None:
    envs, shipped = tmp_path / "envs", tmp_path / "shipped"
    shipped.mkdir()
    _ready(envs, "k", 0)
    wheel = _wheel(shipped / "demo-1.0-py3-none-any.whl", {
        "demo/__init__.py": "X = 1\n", "demo-1.0.dist-info/METADATA": "Name: demo\nVersion: 1.0\n",
        "demo-1.0.data/purelib/extra.py": "Y = 2\n", "demo-1.0.data/scripts/demo": "#!python\n"})
    answer = _builder("plain", str(envs), "k", "abc-root", str(wheel))
    final = envs / "k" / "farm-plain" / "abc-root"
    assert answer == {"ok": True, "path": str(final)}
    assert sorted(str(p.relative_to(final)) for p in final.rglob("*") if p.is_file()) == [
        "demo-1.0.dist-info/METADATA", "demo/__init__.py", "extra.py"]  # purelib merged, scripts left out
    assert not shipped.exists(), "the shipped wheel is removed once used"
    assert _builder("probe", str(envs))["plain"] == {"k": ["abc-root"]}


def test_a_plain_install_keeps_the_newest_four_and_refuses_a_member_outside(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    _ready(envs, "k", 0)
    for i in range(5):
        shipped = tmp_path / f"shipped{i}"
        shipped.mkdir()
        wheel = _wheel(shipped / "demo-1.0-py3-none-any.whl", {"demo/__init__.py": f"X = {i}\n"})
        assert _builder("plain", str(envs), "k", f"b{i}-root", str(wheel))["ok"]
        os.utime(envs / "k" / "farm-plain" / f"b{i}-root", (1_000_000 + i, 1_000_000 + i))
    assert sorted(p.name for p in (envs / "k" / "farm-plain").iterdir()) == ["b1-root", "b2-root", "b3-root",
                                                                            "b4-root"]
    shipped = tmp_path / "evil"
    shipped.mkdir()
    wheel = _wheel(shipped / "evil-1.0-py3-none-any.whl", {"../../outside.py": "x\n"})
    answer = _builder("plain", str(envs), "k", "evil-root", str(wheel))
    assert answer["ok"] is False and "outside" in answer["tail"]
    assert not (envs / "k" / "farm-plain" / "evil-root").exists() and not (tmp_path / "outside.py").exists()
    assert _builder("plain", str(envs), "nokey", "x", str(wheel))["ok"] is False  # no environment: no install


def test_a_plain_install_a_run_touches_is_kept_over_newer_ones(tmp_path: Path) -> None:
    """`touch ENVS KEY NAME`: the run reusing a plain install marks it used, so a fifth install
    removes the least recently used one, not the oldest made."""
    envs = tmp_path / "envs"
    _ready(envs, "k", 0)
    where = envs / "k" / "farm-plain"
    for i in range(4):
        shipped = tmp_path / f"shipped{i}"
        shipped.mkdir()
        assert _builder("plain", str(envs), "k", f"b{i}-root",
                        str(_wheel(shipped / "demo-1.0-py3-none-any.whl", {"demo/__init__.py": "X = 1\n"})))["ok"]
        os.utime(where / f"b{i}-root", (1_000_000 + i, 1_000_000 + i))
    assert _builder("touch", str(envs), "k", "b0-root") == {"ok": True}  # b0, made first, used again now
    shipped = tmp_path / "shipped4"
    shipped.mkdir()
    assert _builder("plain", str(envs), "k", "b4-root",
                    str(_wheel(shipped / "demo-1.0-py3-none-any.whl", {"demo/__init__.py": "X = 1\n"})))["ok"]
    assert sorted(p.name for p in where.iterdir()) == ["b0-root", "b2-root", "b3-root", "b4-root"]
    assert _builder("touch", str(envs), "k", "gone-root")["ok"] is False
