"""The bundle's own project (`--install .[test]`) in environments on SSH hosts and in VMs: its
metadata files read from the bundle archive (what the environment key counts), its requirements
(static only: the remote has no index to build it with), and, for the plain mode, its wheel built
on the worker (pure Python only), which the remote unpacks beside its environment.

`check` and `plain_name` are pure; `read` and `ProjectWheels` are the edges (the archive, pip).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from farm.bundle import extract_bundle
from farm.suite_env import SuiteEnv
from workers import env_plan, sdist_wheels
from workers.env_plan import LocalProject
from workers.installer_output import failure
from workers.suite_envs import EnvBuildError, evictions, slug, stamped

#: Project wheels the worker keeps (the most recently used; one per bundle and project directory).
WHEELS_KEPT = 16
#: The longest a `pip wheel` of the bundle's project may take.
BUILD_TIMEOUT_S = 900.0

#: The projects of the bundle archives and suite environments read last (archives are named by
#: digest), at most READ_KEPT of them: a suite's runs read its archive once per worker process.
_READ: dict[tuple[str, str], tuple[LocalProject, ...]] = {}
READ_KEPT = 64


def read(archive: Path, env: SuiteEnv) -> tuple[LocalProject, ...]:
    """The local specs of `env` resolved in the bundle `archive` (tar.gz), with their metadata files
    (read without unpacking the rest); EnvBuildError (one line) for a spec naming no project."""
    specs = env_plan.local_projects(env)
    if not specs:
        return ()
    known = _READ.get((str(archive), env.digest()))
    if known is not None:
        return known
    wanted = {posixpath.normpath(posixpath.join(path, name)): (path, name)
              for _, path, _ in specs for name in env_plan.METADATA_FILES}
    found: dict[tuple[str, str], str] = {}
    dirs: set[str] = set()
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                name = posixpath.normpath(member.name.lstrip("/"))
                parts = name.split("/")
                dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
                if member.isdir():
                    dirs.add(name)
                if member.isreg() and name in wanted:
                    fh = tar.extractfile(member)
                    if fh is not None:
                        found[wanted[name]] = fh.read().decode("utf-8", errors="replace")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise EnvBuildError(f"bundle cannot be read: {exc}") from None
    out = []
    for spec, path, extras in specs:
        if path.startswith("../") or path == ".." or path.startswith("/") or (path != "." and path not in dirs):
            raise EnvBuildError(f"--install {spec}: no such directory in the bundle")
        files = tuple((name, found[(path, name)]) for name in env_plan.METADATA_FILES if (path, name) in found)
        if not files:
            raise EnvBuildError(f"--install {spec}: no pyproject.toml, setup.cfg or setup.py in {path}")
        src = posixpath.normpath(posixpath.join(path, "src"))
        out.append(LocalProject(spec, path, extras, files, src in dirs))
    while len(_READ) >= READ_KEPT:
        del _READ[next(iter(_READ))]
    projects = _READ[(str(archive), env.digest())] = tuple(out)
    return projects


def check(projects: Sequence[LocalProject]) -> None:
    """EnvBuildError (one line) for a project whose dependencies a remote environment cannot take:
    not static in pyproject.toml's [project] table (finding them would mean building the project,
    and its setup.py could pick them by the platform it runs on, the worker's, not the remote's)."""
    for project in projects:
        if env_plan.static_dependencies(project) is None:
            raise EnvBuildError(f"--install {project.spec}: its dependencies are not static in pyproject.toml's "
                                "[project] table (a setup.py, or dynamic), which SSH hosts and VMs need: list them "
                                "in a requirements file")


def plain_name(archive: Path, project: LocalProject) -> str:
    """What names one bundle's plain install of one project on a remote (`DIGEST16-DIR`)."""
    return f"{archive.name.split('.')[0][:16]}-{slug(project.path)}"


class ProjectWheels:
    """The bundle projects' wheels (`pip wheel --no-deps` of the bundle's tree on the worker), one
    per plain_name, under `root`; the WHEELS_KEPT most recently used are kept."""

    def __init__(self, root: Path, python: str) -> None:
        self.root, self.python = root, python

    def wheel(self, archive: Path, project: LocalProject) -> Path:
        """The project's wheel, built now if it is not kept; EnvBuildError (one line and pip's last
        lines) when it does not build, or builds a compiled wheel (the remote's platform may differ)."""
        name = plain_name(archive, project)
        kept = sorted((self.root / name).glob("*.whl"))
        if kept:
            try:
                os.utime(self.root / name)  # used now: the least recently used go
                return kept[0]
            except OSError:  # removed meanwhile by another process's prune: built again
                pass
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="farm-project-", dir=self.root) as tmp:
            tree = Path(tmp) / "tree"
            extract_bundle(archive.read_bytes(), tree)
            out = Path(tmp) / "out"
            argv = [self.python, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "--no-input",
                    "--wheel-dir", str(out), str(tree / project.path)]
            try:
                proc = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                                      stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise EnvBuildError(f"--install {project.spec}: pip wheel of the project ran longer than "
                                    f"{BUILD_TIMEOUT_S:.0f}s") from None
            if proc.returncode != 0:
                raise failure(f"--install {project.spec}: the project's wheel did not build on the worker: pip wheel "
                              f"exit {proc.returncode}", proc.stdout + proc.stderr)
            built = sorted(out.glob("*.whl"))
            if len(built) != 1 or not sdist_wheels.is_pure(built[0].name):
                raise EnvBuildError(f"--install {project.spec}: the project builds "
                                    f"{built[0].name if built else 'no wheel'}, not one pure-Python wheel: "
                                    "--install-mode plain on SSH hosts and VMs takes pure-Python projects only")
            final = self.root / name
            (Path(tmp) / "final").mkdir()
            built[0].rename(Path(tmp) / "final" / built[0].name)
            try:
                (Path(tmp) / "final").rename(final)
            except OSError:  # built meanwhile by another process
                pass
        self._prune(keep=name)
        return sorted(final.glob("*.whl"))[0]

    def _prune(self, keep: str) -> None:
        """The least recently used wheels beyond WHEELS_KEPT go (suite_envs.evictions)."""
        made = stamped(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
                       and not p.name.startswith("farm-project-"))
        for name in evictions(made, WHEELS_KEPT, keep):
            shutil.rmtree(self.root / name, ignore_errors=True)
